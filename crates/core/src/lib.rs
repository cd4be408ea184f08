//! Switchboard's sans-IO SFU core.
//!
//! A [`Shard`] owns rooms and their participants, each with one `str0m::Rtc` in RTP mode, and
//! forwards every published track's packets to every other participant of the room. It does no
//! I/O and reads no clock: time and datagrams come in through [`Shard::handle_input`], datagrams
//! to send, signalling messages and the next wake-up time come out of [`Shard::poll_output`]
//! (the contract is spelled out on [`shard`]). See `docs/architecture.md` for the path of one
//! packet and `docs/robustness.md` for the isolation rule and the bounds.

pub mod allocate;
pub mod dynacast;
mod forward;
pub mod frame_size;
mod hash;
mod ids;
mod keyframe;
mod level;
pub mod red;
mod rewrite;
mod rtc_template;
pub mod screen;
pub mod shard;
mod stats;
mod stun;

pub use forward::{Decision, DropReason, Forwarder, OutCodec, PacketMeta};
pub use ids::ParticipantId;
pub use keyframe::KeyframeThrottle;
pub use rewrite::{SeqRewriter, TsRewriter};
pub use rtc_template::{NewRtc, RtcSetupError, RtcTemplate};
pub use shard::interface::{
    AdminAction, AdminReply, Command, Fault, Input, Notification, Output, ShardConfig, Transport,
};
pub use shard::Shard;
pub use stats::{Failure, FailureCounts, FailureKind, Op, ShardStats};
pub use stun::{is_stun, local_ufrag};
