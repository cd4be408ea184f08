//! A client's offer through the real path: the session task's screen and parse, then the shard
//! applying it to a new participant's engine in a room with a publisher (so an accepted offer
//! also makes the shard offer the newcomer a receive slot), then time passing, then the leave.
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Stage;

thread_local! {
    static STAGE: RefCell<Option<Stage>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    STAGE.with(|cell| {
        let mut slot = Stage::tick(cell);
        let Some(stage) = slot.as_mut() else { return };
        let world = &mut stage.world;
        let (pid, _) = world.join_bare("fuzz");
        if world.offer_text(pid, sdp) {
            world.run(Duration::from_millis(20));
            // For one input in four (parsing is most of the cost), the same offer again on the
            // same session: a renegotiation with what was accepted.
            if data.len() % 4 == 0 {
                world.offer_text(pid, sdp);
            }
        }
        world.leave_bare(pid);
    });
});
