//! ICE-TCP: the one TCP port per node that clients whose UDP is blocked connect to (RFC 6544
//! passive candidates, RFC 4571 framing: each packet is preceded by its length in two bytes).
//!
//! A connection's first frame must be a STUN binding request whose USERNAME names one of our ICE
//! ufrags; the [`UfragDirectory`] (kept by the shards from `Output::IceUfrag`) says which shard
//! holds it, and from then on every frame goes to that shard as a datagram from the connection's
//! remote address. The shard authenticates the request exactly as it does for UDP; this module
//! only routes. What the shard sends back to that address over TCP is written to the connection,
//! framed.
//!
//! The connections live on a thread of their own (not the shards'): they are few, and a slow
//! TCP peer must not stall a shard's turn. Reading waits when the shard's queue is full (TCP's
//! own flow control then slows the client); writing drops when a connection's queue is full, as
//! a full UDP send buffer would.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Largest frame accepted or sent. ICE, DTLS and SRTP packets are MTU-sized; a bigger frame is a
/// broken or hostile client, whose connection is closed.
pub(crate) const MAX_FRAME: usize = 4096;
/// The first frame (the STUN check) must arrive this soon after the connection opens.
const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);
/// A connection silent this long is closed (a live ICE peer checks consent every ~5 s).
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Frames queued for writing to one connection; beyond it, frames are dropped.
const WRITE_QUEUE: usize = 512;
/// Open ICE-TCP connections per node; more are closed at once.
pub const MAX_TCP_CONNECTIONS: usize = 10_000;
/// Frames (and opens/closes) queued towards one shard.
pub(crate) const SHARD_QUEUE: usize = 4096;

/// What a TCP connection tells its shard.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A connection from `remote` routes to this shard; frames for it go to `writer`.
    Open {
        remote: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    Frame {
        remote: SocketAddr,
        frame: Vec<u8>,
    },
    Closed {
        remote: SocketAddr,
    },
}

/// ICE ufrag → the shard holding the participant with it.
#[derive(Debug, Default)]
pub(crate) struct UfragDirectory {
    map: Mutex<HashMap<String, usize>>,
}

impl UfragDirectory {
    pub fn hold(&self, ufrag: String, shard: usize) {
        self.map.lock().insert(ufrag, shard);
    }

    /// Forget `ufrag` if `shard` holds it (a newer holder elsewhere keeps it).
    pub fn release(&self, ufrag: &str, shard: usize) {
        let mut map = self.map.lock();
        if map.get(ufrag) == Some(&shard) {
            map.remove(ufrag);
        }
    }

    pub fn shard_of(&self, ufrag: &str) -> Option<usize> {
        self.map.lock().get(ufrag).copied()
    }
}

/// Why a connection was closed before it reached a shard (for the debug log).
#[derive(Debug)]
enum Refused {
    Io(io::Error),
    TooLarge(usize),
    NoFirstFrame,
    NotStun,
    UnknownUfrag,
    ShardGone,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Io(e) => write!(f, "I/O error: {e}"),
            Refused::TooLarge(len) => write!(f, "a {len}-byte frame (at most {MAX_FRAME})"),
            Refused::NoFirstFrame => write!(f, "no frame within {FIRST_FRAME_WITHIN:?}"),
            Refused::NotStun => write!(f, "the first frame is not a STUN check naming a ufrag"),
            Refused::UnknownUfrag => write!(f, "the ufrag names no session of this node"),
            Refused::ShardGone => write!(f, "the session's shard has stopped"),
        }
    }
}

/// The thread's accept loops and connections.
pub(crate) struct Acceptor {
    pub listeners: Vec<std::net::TcpListener>,
    pub directory: Arc<UfragDirectory>,
    pub shards: Vec<mpsc::Sender<TcpEvent>>,
}

/// Start the ICE-TCP thread; it runs until the process ends.
pub(crate) fn spawn(acceptor: Acceptor) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sb-ice-tcp".into())
        .spawn(move || runtime.block_on(run(acceptor)))?;
    Ok(())
}

async fn run(acceptor: Acceptor) {
    let open = Arc::new(AtomicUsize::new(0));
    let shards = Arc::new(acceptor.shards);
    let mut loops = Vec::new();
    for listener in acceptor.listeners {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "could not register an ICE-TCP listener");
                continue;
            }
        };
        let (directory, shards, open) = (acceptor.directory.clone(), shards.clone(), open.clone());
        loops.push(tokio::spawn(accept_loop(listener, directory, shards, open)));
    }
    for l in loops {
        let _ = l.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    directory: Arc<UfragDirectory>,
    shards: Arc<Vec<mpsc::Sender<TcpEvent>>>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                debug!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            warn!(%remote, max = MAX_TCP_CONNECTIONS, "ICE-TCP connection refused: too many");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (directory, shards, open) = (directory.clone(), shards.clone(), open.clone());
        tokio::spawn(async move {
            if let Err(why) = connection(stream, remote, &directory, &shards).await {
                debug!(%remote, %why, "ICE-TCP connection closed before routing");
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Read one RFC 4571 frame; `Ok(None)` at a clean end of stream.
async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<Vec<u8>>, Refused> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Refused::Io(e)),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_FRAME {
        return Err(Refused::TooLarge(len));
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).await.map_err(Refused::Io)?;
    Ok(Some(frame))
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    directory: &UfragDirectory,
    shards: &[mpsc::Sender<TcpEvent>],
) -> Result<(), Refused> {
    let (mut reader, mut writer) = stream.into_split();
    let first = match tokio::time::timeout(FIRST_FRAME_WITHIN, read_frame(&mut reader)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) | Err(_) => return Err(Refused::NoFirstFrame),
        Ok(Err(e)) => return Err(e),
    };
    let ufrag = switchboard_core::local_ufrag(&first).ok_or(Refused::NotStun)?;
    let index = directory.shard_of(ufrag).ok_or(Refused::UnknownUfrag)?;
    let shard = shards.get(index).ok_or(Refused::ShardGone)?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    shard
        .send(TcpEvent::Open { remote, writer: tx })
        .await
        .map_err(|_| Refused::ShardGone)?;
    info!(%remote, shard = index, "ICE-TCP connection routed");
    let write = tokio::spawn(async move {
        let mut out = Vec::with_capacity(MAX_FRAME + 2);
        while let Some(frame) = rx.recv().await {
            let Ok(len) = u16::try_from(frame.len()) else {
                continue;
            };
            out.clear();
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&frame);
            if writer.write_all(&out).await.is_err() {
                break;
            }
        }
    });
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        if shard.send(TcpEvent::Frame { remote, frame }).await.is_err() {
            break;
        }
        next = match tokio::time::timeout(IDLE_LIMIT, read_frame(&mut reader)).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(why)) => {
                debug!(%remote, %why, "ICE-TCP connection broken");
                None
            }
            Err(_) => {
                debug!(%remote, "ICE-TCP connection idle; closing");
                None
            }
        };
    }
    write.abort();
    let _ = shard.send(TcpEvent::Closed { remote }).await;
    Ok(())
}
