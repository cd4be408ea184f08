//! The bandwidth allocator: given what one subscriber's link can carry and the tracks it
//! receives, decide which layer of each to forward. A pure function of its inputs, run on a
//! timer (never per packet), so every decision can be reproduced from a table.
//!
//! Order of service: audio first (always, it is cheap and matters most), then video in
//! priority order: first every video track's lowest layer as long as it fits, then upgrades,
//! one track at a time up to its preferred quality. A higher-priority track is never paused or
//! held back so that a lower one can have more; a track whose lowest layer does not fit is
//! paused, and so is every track after it.

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

/// `budget`: bits per second the link carries (`None`: unlimited).
pub fn allocate(budget: Option<u64>, demands: &[Demand]) -> Allocation {
    let budget = budget.unwrap_or(u64::MAX);
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
    for &i in &order {
        let cost = demands[i].ladder[0];
        if allocated.saturating_add(cost) > budget {
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
                if allocated.saturating_add(step) > budget {
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
        }
    }

    fn audio(rate: u64) -> Demand {
        Demand {
            ladder: vec![rate],
            max: 0,
            priority: 0,
            audio: true,
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
            let got = allocate(case.budget, &case.demands);
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
            Some(0),
            &[
                audio(40_000),
                video(&SIMULCAST, 1, 0),
                video(&SIMULCAST, 7, 0),
            ],
        );
        assert_eq!(got.desired, 40_000 + 500_000 + 1_500_000);
        assert_eq!(got.allocated, 40_000);
    }
}
