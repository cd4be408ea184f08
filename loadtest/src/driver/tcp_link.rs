//! ICE-TCP for the client (`ClientOptions::ice_tcp`): str0m's checks and media towards a TCP
//! candidate of the server go over a TCP connection to it (opened on the first frame, RFC 4571
//! framing: a two-byte length before each packet), and what arrives on it comes back to the
//! loop as frames from that address.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frames waiting to be written (all connections together); beyond it they are dropped, as a
/// full UDP socket buffer would drop datagrams.
const OUT_QUEUE: usize = 1024;
/// Frames read and not yet handled by the loop.
const IN_QUEUE: usize = 1024;
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// The largest frame read; a larger one ends that connection.
const MAX_FRAME: usize = 4096;

/// The loop's end of the link.
pub(super) struct TcpLink {
    out: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    pub(super) frames: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
}

impl TcpLink {
    /// Start the link's task (it ends when the link is dropped).
    pub(super) fn spawn() -> TcpLink {
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let (in_tx, frames) = mpsc::channel(IN_QUEUE);
        tokio::spawn(writer(out_rx, in_tx));
        TcpLink { out, frames }
    }

    /// Queue a frame for `destination`; false when it was dropped (queue full, link gone).
    pub(super) fn send(&self, destination: SocketAddr, frame: Vec<u8>) -> bool {
        self.out.try_send((destination, frame)).is_ok()
    }
}

async fn writer(
    mut out: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    frames: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) {
    let mut connections: HashMap<SocketAddr, tokio::net::tcp::OwnedWriteHalf> = HashMap::new();
    let mut buf = Vec::new();
    while let Some((destination, frame)) = out.recv().await {
        let Ok(len) = u16::try_from(frame.len()) else {
            continue;
        };
        let write = match connections.entry(destination) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => {
                let connect = tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(destination));
                let Ok(Ok(stream)) = connect.await else {
                    continue; // the frame is lost; ICE retries its check, and we connect again
                };
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                tokio::spawn(reader(read, destination, frames.clone()));
                slot.insert(write)
            }
        };
        buf.clear();
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&frame);
        if write.write_all(&buf).await.is_err() {
            connections.remove(&destination);
        }
    }
}

async fn reader(
    mut read: tokio::net::tcp::OwnedReadHalf,
    source: SocketAddr,
    frames: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) {
    let mut len = [0u8; 2];
    while read.read_exact(&mut len).await.is_ok() {
        let len = usize::from(u16::from_be_bytes(len));
        if len > MAX_FRAME {
            return;
        }
        let mut frame = vec![0u8; len];
        if read.read_exact(&mut frame).await.is_err() || frames.send((source, frame)).await.is_err()
        {
            return;
        }
    }
}
