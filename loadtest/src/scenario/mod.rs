//! Load scenarios: many [`Client`](crate::Client)s in many rooms, joined at a bounded rate, then
//! a measurement window in which every receiver's counters are summed into a [`Report`]: what
//! the SFU forwarded (as seen by the receivers), the loss, the one-way latency, join times and
//! CPU/memory use.
//!
//! A run always ends by itself: joins have a timeout, the wait for media to settle and the
//! measurement window are bounded, and leaving is bounded too. Only loopback targets are allowed
//! ([`check_loopback_url`]): this is a load generator.
//!
//! The module is split by job: `config.rs` (what to run, its limits and checks), `runner.rs`
//! (joining, settling, the window, leaving), `collect.rs` (what changed in a client's counters
//! since the last look), `summary.rs` (the window's totals into a [`Report`]), `report.rs` (the
//! report's shape and its table) and `progress.rs` (the once-a-second line).

mod collect;
mod config;
mod progress;
mod report;
mod runner;
mod summary;

pub use collect::loss_percent;
pub(crate) use collect::{rate, Delta, Tally};
pub use config::{
    check_loopback_url, default_video, video_for_bitrate, video_pps, Scenario, ScenarioError, Seat,
    AUDIO_PAYLOAD, AUDIO_PPS, MAX_DURATION, MAX_PARTICIPANTS,
};
pub use progress::{Phase, Progress, ProgressFn};
pub use report::{ParticipantReport, Report, ScenarioInfo, ServerReport, TrackReport, VideoInfo};
pub(crate) use runner::LEAVE_BUDGET;
pub use runner::{run_scenario, run_scenario_blocking};
