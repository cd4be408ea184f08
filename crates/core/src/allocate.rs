//! The bandwidth allocator: given what one subscriber's link can carry and the tracks it
//! receives, decide which layer of each to forward. A pure function of its inputs, run on a
//! timer (never per packet), so every decision can be reproduced from a table.
//!
//! Order of service: audio first (always, it is cheap and matters most), then video in
//! priority order: first every video track's lowest layer as long as it fits, then upgrades,
//! one track at a time up to its preferred quality. A higher-priority track is never paused or
//! held back so that a lower one can have more; a track whose lowest layer does not fit is
//! paused, and so is every track after it.
//!
//! Pausing freezes a picture for a keyframe interval or more, switching down a layer does not,
//! so the two answer to different budgets: a track already forwarded keeps its lowest layer
//! while that fits the lenient [`Budget::keep`] (the caller's view of what the link surely
//! carried lately); everything else, resuming a paused track included, must fit
//! [`Budget::grow`]. The first video track in priority order keeps its lowest layer whatever
//! the estimate says, within [`Budget::hard`] only: a link that is sent no video tells the
//! estimator too little to recover (str0m stops probing while it is loss-limited, and without
//! packets nothing ends that state), so pausing every picture would last for good.

/// What one subscriber's link may carry, in bits per second (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// For upgrades, and for resuming a paused track.
    pub grow: Option<u64>,
    /// For keeping the lowest layer of a track that is forwarded now; at least `grow`.
    pub keep: Option<u64>,
    /// Never exceeded (the operator's cap); the only limit on the first video track's lowest
    /// layer; at least `keep`.
    pub hard: Option<u64>,
}

impl Budget {
    /// One limit for everything, never exceeded (a configured cap).
    pub fn fixed(bps: Option<u64>) -> Self {
        Budget {
            grow: bps,
            keep: bps,
            hard: bps,
        }
    }
}

/// One track the subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    /// Bits per second of each layer flowing now, lowest first. Empty: nothing flows (the
    /// track is skipped and costs nothing).
    pub ladder: Vec<u64>,
    /// The highest ladder index the subscriber asked for (its preferred quality).
    pub max: usize,
    /// Served in descending priority; equal priorities in input order.
    pub priority: u8,
    /// Audio is always forwarded and served first.
    pub audio: bool,
    /// Forwarded now (not paused): its lowest layer stays while it fits [`Budget::keep`].
    pub forwarded: bool,
}

/// What the allocator decided for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Per demand, the ladder index to forward, or `None`: paused.
    pub choices: Vec<Option<usize>>,
    /// The bits per second the choices take.
    pub allocated: u64,
    /// What every track at its preferred quality would take: what probing aims for.
    pub desired: u64,
    /// How many more bits per second the next improvement (an unpause or an upgrade) needs;
    /// `None` when every track is at its preferred quality.
    pub next_step: Option<u64>,
}

pub fn allocate(budget: Budget, demands: &[Demand]) -> Allocation {
    let grow = budget.grow.unwrap_or(u64::MAX);
    let keep = budget.keep.unwrap_or(u64::MAX).max(grow);
    let hard = budget.hard.unwrap_or(u64::MAX).max(keep);
    let mut choices = vec![None; demands.len()];
    let mut allocated = 0u64;
    let mut desired = 0u64;
    for (i, d) in demands.iter().enumerate() {
        let Some(top) = d.ladder.len().checked_sub(1) else {
            continue;
        };
        desired += d.ladder[d.max.min(top)];
        if d.audio {
            choices[i] = Some(0);
            allocated += d.ladder[0];
        }
    }
    let mut order: Vec<usize> = (0..demands.len())
        .filter(|&i| !demands[i].audio && !demands[i].ladder.is_empty())
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(demands[i].priority));

    let mut next_step = None;
    // Lowest layers, in priority order, until one does not fit.
    for (n, &i) in order.iter().enumerate() {
        let cost = demands[i].ladder[0];
        let limit = match (n, demands[i].forwarded) {
            (0, _) => hard,
            (_, true) => keep,
            (_, false) => grow,
        };
        if allocated.saturating_add(cost) > limit {
            next_step = Some(cost);
            break;
        }
        allocated += cost;
        choices[i] = Some(0);
    }
    // Upgrades, in priority order, until one does not fit.
    if next_step.is_none() {
        'tracks: for &i in &order {
            let d = &demands[i];
            let max = d.max.min(d.ladder.len() - 1);
            let mut at = choices[i].unwrap_or(0);
            while at < max {
                let step = d.ladder[at + 1].saturating_sub(d.ladder[at]);
                if allocated.saturating_add(step) > grow {
                    next_step = Some(step);
                    choices[i] = Some(at);
                    break 'tracks;
                }
                allocated += step;
                at += 1;
            }
            choices[i] = Some(at);
        }
    }
    Allocation {
        choices,
        allocated,
        desired,
        next_step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(ladder: &[u64], max: usize, priority: u8) -> Demand {
        Demand {
            ladder: ladder.to_vec(),
            max,
            priority,
            audio: false,
            forwarded: false,
        }
    }

    fn forwarded(ladder: &[u64], max: usize, priority: u8) -> Demand {
        Demand {
            forwarded: true,
            ..video(ladder, max, priority)
        }
    }

    fn audio(rate: u64) -> Demand {
        Demand {
            ladder: vec![rate],
            max: 0,
            priority: 0,
            audio: true,
            forwarded: true,
        }
    }

    const SIMULCAST: [u64; 3] = [150_000, 500_000, 1_500_000];

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            budget: Option<u64>,
            demands: Vec<Demand>,
            choices: Vec<Option<usize>>,
            next_step: Option<u64>,
        }
        let cases = vec![
            Case {
                name: "unlimited: everything at its preference",
                budget: None,
                demands: vec![
                    audio(40_000),
                    video(&SIMULCAST, 2, 0),
                    video(&SIMULCAST, 0, 0),
                ],
                choices: vec![Some(0), Some(2), Some(0)],
                next_step: None,
            },
            Case {
                name: "a preferred quality caps what is sent even with room",
                budget: Some(10_000_000),
                demands: vec![video(&SIMULCAST, 1, 0)],
                choices: vec![Some(1)],
                next_step: None,
            },
            Case {
                name: "a budget between layers takes the one below",
                budget: Some(1_000_000),
                demands: vec![video(&SIMULCAST, 2, 0)],
                choices: vec![Some(1)],
                next_step: Some(1_000_000),
            },
            Case {
                name: "audio is served even when it alone exceeds the budget; video pauses",
                budget: Some(30_000),
                demands: vec![video(&SIMULCAST, 2, 0), audio(40_000)],
                choices: vec![None, Some(0)],
                next_step: Some(150_000),
            },
            Case {
                name: "priority first: the pinned track gets the top, the other stays low",
                budget: Some(1_800_000),
                demands: vec![video(&SIMULCAST, 2, 0), video(&SIMULCAST, 2, 5)],
                choices: vec![Some(0), Some(2)],
                next_step: Some(350_000),
            },
            Case {
                name: "equal priority: input order; every lowest layer before any upgrade",
                budget: Some(800_000),
                demands: vec![video(&SIMULCAST, 2, 0), video(&SIMULCAST, 2, 0)],
                choices: vec![Some(1), Some(0)],
                next_step: Some(1_000_000),
            },
            Case {
                name: "lowest layers stop at the first that does not fit, in priority order",
                budget: Some(250_000),
                demands: vec![
                    video(&SIMULCAST, 2, 1),
                    video(&[50_000], 0, 0),
                    video(&SIMULCAST, 2, 2),
                ],
                choices: vec![None, None, Some(0)],
                next_step: Some(150_000),
            },
            Case {
                name: "a track with nothing flowing costs nothing and blocks nothing",
                budget: Some(200_000),
                demands: vec![video(&[], 2, 9), video(&SIMULCAST, 2, 0)],
                choices: vec![None, Some(0)],
                next_step: Some(350_000),
            },
            Case {
                name: "a preference above the ladder means its top",
                budget: None,
                demands: vec![video(&[100_000, 300_000], 2, 0)],
                choices: vec![Some(1)],
                next_step: None,
            },
            Case {
                name: "zero budget pauses all video",
                budget: Some(0),
                demands: vec![video(&SIMULCAST, 2, 0)],
                choices: vec![None],
                next_step: Some(150_000),
            },
        ];
        for case in cases {
            let got = allocate(Budget::fixed(case.budget), &case.demands);
            assert_eq!(got.choices, case.choices, "{}", case.name);
            assert_eq!(got.next_step, case.next_step, "{}", case.name);
            let expect_allocated: u64 = case
                .demands
                .iter()
                .zip(&got.choices)
                .filter_map(|(d, c)| c.map(|c| d.ladder[c]))
                .sum();
            assert_eq!(got.allocated, expect_allocated, "{}", case.name);
            if let Some(budget) = case.budget {
                let audio: u64 = case
                    .demands
                    .iter()
                    .filter(|d| d.audio)
                    .map(|d| d.ladder[0])
                    .sum();
                assert!(got.allocated <= budget.max(audio), "{}", case.name);
            }
        }
    }

    #[test]
    fn desired_sums_preferences() {
        let got = allocate(
            Budget::fixed(Some(0)),
            &[
                audio(40_000),
                video(&SIMULCAST, 1, 0),
                video(&SIMULCAST, 7, 0),
            ],
        );
        assert_eq!(got.desired, 40_000 + 500_000 + 1_500_000);
        assert_eq!(got.allocated, 40_000);
    }

    #[test]
    fn a_forwarded_track_pauses_only_when_the_keep_budget_fails_too() {
        // The first track (priority 9, 10 kbit/s) is never paused by an estimate: the cases are
        // about the tracks after it.
        let budget = |grow: u64, keep: u64| Budget {
            grow: Some(grow),
            keep: Some(keep),
            hard: None,
        };
        let stage = || forwarded(&[10_000], 0, 9);
        struct Case {
            name: &'static str,
            budget: Budget,
            demands: Vec<Demand>,
            choices: Vec<Option<usize>>,
            next_step: Option<u64>,
        }
        let cases = vec![
            Case {
                name: "a dip below the lowest layer keeps a forwarded track at it",
                budget: budget(110_000, 210_000),
                demands: vec![stage(), forwarded(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), Some(0)],
                next_step: Some(350_000),
            },
            Case {
                name: "a paused track resumes only within the grow budget",
                budget: budget(110_000, 210_000),
                demands: vec![stage(), video(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), None],
                next_step: Some(150_000),
            },
            Case {
                name: "when even the keep budget fails, the forwarded track pauses",
                budget: budget(110_000, 130_000),
                demands: vec![stage(), forwarded(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), None],
                next_step: Some(150_000),
            },
            Case {
                name: "upgrades answer to the grow budget: a forwarded track goes down a layer",
                budget: budget(410_000, 2_000_000),
                demands: vec![stage(), forwarded(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), Some(0)],
                next_step: Some(350_000),
            },
            Case {
                name: "a paused higher priority is not passed over for a forwarded lower one",
                budget: budget(110_000, 410_000),
                demands: vec![
                    stage(),
                    forwarded(&SIMULCAST, 2, 0),
                    video(&SIMULCAST, 2, 5),
                ],
                choices: vec![Some(0), None, None],
                next_step: Some(150_000),
            },
            Case {
                name: "the forwarded higher priority stays, the paused lower one waits",
                budget: budget(210_000, 410_000),
                demands: vec![
                    stage(),
                    video(&SIMULCAST, 2, 0),
                    forwarded(&SIMULCAST, 2, 5),
                ],
                choices: vec![Some(0), None, Some(0)],
                next_step: Some(150_000),
            },
            Case {
                name: "a keep budget below the grow budget counts as the grow budget",
                budget: budget(1_010_000, 50_000),
                demands: vec![stage(), forwarded(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), Some(1)],
                next_step: Some(1_000_000),
            },
            Case {
                name: "the first video track keeps its lowest layer below any estimate",
                budget: budget(50_000, 50_000),
                demands: vec![forwarded(&SIMULCAST, 2, 0), forwarded(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), None],
                next_step: Some(150_000),
            },
            Case {
                name: "the first video track resumes below any estimate too",
                budget: budget(0, 0),
                demands: vec![audio(40_000), video(&SIMULCAST, 2, 0)],
                choices: vec![Some(0), Some(0)],
                next_step: Some(350_000),
            },
            Case {
                name: "but never beyond the hard cap",
                budget: Budget {
                    hard: Some(100_000),
                    ..budget(50_000, 50_000)
                },
                demands: vec![forwarded(&SIMULCAST, 2, 0)],
                choices: vec![None],
                next_step: Some(150_000),
            },
        ];
        for case in cases {
            let got = allocate(case.budget, &case.demands);
            assert_eq!(got.choices, case.choices, "{}", case.name);
            assert_eq!(got.next_step, case.next_step, "{}", case.name);
        }
    }
}
