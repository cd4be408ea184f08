//! Datagrams from addresses the shard has never seen: STUN (with and without a joined
//! participant's ufrag), DTLS, RTP or garbage. The first bytes choose the source port and
//! whether the known ufrag is spliced into the input, so STUN reaches past the ufrag lookup,
//! and whether they arrive over UDP or as ICE-TCP frames; the rest is up to 16 datagrams, each a
//! big-endian u16 length and its bytes.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use switchboard_core::Transport;
use switchboard_fuzz::{Stage, SERVER};

thread_local! {
    static STAGE: RefCell<Option<Stage>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    STAGE.with(|cell| {
        let mut slot = Stage::tick(cell);
        let Some(stage) = slot.as_mut() else { return };
        let offer = stage.offer.clone();
        run(&mut stage.world, &offer, data);
    });
});

fn run(world: &mut switchboard_fuzz::World, offer: &str, data: &[u8]) {
    let (pid, ufrag) = world.join_bare("fuzz");
    world.offer_text(pid, offer);
    let port = u16::from_be_bytes([data[0], data[1]]);
    let source = SocketAddr::new(SERVER.ip(), port.max(1));
    let transport = if data[2] & 2 == 2 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let mut body = &data[3..];
    for _ in 0..16 {
        if body.len() < 2 {
            break;
        }
        let len = (u16::from_be_bytes([body[0], body[1]]) as usize).min(body.len() - 2);
        let datagram = &body[2..2 + len];
        body = &body[2 + len..];
        if data[2] & 1 == 1 {
            let mut spliced = datagram.to_vec();
            splice_username(&mut spliced, ufrag.as_bytes());
            world.inject_on(transport, source, &spliced);
            continue;
        }
        world.inject_on(transport, source, datagram);
    }
    world.run(std::time::Duration::from_millis(20));
    world.leave_bare(pid);
}

/// Overwrite the value of the first USERNAME attribute (0x0006) of a STUN-looking datagram with
/// `ufrag:`, keeping the length field honest.
fn splice_username(datagram: &mut Vec<u8>, ufrag: &[u8]) {
    let mut at = 20;
    while at + 4 <= datagram.len() {
        let kind = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        let len = u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]) as usize;
        let end = (at + 4 + len).min(datagram.len());
        if kind == 0x0006 {
            let mut value = ufrag.to_vec();
            value.push(b':');
            value.extend_from_slice(&datagram[at + 4..end]);
            let new_len = value.len().min(u16::MAX as usize);
            datagram.splice(at + 2..end, {
                let mut v = (new_len as u16).to_be_bytes().to_vec();
                v.extend_from_slice(&value[..new_len]);
                v
            });
            return;
        }
        at = end + (4 - len % 4) % 4;
    }
}
