//! The signalling JSON as the session task reads it: a `ClientMessage`, or (when that fails)
//! a `serde_json::Value` for the error reply and the admission hook. Whatever parses must
//! survive a round trip unchanged: the server forwards what it parsed (message payloads, the
//! signal the admission hook sees) and must not alter a number or a string on the way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::ClientMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = serde_json::from_str::<ClientMessage>(text) {
        let _ = message.kind();
        let out = serde_json::to_string(&message).expect("a parsed message serializes");
        let back: ClientMessage =
            serde_json::from_str(&out).expect("what the server writes, it reads back");
        assert_eq!(format!("{message:?}"), format!("{back:?}"));
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let out = serde_json::to_string(&value).expect("a value serializes");
        let back: serde_json::Value = serde_json::from_str(&out).expect("and reads back");
        assert_eq!(value, back, "the signal changed on its way through: {out}");
    }
});
