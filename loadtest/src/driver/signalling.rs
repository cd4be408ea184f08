//! Signalling: the WebSocket (its reader task, sends with a bound) and what the server says on
//! it — membership, track announcements, SDP offers and answers, candidates, `left`, errors.

use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Direction;
use str0m::Candidate;
use switchboard_protocol::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::media_out::TxTrack;
use super::Driver;
use crate::error::ClientError;
use crate::stats::TrackOnSlot;

/// Bound on one WebSocket send; a server that stops reading is treated as gone.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// After `left` arrived, how long to wait for the server to close the WebSocket.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// WebSocket messages buffered between the reader task and the loop.
const WS_QUEUE: usize = 64;

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(super) type WsError = tokio_tungstenite::tungstenite::Error;

/// The WebSocket's read half runs in its own task. Polling the stream itself in the `select!`
/// would poll it once per datagram, and tungstenite zero-fills its read buffer on every poll:
/// that was a quarter of the load tester's CPU at 200 subscribers.
#[derive(Debug)]
pub(super) struct WsReader(JoinHandle<()>);

impl WsReader {
    pub(super) fn spawn(
        mut stream: SplitStream<Ws>,
    ) -> (WsReader, mpsc::Receiver<Result<Message, WsError>>) {
        let (tx, rx) = mpsc::channel(WS_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                let end = m.is_err();
                if tx.send(m).await.is_err() || end {
                    break;
                }
            }
        });
        (WsReader(task), rx)
    }
}

impl Drop for WsReader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Driver {
    pub(super) async fn send_msg(&mut self, msg: &ClientMessage) {
        match serde_json::to_string(msg) {
            Ok(text) => self.send_text(text).await,
            Err(e) => self.local_error(format!("serialize {}: {e}", msg.kind())),
        }
    }

    pub(super) async fn send_text(&mut self, text: String) {
        if !self.ws_open {
            return;
        }
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        match tokio::time::timeout(WS_SEND_TIMEOUT, ws.send(Message::text(text))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.local_error(format!("WebSocket send: {e}"));
                self.on_ws_closed();
            }
            Err(_) => {
                self.local_error("WebSocket send timed out".into());
                self.on_ws_closed();
            }
        }
    }

    pub(super) async fn on_ws_message(&mut self, m: Message) {
        match m {
            Message::Text(text) => match serde_json::from_str::<ServerMessage>(text.as_str()) {
                Ok(msg) => self.on_server_message(msg).await,
                Err(e) => {
                    let head: String = text.as_str().chars().take(200).collect();
                    self.local_error(format!("unparseable server message ({e}): {head}"));
                }
            },
            Message::Binary(b) => {
                self.local_error(format!("unexpected binary frame of {} bytes", b.len()));
            }
            Message::Close(_) => self.on_ws_closed(),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    /// A new signalling connection, and `resume` on it with the token the server gave.
    pub(super) async fn resume(&mut self, done: oneshot::Sender<Result<(), ClientError>>) {
        let Some(token) = self.stats().resume_token.clone() else {
            let _ = done.send(Err(ClientError::Protocol(
                "the server gave this session no resume token".into(),
            )));
            return;
        };
        let connect = tokio_tungstenite::connect_async(self.opts.url.as_str());
        let ws = match tokio::time::timeout(self.opts.join_timeout, connect).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                let _ = done.send(Err(ClientError::Connect(format!("{}: {e}", self.opts.url))));
                return;
            }
            Err(_) => {
                let _ = done.send(Err(ClientError::Timeout {
                    what: format!("WebSocket connect to {}", self.opts.url),
                    details: String::new(),
                }));
                return;
            }
        };
        let (sink, stream) = ws.split();
        let (reader, incoming) = WsReader::spawn(stream);
        self.ws = Some(sink);
        self.ws_in = incoming;
        self.ws_reader = Some(reader);
        self.ws_open = true;
        self.resuming = Some(done);
        self.send_msg(&ClientMessage::Resume {
            token,
            credential: self.opts.credential.clone(),
        })
        .await;
    }

    pub(super) async fn on_server_message(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Resumed {
                members,
                slots,
                resume_token,
                ..
            } => {
                {
                    let mut s = self.stats();
                    s.resume_token = Some(resume_token);
                    s.resumes += 1;
                    s.members = members.into_iter().map(|m| (m.peer_id, m.name)).collect();
                    for slot in s.slots.values_mut() {
                        *slot = None;
                    }
                    for slot in slots {
                        let on = TrackOnSlot {
                            peer_id: slot.peer_id,
                            track_id: slot.track.track_id,
                            kind: slot.track.kind,
                            stream_id: slot.stream_id,
                        };
                        s.slots.insert(slot.mid, Some(on));
                    }
                }
                self.detached = false;
                if let Some(done) = self.resuming.take() {
                    let _ = done.send(Ok(()));
                }
            }
            ServerMessage::PeerReconnecting { peer_id } => self.stats().reconnecting.push(peer_id),
            ServerMessage::PeerReconnected { peer_id } => self.stats().reconnected.push(peer_id),
            ServerMessage::TrackDefined { peer_id, track } => {
                self.stats().tracks_defined.push((peer_id, track))
            }
            ServerMessage::TrackRemoved { peer_id, track_id } => {
                self.stats().tracks_removed.push((peer_id, track_id))
            }
            ServerMessage::TrackMuted {
                track_id,
                muted,
                by,
                ..
            } => self.stats().mutes.push((track_id, muted, by)),
            ServerMessage::MediaState { peer_id, state } => {
                self.stats().media_states.insert(peer_id, state);
            }
            ServerMessage::Message { from, .. } => {
                *self
                    .stats()
                    .messages_from
                    .entry(from.unwrap_or_default())
                    .or_insert(0) += 1;
            }
            ServerMessage::Joined {
                protocol_version,
                peer_id,
                members,
                resume_token,
                ..
            } => {
                self.stats().resume_token = resume_token;
                if self.peer_id.is_some() {
                    self.local_error("a second joined".into());
                    return;
                }
                if protocol_version != PROTOCOL_VERSION {
                    self.local_error(format!(
                        "server speaks protocol {protocol_version}, client {PROTOCOL_VERSION}"
                    ));
                }
                {
                    let mut s = self.stats();
                    s.peer_id = peer_id.clone();
                    for m in members.into_iter().filter(|m| m.peer_id != peer_id) {
                        s.members.insert(m.peer_id, m.name);
                    }
                }
                self.peer_id = Some(peer_id);
                self.send_first_offer().await;
            }
            ServerMessage::Answer { sdp } => self.on_answer(&sdp),
            ServerMessage::Offer { sdp } => self.on_server_offer(&sdp).await,
            ServerMessage::Candidate { candidate, .. } => self.on_candidate(&candidate),
            ServerMessage::PeerJoined { peer } => {
                if Some(&peer.peer_id) != self.peer_id.as_ref() {
                    self.stats().members.insert(peer.peer_id, peer.name);
                }
            }
            ServerMessage::PeerLeft { peer_id } => {
                let mut s = self.stats();
                s.members.remove(&peer_id);
                s.peers_left.push(peer_id);
            }
            ServerMessage::TrackPublished {
                track,
                peer_id,
                mid,
                stream_id,
            } => {
                let slot = TrackOnSlot {
                    peer_id,
                    track_id: track.track_id,
                    kind: track.kind,
                    stream_id,
                };
                let mut s = self.stats();
                let previous = s
                    .track_history
                    .iter()
                    .rev()
                    .find(|(m, _)| *m == mid)
                    .map(|(_, t)| t.peer_id.clone());
                if let Some(previous) = previous.filter(|p| *p != slot.peer_id) {
                    s.previous_owner
                        .insert(mid.clone(), (previous, Instant::now()));
                }
                s.confirm_announced(&mid, &slot.peer_id);
                s.announced_at.insert(mid.clone(), Instant::now());
                s.slots.insert(mid.clone(), Some(slot.clone()));
                s.track_history.push((mid, slot));
            }
            ServerMessage::TrackUnpublished {
                track_id,
                peer_id,
                mid,
            } => {
                let mismatch = {
                    let mut s = self.stats();
                    s.unpublished.push((track_id.clone(), peer_id));
                    match s.slots.get_mut(&mid) {
                        Some(slot @ Some(_))
                            if slot.as_ref().is_some_and(|t| t.track_id == track_id) =>
                        {
                            *slot = None;
                            None
                        }
                        other => Some(format!("{other:?}")),
                    }
                };
                if let Some(current) = mismatch {
                    self.local_error(format!(
                        "trackUnpublished {track_id} on mid {mid}, which carries {current}"
                    ));
                }
            }
            ServerMessage::Left { reason } => {
                self.stats().left_reason = Some(reason);
                self.left = true;
                if let Some(l) = &mut self.leave {
                    l.left_seen = true;
                    l.deadline = l.deadline.min(Instant::now() + CLOSE_GRACE);
                }
            }
            ServerMessage::Error {
                code,
                message,
                request,
            } => {
                self.stats().errors.push((code, message.clone()));
                if request.as_deref() == Some("resume") {
                    if let Some(done) = self.resuming.take() {
                        let _ = done.send(Err(ClientError::Rejected {
                            code,
                            message: message.clone(),
                        }));
                    }
                }
                if self.ready.is_some() && code != ErrorCode::NoPendingOffer {
                    self.fail_ready(ClientError::Rejected { code, message });
                }
            }
            // Data messages, mutes, credential renewals, draining: nothing the synthetic
            // client acts on.
            other => tracing::debug!(peer = ?self.peer_id, kind = ?other, "ignored"),
        }
    }

    pub(super) async fn send_first_offer(&mut self) {
        if self.rtc_dead {
            self.fail_ready(ClientError::Protocol(
                "str0m failed before the offer".into(),
            ));
            return;
        }
        let peer = self.peer_id.clone().unwrap_or_default();
        let opts = &self.opts;
        let mut api = self.rtc.sdp_api();
        let audio_mid = opts.audio.then(|| {
            api.add_media(
                str0m::media::MediaKind::Audio,
                Direction::SendOnly,
                Some(peer.clone()),
                Some(format!("{peer}-audio")),
                None,
            )
        });
        let video_mid = opts.video.is_some().then(|| {
            api.add_media(
                str0m::media::MediaKind::Video,
                Direction::SendOnly,
                Some(peer.clone()),
                Some(format!("{peer}-video")),
                None,
            )
        });
        let slots = [
            (str0m::media::MediaKind::Audio, opts.recv_audio_slots),
            (str0m::media::MediaKind::Video, opts.recv_video_slots),
        ];
        for (kind, count) in slots {
            for _ in 0..count {
                api.add_media(kind, Direction::RecvOnly, None, None, None);
            }
        }
        if opts.data.is_some() {
            api.add_channel(super::data::LABEL.to_owned());
        }
        let applied = api.apply();
        self.drain();
        let Some((offer, pending)) = applied else {
            self.fail_ready(ClientError::Protocol(
                "nothing to offer: publish audio/video or pre-create receive slots".into(),
            ));
            return;
        };
        self.audio = audio_mid.map(|mid| TxTrack::new(mid, false));
        self.video = video_mid.map(|mid| TxTrack::new(mid, true));
        self.pending = Some(pending);
        let sdp = self.outgoing_sdp(offer.to_sdp_string());
        let tracks = self.publications();
        self.send_msg(&ClientMessage::Offer { sdp, tracks }).await;
    }

    /// What the published m-lines are, when the options name them (else the server names
    /// them after their mids).
    fn publications(&self) -> Vec<switchboard_protocol::TrackPublication> {
        let mut out = Vec::new();
        for (track, name) in [
            (&self.audio, &self.opts.audio_track_name),
            (&self.video, &self.opts.video_track_name),
        ] {
            if let (Some(track), Some(name)) = (track, name) {
                out.push(switchboard_protocol::TrackPublication {
                    mid: track.mid().to_string(),
                    name: Some(name.clone()),
                    source: None,
                    description: None,
                });
            }
        }
        out
    }

    /// SDP as it goes to the server (a forging client shows transport-cc instead of its
    /// stand-in, see `forged.rs`).
    fn outgoing_sdp(&self, sdp: String) -> String {
        match self.forged {
            Some(_) => crate::forged::outgoing(&sdp),
            None => sdp,
        }
    }

    /// SDP from the server as this client's engine must see it.
    fn incoming_sdp(&self, sdp: &str) -> String {
        match self.forged {
            Some(_) => crate::forged::incoming(sdp),
            None => sdp.to_owned(),
        }
    }

    pub(super) fn on_answer(&mut self, sdp: &str) {
        let sdp = &self.incoming_sdp(sdp);
        let Some(pending) = self.pending.take() else {
            self.local_error("answer without an outstanding offer".into());
            return;
        };
        let result = match SdpAnswer::from_sdp_string(sdp) {
            Ok(answer) => self
                .rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| format!("accept_answer: {e}")),
            Err(e) => Err(format!("unparseable answer SDP: {e}")),
        };
        self.drain();
        match result {
            Ok(()) => {
                self.stats().mline_count = count_mlines(sdp);
                self.setup_tx();
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(self.peer_id.clone().unwrap_or_default()));
                }
            }
            Err(e) => {
                self.local_error(e.clone());
                self.fail_ready(ClientError::Protocol(e));
            }
        }
    }

    pub(super) async fn on_server_offer(&mut self, sdp: &str) {
        let sdp = &self.incoming_sdp(sdp);
        self.stats().server_offers += 1;
        if self.pending.is_some() {
            // Glare: we are the impolite peer, the server re-offers after answering us.
            self.stats().glare_ignored += 1;
            return;
        }
        if self.rtc_dead {
            return;
        }
        let result = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => self
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| format!("accept_offer: {e}")),
            Err(e) => Err(format!("unparseable offer SDP: {e}")),
        };
        self.drain();
        match result {
            Ok(answer) => {
                self.stats().mline_count = count_mlines(sdp);
                self.setup_tx();
                let sdp = self.outgoing_sdp(answer.to_sdp_string());
                self.send_msg(&ClientMessage::Answer { sdp }).await;
                self.stats().answers_sent += 1;
            }
            Err(e) => self.local_error(e),
        }
    }

    pub(super) fn on_candidate(&mut self, candidate: &str) {
        let c = candidate.trim();
        let c = c.strip_prefix("a=").unwrap_or(c);
        if c.is_empty() || self.rtc_dead {
            return; // end of candidates
        }
        match Candidate::from_sdp_string(c) {
            Ok(cand) => {
                self.rtc.add_remote_candidate(cand);
                self.drain();
            }
            Err(e) => self.local_error(format!("server candidate {c:?}: {e}")),
        }
    }
}

/// Number of m-lines in an SDP.
pub(super) fn count_mlines(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_mlines() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n";
        assert_eq!(count_mlines(sdp), 3);
        assert_eq!(count_mlines(""), 0);
    }
}
