//! Switchboard's sans-IO SFU core.
//!
//! A [`Shard`] owns rooms and their participants, each with one `str0m::Rtc` in RTP mode, and
//! forwards every published track's packets to every other participant of the room. It does no
//! I/O and reads no clock: time and datagrams come in through [`Shard::handle_input`], datagrams
//! to send, signalling messages and the next wake-up time come out of [`Shard::poll_output`].
//! See `docs/architecture.md` for the path of one packet.

mod admin;
mod forward;
mod hash;
mod ids;
mod keyframe;
mod participant;
mod rewrite;
mod rtc_template;
mod shard;
mod stats;
mod stun;

pub use admin::{AdminAction, AdminReply, Notification};
pub use forward::{Decision, DropReason, Forwarder, OutCodec, PacketMeta};
pub use ids::{ParticipantId, TrackKey};
pub use keyframe::KeyframeThrottle;
pub use rewrite::{SeqRewriter, TsRewriter};
pub use rtc_template::{NewRtc, RtcSetupError, RtcTemplate};
pub use shard::{Command, Input, Output, Shard, ShardConfig};
pub use stats::ShardStats;
pub use stun::{is_stun, local_ufrag};
