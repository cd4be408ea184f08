//! The guard around a participant's media engine.
//!
//! str0m is fail-fast: a bug or an unexpected input makes it panic. A panic that escaped would
//! unwind the shard thread and take every room on it along, so the shard's rule is: **no code
//! outside this module touches an `Rtc`**. The `Rtc` is a private field of [`Engine`], and the
//! only way in is [`Engine::call`], which runs the closure under `catch_unwind`. A panic (or a
//! str0m error the caller reports with [`Engine::fail`]) poisons the engine: every later call
//! returns [`Failed`] at once without touching the `Rtc` again, and the shard removes the
//! participant (`left {reason: "mediaError"}`) once the current input is done. The room and the
//! shard carry on.

use std::panic::{catch_unwind, AssertUnwindSafe};

use str0m::Rtc;
use tracing::warn;

use crate::ids::ParticipantId;
use crate::stats::{Failure, FailureKind, Op};

/// The engine failed (now or earlier); the participant is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed;

pub(crate) struct Engine {
    rtc: Rtc,
    failure: Option<Failure>,
    /// Set by a test's fault injection: the next call panics inside the guard.
    panic_next: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(rtc: Rtc) -> Self {
        Engine {
            rtc,
            failure: None,
            panic_next: false,
        }
    }

    /// Run `f` on the `Rtc`, guarded. `op` names what the shard was doing, for the log line and
    /// the failure metric.
    pub fn call<R>(
        &mut self,
        who: ParticipantId,
        op: Op,
        f: impl FnOnce(&mut Rtc) -> R,
    ) -> Result<R, Failed> {
        if self.failure.is_some() {
            return Err(Failed);
        }
        let inject = std::mem::take(&mut self.panic_next);
        let rtc = &mut self.rtc;
        match catch_unwind(AssertUnwindSafe(move || {
            if inject {
                panic!("injected fault");
            }
            f(rtc)
        })) {
            Ok(value) => Ok(value),
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_owned());
                warn!(participant = %who, during = op.label(), panic = %what,
                      "media engine panicked; removing the participant");
                self.failure = Some(Failure {
                    op,
                    kind: FailureKind::Panic,
                });
                Err(Failed)
            }
        }
    }

    /// The engine reported an error it cannot continue from (str0m's `poll_output` returned
    /// `Err`): poison it like a panic.
    pub fn fail(&mut self, who: ParticipantId, op: Op, error: &dyn std::fmt::Display) {
        if self.failure.is_none() {
            warn!(participant = %who, during = op.label(), %error, "media engine failed");
            self.failure = Some(Failure {
                op,
                kind: FailureKind::Error,
            });
        }
    }

    pub fn failure(&self) -> Option<Failure> {
        self.failure
    }

    pub fn inject_panic(&mut self) {
        self.panic_next = true;
    }

    /// Hard-stop the engine and drop it, still guarded: a poisoned `Rtc` is dropped without
    /// being called, and a panic while dropping is contained.
    pub fn close(mut self, who: ParticipantId) {
        if self.failure.is_none() {
            let _ = self.call(who, Op::Close, |rtc| rtc.disconnect());
        }
        let rtc = self.rtc;
        if catch_unwind(AssertUnwindSafe(move || drop(rtc))).is_err() {
            warn!(participant = %who, "media engine panicked while being dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtc_template::RtcTemplate;
    use std::time::Instant;

    #[test]
    fn a_panic_poisons_only_this_engine() {
        let template = RtcTemplate::new().expect("crypto");
        let addr = [(
            crate::shard::interface::Transport::Udp,
            "127.0.0.1:5000".parse().expect("addr"),
        )];
        let who = ParticipantId(1);
        let mut a = Engine::new(template.build(Instant::now(), &addr).expect("rtc").rtc);
        let mut b = Engine::new(template.build(Instant::now(), &addr).expect("rtc").rtc);
        assert_eq!(a.call(who, Op::Query, |rtc| rtc.is_alive()), Ok(true));
        let out: Result<(), Failed> = a.call(who, Op::Offer, |_| panic!("boom"));
        assert_eq!(out, Err(Failed));
        assert_eq!(
            a.failure(),
            Some(Failure {
                op: Op::Offer,
                kind: FailureKind::Panic
            })
        );
        // Poisoned: the closure never runs again.
        let mut ran = false;
        assert_eq!(a.call(who, Op::Query, |_| ran = true), Err(Failed));
        assert!(!ran);
        assert_eq!(b.call(who, Op::Query, |rtc| rtc.is_alive()), Ok(true));
        b.inject_panic();
        assert_eq!(b.call(who, Op::Query, |rtc| rtc.is_alive()), Err(Failed));
        a.close(who);
        b.close(who);
    }
}
