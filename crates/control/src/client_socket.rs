//! A client's WebSocket as both kinds of signalling connection (`/v1/ws` sessions and `/v1/peer`
//! connections) write to it: every frame within the send timeout, and a client that does not take
//! one in time (its TCP window stays shut: it stopped reading) is marked unresponsive, so a task is
//! never pinned on a dead reader.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::Serialize;
use tracing::{debug, warn};

pub(crate) struct ClientSocket {
    socket: WebSocket,
    send_timeout: Duration,
    unresponsive: bool,
}

/// What a write found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Sent, failed on a closed socket, or skipped because the client is unresponsive already.
    Done,
    /// The client just turned out not to read any more: the caller counts it and drops the
    /// connection.
    StoppedReading,
}

impl ClientSocket {
    pub fn new(socket: WebSocket, send_timeout: Duration) -> ClientSocket {
        ClientSocket {
            socket,
            send_timeout,
            unresponsive: false,
        }
    }

    pub fn is_unresponsive(&self) -> bool {
        self.unresponsive
    }

    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.socket.recv().await
    }

    async fn write(&mut self, frame: Message) -> Written {
        if self.unresponsive {
            return Written::Done;
        }
        match tokio::time::timeout(self.send_timeout, self.socket.send(frame)).await {
            Ok(Ok(())) => Written::Done,
            Ok(Err(e)) => {
                debug!(error = %e, "websocket send failed");
                Written::Done
            }
            Err(_) => {
                self.unresponsive = true;
                Written::StoppedReading
            }
        }
    }

    pub async fn ping(&mut self) -> Written {
        self.write(Message::Ping(Vec::new().into())).await
    }

    /// A normal close with `why` as the reason.
    pub async fn close(&mut self, why: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code: 1000,
            reason: why.into(),
        }));
        let _ = self.write(frame).await;
    }

    /// One JSON message as a text frame.
    pub async fn send_json(&mut self, message: &impl Serialize) -> Written {
        if self.unresponsive {
            return Written::Done;
        }
        match serde_json::to_string(message) {
            Ok(text) => self.write(Message::Text(text.into())).await,
            Err(e) => {
                warn!(error = %e, "could not serialize a server message");
                Written::Done
            }
        }
    }
}
