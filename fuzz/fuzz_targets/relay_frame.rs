//! Relay frames (the header of every message on a data channel the SFU relays): whatever parses
//! writes back to the same bytes, with the peer id the server would write in its place.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::relay::{RelayFrame, MAX_RELAY_FRAME};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = RelayFrame::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_RELAY_FRAME);
    let mut out = Vec::new();
    frame.write(&mut out);
    assert_eq!(out, data, "a parsed frame writes back as it was read");
    // The server's copy names the sender instead: it parses too, with the same payload.
    let copy = RelayFrame {
        peer: Some("sender-1"),
        ..frame
    };
    let mut out = Vec::new();
    copy.write(&mut out);
    let again = RelayFrame::parse(&out).expect("the server's copy parses");
    assert_eq!(
        (again.peer, again.payload, again.text),
        (Some("sender-1"), frame.payload, frame.text)
    );
});
