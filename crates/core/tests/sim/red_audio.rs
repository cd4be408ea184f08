//! RED (RFC 2198) in the simulation: sending a raw audio payload, as it is, for the malformed-RED
//! cases. The simulated publisher wraps its Opus frames with `switchboard_loadtest::red::wrap` (as
//! Chrome does when RED is negotiated), and receivers take RED apart with its `unwrap`.

impl super::Sim {
    /// `name` sends `payload` as its next audio packet (its next sequence number and timestamp),
    /// in RED's payload type when `red`, as it is: for malformed payloads.
    pub fn send_raw_audio(&mut self, name: &str, payload: Vec<u8>, red: bool) {
        use str0m::format::Codec;
        use str0m::rtp::{RtpWrite, SeqNo};
        let now = self.now;
        let c = self.client_mut(name);
        let Some(opus) = c.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus) else {
            return;
        };
        let pt = if red { opus.red() } else { Some(opus.pt()) };
        let (Some(pt), Some(mid)) = (pt, c.audio_mid) else {
            return;
        };
        let seq: SeqNo = (100 + c.audio_counter).into();
        let ts = (c.audio_counter * 960) as u32;
        c.audio_counter += 1;
        if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
            tx.write_rtp(RtpWrite::new(pt, seq, ts, now, payload));
        }
        let _ = c.rtc.handle_input(str0m::Input::Timeout(now));
    }
}
