//! Sending a shard's datagrams: runs to one destination leave in one `sendmsg` with UDP GSO.
//!
//! The shard drives one subscriber at a time (`Shard::poll_output`), so the datagrams of a
//! fan-out reach the runtime grouped by destination: a video frame is several packets of one
//! size to the same address. UDP generic segmentation offload (`UDP_SEGMENT`, Linux 4.18) lets
//! one `sendmsg` carry such a run: the kernel routes, builds headers and passes netfilter once
//! for the run and cuts it into datagrams as late as it can (on loopback at the receiving
//! socket, on a NIC in the driver or the hardware). Receivers see the same datagrams as before.
//!
//! A run is what GSO can carry: up to [`MAX_SEGMENTS`] datagrams and [`MAX_RUN_BYTES`] to one
//! destination, every one the size of the first except the last, which may be shorter. Anything
//! else goes out with one `sendto` per datagram, as does everything when GSO is off or the
//! kernel refuses it.
//!
//! Both kinds of send are made on the socket itself (non-blocking), not through tokio's
//! readiness: a full send buffer drops what was being sent either way, and the shard never waits
//! to write.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::{SockAddr, SockRef};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

/// Datagrams in one GSO send at most (the kernel's `UDP_MAX_SEGMENTS` is 64 before 6.9).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO send at most: one UDP datagram's payload (65 507 over IPv4) with room left.
pub(crate) const MAX_RUN_BYTES: usize = 60_000;

/// What a shard's egress has done, for the metrics (read from other threads).
#[derive(Debug, Default)]
pub struct EgressCounters {
    /// `sendto`/`sendmsg` calls that sent something.
    pub send_calls: AtomicU64,
    /// Datagrams those calls carried.
    pub datagrams: AtomicU64,
    /// Datagrams the kernel refused (a full send buffer, an unreachable destination), and
    /// ICE-TCP frames for a closed or full connection.
    pub dropped: AtomicU64,
}

impl EgressCounters {
    pub(crate) fn snapshot(&self) -> EgressStats {
        EgressStats {
            send_calls: self.send_calls.load(Ordering::Relaxed),
            datagrams: self.datagrams.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// [`EgressCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressStats {
    pub send_calls: u64,
    pub datagrams: u64,
    pub dropped: u64,
}

/// Datagrams to one destination waiting to leave together.
#[derive(Debug, Default)]
pub(crate) struct Run {
    destination: Option<SocketAddr>,
    segments: Vec<Vec<u8>>,
    /// The first segment's length: GSO's segment size.
    size: usize,
    bytes: usize,
    /// A shorter segment ended the run: it can only be the last one.
    closed: bool,
}

impl Run {
    /// Whether a datagram of `len` bytes to `destination` can join the run.
    pub(crate) fn fits(&self, destination: SocketAddr, len: usize) -> bool {
        match self.destination {
            None => true,
            Some(d) => {
                d == destination
                    && !self.closed
                    && len <= self.size
                    && self.segments.len() < MAX_SEGMENTS
                    && self.bytes + len <= MAX_RUN_BYTES
            }
        }
    }

    /// Add a datagram; the caller has checked [`Run::fits`].
    pub(crate) fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        if self.destination.is_none() {
            self.destination = Some(destination);
            self.size = contents.len();
        } else if contents.len() < self.size {
            self.closed = true;
        }
        self.bytes += contents.len();
        self.segments.push(contents);
    }

    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    /// Forget the run's datagrams, keeping the room they took.
    fn clear(&mut self) {
        self.destination = None;
        self.segments.clear();
        self.size = 0;
        self.bytes = 0;
        self.closed = false;
    }
}

/// A shard's sending side: its sockets' GSO state, the run being gathered, the counters.
#[derive(Debug)]
pub(crate) struct Egress {
    /// Whether each socket still sends runs with GSO (off from the start when configured so or
    /// not on Linux; turned off for good when the kernel refuses it).
    gso: Vec<bool>,
    /// Whether each socket is IPv4 (sending picks the socket by the destination's family).
    ipv4: Vec<bool>,
    run: Run,
    counters: std::sync::Arc<EgressCounters>,
    shard: usize,
}

impl Egress {
    pub(crate) fn new(
        shard: usize,
        sockets: &[UdpSocket],
        gso: bool,
        counters: std::sync::Arc<EgressCounters>,
    ) -> Self {
        Egress {
            gso: vec![gso && cfg!(target_os = "linux"); sockets.len()],
            ipv4: sockets
                .iter()
                .map(|s| s.local_addr().is_ok_and(|a| a.is_ipv4()))
                .collect(),
            run: Run::default(),
            counters,
            shard,
        }
    }

    /// Queue a datagram: it joins the run being gathered, or that run leaves first.
    pub(crate) fn send(
        &mut self,
        sockets: &[UdpSocket],
        destination: SocketAddr,
        contents: Vec<u8>,
    ) {
        if !self.run.fits(destination, contents.len()) {
            self.flush(sockets);
        }
        self.run.push(destination, contents);
    }

    /// Send the run being gathered.
    pub(crate) fn flush(&mut self, sockets: &[UdpSocket]) {
        let Some(destination) = self.run.destination else {
            return;
        };
        // The socket of the destination's family (the first one when only one family is bound:
        // the kernel then refuses a mismatch, counted like any refused send).
        let family = self
            .ipv4
            .iter()
            .position(|v4| *v4 == destination.is_ipv4())
            .unwrap_or(0);
        if let Some(socket) = sockets.get(family) {
            // Handled: sent in one call, or dropped whole by a full send buffer.
            let handled = self.run.len() > 1
                && self.gso.get(family).copied().unwrap_or(false)
                && self.send_gso(socket, family, destination);
            if !handled {
                let socket = SockRef::from(socket);
                let address = SockAddr::from(destination);
                for contents in &self.run.segments {
                    let sent = socket.send_to(contents, &address).map(|_| 1);
                    outcome(&self.counters, self.shard, sent, 1);
                }
            }
        }
        self.run.clear();
    }

    /// The run in one `sendmsg`; false when it must go out datagram by datagram instead (true
    /// also when a full send buffer dropped it: resending each datagram would only fail again).
    fn send_gso(&mut self, socket: &UdpSocket, family: usize, destination: SocketAddr) -> bool {
        let n = self.run.len();
        match gso::send(socket, destination, &self.run.segments, self.run.size) {
            Ok(()) => {
                outcome(&self.counters, self.shard, Ok(n as u64), n as u64);
                true
            }
            // A full send buffer: the whole run is dropped (UDP semantics; NACK/RTX and the next
            // keyframe repair it), as one datagram would be.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                outcome(&self.counters, self.shard, Err(e), n as u64);
                true
            }
            Err(e) if gso::unsupported(&e) => {
                warn!(shard = self.shard, error = %e, "UDP GSO refused by the kernel; sending datagram by datagram");
                if let Some(on) = self.gso.get_mut(family) {
                    *on = false;
                }
                false
            }
            // This run only (a segment larger than the path MTU, say): one by one, where each
            // datagram gets the kernel's own answer.
            Err(e) => {
                debug!(shard = self.shard, error = %e, segments = n, "GSO send refused; sending the run datagram by datagram");
                false
            }
        }
    }

    /// A datagram that could not be handed on (an ICE-TCP frame for a closed or full connection).
    pub(crate) fn count_dropped(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the socket of `family` still sends runs with GSO (tests).
    #[cfg(test)]
    pub(crate) fn gso_on(&self, family: usize) -> bool {
        self.gso.get(family).copied().unwrap_or(false)
    }
}

/// Count what one call did: `datagrams` sent, or refused.
fn outcome(counters: &EgressCounters, shard: usize, result: std::io::Result<u64>, datagrams: u64) {
    match result {
        Ok(sent) => {
            counters.send_calls.fetch_add(1, Ordering::Relaxed);
            counters.datagrams.fetch_add(sent, Ordering::Relaxed);
        }
        Err(e) => {
            // Log the first few, then about every thousandth.
            let before = counters.dropped.fetch_add(datagrams, Ordering::Relaxed);
            if before < 10 || before / 1000 != (before + datagrams) / 1000 {
                debug!(shard, error = %e, count = before + datagrams, "send failed");
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod gso {
    use std::io::{Error, IoSlice};
    use std::net::SocketAddr;

    use socket2::{MsgHdr, SockAddr, SockRef};
    use tokio::net::UdpSocket;

    use super::MAX_SEGMENTS;

    const CMSG_HEADER: usize = std::mem::size_of::<libc::cmsghdr>();
    // The header is written by hand below: `size_t cmsg_len; int cmsg_level; int cmsg_type;`.
    const _: () = assert!(CMSG_HEADER == std::mem::size_of::<usize>() + 8);
    const fn align(n: usize) -> usize {
        let a = std::mem::size_of::<usize>();
        n.div_ceil(a) * a
    }
    /// `CMSG_SPACE(sizeof(u16))`: one control message carrying the segment size.
    const CONTROL: usize = align(CMSG_HEADER) + align(2);

    /// The control message `UDP_SEGMENT = size` (libc's `CMSG_*` helpers are `unsafe`; the
    /// layout is fixed by the assertion above).
    fn control(size: u16) -> [u8; CONTROL] {
        let mut buf = [0u8; CONTROL];
        let len = CMSG_HEADER + 2; // CMSG_LEN(2)
        let w = std::mem::size_of::<usize>();
        buf[..w].copy_from_slice(&len.to_ne_bytes());
        buf[w..w + 4].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        buf[w + 4..w + 8].copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
        buf[CMSG_HEADER..CMSG_HEADER + 2].copy_from_slice(&size.to_ne_bytes());
        buf
    }

    /// Send `segments` (at most [`MAX_SEGMENTS`], each `size` bytes but the last) in one call.
    pub(super) fn send(
        socket: &UdpSocket,
        destination: SocketAddr,
        segments: &[Vec<u8>],
        size: usize,
    ) -> std::io::Result<()> {
        let size = u16::try_from(size).map_err(|_| Error::from_raw_os_error(libc::EMSGSIZE))?;
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        let n = segments.len().min(MAX_SEGMENTS);
        for (slice, segment) in slices.iter_mut().zip(segments) {
            *slice = IoSlice::new(segment);
        }
        let control = control(size);
        let address = SockAddr::from(destination);
        let message = MsgHdr::new()
            .with_addr(&address)
            .with_buffers(&slices[..n])
            .with_control(&control);
        SockRef::from(socket).sendmsg(&message, 0).map(|_| ())
    }

    /// The kernel cannot do GSO on this socket at all (no `UDP_SEGMENT`, a device without
    /// checksum offload, IPsec), as opposed to refusing one run.
    pub(super) fn unsupported(e: &Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOPROTOOPT | libc::EOPNOTSUPP | libc::EIO)
        )
    }
}

#[cfg(not(target_os = "linux"))]
mod gso {
    use std::net::SocketAddr;

    use tokio::net::UdpSocket;

    pub(super) fn send(
        _: &UdpSocket,
        _: SocketAddr,
        _: &[Vec<u8>],
        _: usize,
    ) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    pub(super) fn unsupported(_: &std::io::Error) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;
