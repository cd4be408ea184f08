//! A client's answer, through the screen and into the shard: to the server's offer of a
//! receive slot (the room has a publisher, so the shard offers one after the client's first
//! offer), or stray, with no offer outstanding (first input byte chooses).
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Stage;

thread_local! {
    static STAGE: RefCell<Option<Stage>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(sdp) = std::str::from_utf8(rest) else {
        return;
    };
    STAGE.with(|cell| {
        let mut slot = Stage::tick(cell);
        let Some(stage) = slot.as_mut() else { return };
        let offer = stage.offer.clone();
        let world = &mut stage.world;
        let (pid, _) = world.join_bare("fuzz");
        if mode & 1 == 1 {
            world.offer_text(pid, &offer);
            world.run(Duration::from_millis(10));
        }
        if world.answer_text(pid, sdp) {
            world.run(Duration::from_millis(20));
        }
        world.leave_bare(pid);
    });
});
