//! What a connected publisher can send: authenticated RTP with header fields, transport-cc
//! sequence numbers and payloads of the fuzzer's choosing (its engine encrypts them, so they
//! pass SRTP), and raw datagrams from its own address (which must not disturb its session or
//! the subscriber's). One connected room is kept across inputs; when the fuzzer gets its
//! publisher removed, the next input starts a new room.
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{connected_pair, World};

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot
            .as_ref()
            .is_none_or(|w| w.clients.iter().any(|c| c.removed))
        {
            *slot = connected_pair();
        }
        let Some(world) = slot.as_mut() else {
            return;
        };
        run_ops(world, data);
    });
});

/// The input is a list of operations: an opcode byte, then its fields.
fn run_ops(world: &mut World, mut data: &[u8]) {
    let publisher_addr = world.clients[0].addr;
    for _ in 0..64 {
        let Some((&op, rest)) = data.split_first() else {
            return;
        };
        data = rest;
        match op % 4 {
            // RTP: video?, marker?, twcc?, seq (2), ts (4), twcc (2), payload length (1), payload.
            0 | 1 => {
                if data.len() < 10 {
                    return;
                }
                let flags = data[0];
                let seq = u16::from_be_bytes([data[1], data[2]]) as u64;
                let ts = u32::from_be_bytes([data[3], data[4], data[5], data[6]]);
                let twcc = u16::from_be_bytes([data[7], data[8]]);
                let len = (data[9] as usize).min(data.len() - 10);
                let payload = &data[10..10 + len];
                world.send_rtp(
                    0,
                    flags & 1 == 1,
                    seq,
                    ts,
                    flags & 2 == 2,
                    (flags & 4 == 4).then_some(twcc),
                    payload,
                );
                data = &data[10 + len..];
            }
            // A raw datagram from the publisher's address: length (1), bytes.
            2 => {
                let Some((&len, rest)) = data.split_first() else {
                    return;
                };
                let len = (len as usize).min(rest.len());
                world.inject(publisher_addr, &rest[..len]);
                data = &rest[len..];
            }
            // Let time pass: 0..255 ms.
            _ => {
                let Some((&ms, rest)) = data.split_first() else {
                    return;
                };
                world.run(Duration::from_millis(ms as u64));
                data = rest;
            }
        }
    }
}
