//! Switchboard's test and load-test client: a str0m-based WebRTC participant that speaks the
//! signalling protocol over a WebSocket, publishes synthetic audio/video ([`synth`]) and
//! measures what it receives ([`ClientStats`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_loadtest::ClientError> {
//! use std::time::Duration;
//! use switchboard_loadtest::{Client, ClientOptions};
//!
//! let alice = Client::join(ClientOptions::new("ws://127.0.0.1:7880/v1/ws", "demo")).await?;
//! alice
//!     .wait_until("media connected", Duration::from_secs(10), |s| s.connected)
//!     .await?;
//! alice.leave().await?;
//! # Ok(())
//! # }
//! ```
//!
//! On top of the client: [`scenario`] runs many of them (rooms × publishers + subscribers) and
//! sums what the receivers saw into a [`Report`] (egress, loss, latency, join times, server and
//! client CPU from [`procstat`]); [`capacity`] grows a scenario step by step until it degrades;
//! [`soak`] keeps one running for a long time with churn, sampling the server for leaks;
//! [`baseline`] measures a bare in-process UDP forwarder of the same shape, the kernel-only
//! ceiling. The `switchboard-loadtest` binary puts them behind flags (`docs/benchmarks.md`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_loadtest::scenario::ScenarioError> {
//! use switchboard_loadtest::{run_scenario, Scenario};
//!
//! let mut sc = Scenario::new("ws://127.0.0.1:7880/v1/ws");
//! sc.publishers_per_room = 3;
//! let report = run_scenario(&sc, Some(&|p: &switchboard_loadtest::Progress| eprintln!("{p}")))
//!     .await?;
//! println!("{}", report.table());
//! # Ok(())
//! # }
//! ```

pub mod baseline;
pub mod capacity;
mod client;
mod driver;
mod error;
pub mod forged;
mod options;
pub mod procstat;
pub mod red;
pub mod scenario;
pub mod soak;
mod stats;
pub mod synth;

pub use baseline::{run_baseline, BaselineOptions, BaselineReport};
pub use capacity::{run_capacity, CapacityOptions, CapacityReport, Dimension};
pub use client::Client;
pub use error::ClientError;
pub use options::{rtc_config, ClientOptions, DataOptions, VideoOptions, LEAVE_TIMEOUT};
pub use scenario::{run_scenario, run_scenario_blocking, Progress, Report, Scenario};
pub use soak::{run_soak, SoakOptions, SoakReport};
pub use stats::{percentile, ClientStats, RecvStats, TrackOnSlot, LATENCY_SAMPLES};
pub use switchboard_protocol::{ErrorCode, LeaveReason, MediaKind};
