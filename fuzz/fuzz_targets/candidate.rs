//! Trickled remote candidate lines (up to 8 per input, one per line), screened and parsed as
//! the session task does, then given to the shard for a participant whose offer it applied.
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Stage;

thread_local! {
    static STAGE: RefCell<Option<Stage>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    STAGE.with(|cell| {
        let mut slot = Stage::tick(cell);
        let Some(stage) = slot.as_mut() else { return };
        let offer = stage.offer.clone();
        let world = &mut stage.world;
        let (pid, _) = world.join_bare("fuzz");
        world.offer_text(pid, &offer);
        for line in text.split('\n').take(8) {
            world.candidate_text(pid, line);
        }
        world.run(Duration::from_millis(20));
        world.leave_bare(pid);
    });
});
