use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::io::DATAGRAM_MAX_PACKET_SIZE;
use crate::packet::Vp8Patch;
use crate::rtp_::{ExtensionValues, Frequency, MediaTime, Pt, RtpHeader, SenderInfo, SeqNo, Ssrc};

use super::RtpPacket;
use super::rtx_cache_buf::EvictingBuffer;

const RTX_CACHE_SIZE_QUANTIZER: usize = 25;
const RTX_CACHE_QUANTIZE_SLOTS: usize = DATAGRAM_MAX_PACKET_SIZE / RTX_CACHE_SIZE_QUANTIZER;

#[derive(Debug)]
pub(crate) struct RtxCache {
    // Data, new additions here probably need to be cleared in [`clear`].
    packet_by_seq_no: EvictingBuffer<CachedPacket>,

    // Technically we want [Option<SeqNo>; X] to indicate the absence of
    // a SeqNo. However We can half the storage space by using the sentinel
    // values SeqNo::MAX to indicate None
    seq_no_by_quantized_size: [SeqNo; RTX_CACHE_QUANTIZE_SLOTS],

    /// The packet the last lookup rebuilt from its entry: resends and spurious padding borrow
    /// it while they are written out.
    looked_up: Option<RtpPacket>,
}

/// What the cache keeps of a sent packet.
///
/// A whole `RtpPacket` is 408 bytes, most of them the header's extension values and its CSRC
/// array, and a sender keeps every nackable packet of the last second or more: an SFU doing so
/// for each subscriber's stream spent most of a participant's memory here. The payload is
/// shared with the sender already. What seldom changes from one packet of a stream to the next
/// (extension values, SSRC, payload type, CSRCs, the last sender info, the media time's clock
/// rate) is kept once in a [`SharedHeader`] that consecutive entries share while it stays equal;
/// each entry keeps only what changes per packet (72 bytes). A lookup rebuilds the same
/// `RtpPacket`.
#[derive(Debug)]
struct CachedPacket {
    payload: Arc<[u8]>,
    timestamp: Instant,
    time_numer: u64,
    shared: SharedHeader,
    rtp_time: u32,
    sequence_number: u16,
    marker: bool,
    vp8_patch: Option<Vp8Patch>,
}

/// The parts of cached packets that consecutive entries share while they are equal.
///
/// `Rtc` is `UnwindSafe` (an application may catch a panic and drop it), and `Arc` of the
/// user-extension map's `dyn Any` values is not `RefUnwindSafe`. The values behind this `Arc`
/// are never changed once shared (entries are only created and dropped), so a panic cannot leave
/// them half-updated for anyone to observe.
#[derive(Debug)]
struct SharedHeader(Arc<HeaderParts>);

impl std::panic::UnwindSafe for SharedHeader {}
impl std::panic::RefUnwindSafe for SharedHeader {}

#[derive(Debug, PartialEq)]
struct HeaderParts {
    ext_vals: ExtensionValues,
    csrc: [u32; 15],
    last_sender_info: Option<SenderInfo>,
    header_len: usize,
    ssrc: Ssrc,
    clock_rate: u32,
    payload_type: Pt,
    version: u8,
    csrc_count: usize,
    has_padding: bool,
    has_extension: bool,
}

impl CachedPacket {
    fn new(packet: RtpPacket, previous: Option<&CachedPacket>) -> CachedPacket {
        let RtpPacket {
            seq_no: _,
            time,
            header,
            payload,
            vp8_patch,
            timestamp,
            last_sender_info,
            nackable: _,
        } = packet;
        let RtpHeader {
            version,
            has_padding,
            has_extension,
            csrc_count,
            marker,
            payload_type,
            sequence_number,
            timestamp: rtp_time,
            ssrc,
            csrc,
            ext_vals,
            header_len,
        } = header;
        let parts = HeaderParts {
            ext_vals,
            csrc,
            last_sender_info,
            header_len,
            ssrc,
            clock_rate: time.denom(),
            payload_type,
            version,
            csrc_count,
            has_padding,
            has_extension,
        };
        let shared = match previous {
            Some(p) if *p.shared.0 == parts => SharedHeader(p.shared.0.clone()),
            _ => SharedHeader(Arc::new(parts)),
        };
        CachedPacket {
            payload,
            timestamp,
            time_numer: time.numer(),
            shared,
            rtp_time,
            sequence_number,
            marker,
            vp8_patch,
        }
    }

    /// The packet cached under `seq_no` (the position the buffer keeps it at).
    fn to_packet(&self, seq_no: SeqNo) -> RtpPacket {
        let parts = &*self.shared.0;
        let clock_rate = Frequency::new(parts.clock_rate)
            .expect("taken from a MediaTime, whose frequency is never zero");
        RtpPacket {
            seq_no,
            time: MediaTime::new(self.time_numer, clock_rate),
            header: RtpHeader {
                version: parts.version,
                has_padding: parts.has_padding,
                has_extension: parts.has_extension,
                csrc_count: parts.csrc_count,
                marker: self.marker,
                payload_type: parts.payload_type,
                sequence_number: self.sequence_number,
                timestamp: self.rtp_time,
                ssrc: parts.ssrc,
                csrc: parts.csrc,
                ext_vals: parts.ext_vals.clone(),
                header_len: parts.header_len,
            },
            payload: self.payload.clone(),
            vp8_patch: self.vp8_patch,
            timestamp: self.timestamp,
            last_sender_info: parts.last_sender_info,
            // Only nackable packets are cached.
            nackable: true,
        }
    }
}

impl RtxCache {
    pub fn new(max_packet_count: usize, max_packet_age: Duration) -> Self {
        Self {
            packet_by_seq_no: EvictingBuffer::new(10, max_packet_age, max_packet_count),
            seq_no_by_quantized_size: [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS],
            looked_up: None,
        }
    }

    pub fn cache_sent_packet(&mut self, packet: RtpPacket, now: Instant) {
        assert!(packet.nackable);
        let seq_no = packet.seq_no;
        let quantized_size = packet.payload.len() / RTX_CACHE_SIZE_QUANTIZER;
        let cached = CachedPacket::new(packet, self.packet_by_seq_no.last());
        self.packet_by_seq_no.push(*seq_no, now, cached);
        self.seq_no_by_quantized_size[quantized_size] = seq_no;
        self.remove_old_packets(now);
    }

    pub fn last_cached_seq_no(&self) -> Option<SeqNo> {
        Some(self.packet_by_seq_no.last_position()?.into())
    }

    /// The payload size of a cached packet, without rebuilding it.
    pub fn cached_payload_len(&self, seq_no: SeqNo) -> Option<usize> {
        Some(self.packet_by_seq_no.get(*seq_no)?.payload.len())
    }

    pub fn get_cached_packet_by_seq_no(&mut self, seq_no: SeqNo) -> Option<&mut RtpPacket> {
        let cached = self.packet_by_seq_no.get(*seq_no)?;
        Some(self.looked_up.insert(cached.to_packet(seq_no)))
    }

    pub fn get_cached_packet_smaller_than(&mut self, max_size: usize) -> Option<&mut RtpPacket> {
        let quantized_size = max_size / RTX_CACHE_SIZE_QUANTIZER;

        let seq_no = self.seq_no_by_quantized_size[..quantized_size]
            .iter()
            .rev()
            .filter(|seq_no| !seq_no.is_max())
            .find(|seq_no| self.packet_by_seq_no.contains(***seq_no))?;

        self.get_cached_packet_by_seq_no(*seq_no)
    }

    fn remove_old_packets(&mut self, now: Instant) {
        self.packet_by_seq_no.maybe_evict(now);
    }

    pub(crate) fn last_packet(&self) -> Option<&[u8]> {
        let packet = self.packet_by_seq_no.last()?;
        Some(packet.payload.as_ref())
    }

    pub(crate) fn clear(&mut self) {
        self.packet_by_seq_no.clear();
        self.seq_no_by_quantized_size = [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS];
        self.looked_up = None;
    }
}

#[cfg(test)]
mod test {
    use crate::rtp_::MediaTime;
    use crate::rtp_::RtpHeader;

    use super::*;

    fn after(now: Instant, millis: u64) -> Instant {
        now + Duration::from_millis(millis)
    }

    fn packet(now: Instant, seq_no: u64, millis: u64) -> RtpPacket {
        RtpPacket {
            header: RtpHeader::default(),
            seq_no: seq_no.into(),
            time: MediaTime::from_90khz(0),
            payload: millis.to_be_bytes().into(),
            vp8_patch: None,
            timestamp: after(now, millis),
            last_sender_info: None,
            nackable: true,
        }
    }

    #[test]
    fn lookups_rebuild_the_packet_that_was_cached() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(100, Duration::from_secs(3));
        let mut csrc = [0; 15];
        csrc[0] = 7;
        let with = |seq_no: u64, level: i8| {
            let mut p = packet(now, seq_no, seq_no * 10);
            p.header.marker = seq_no % 2 == 0;
            p.header.timestamp = 90 * seq_no as u32;
            p.header.sequence_number = seq_no as u16;
            p.header.csrc_count = if seq_no == 3 { 1 } else { 0 };
            p.header.csrc = if seq_no == 3 { csrc } else { [0; 15] };
            p.header.ext_vals.audio_level = Some(level);
            p.header.ext_vals.mid = Some("v".into());
            p.header.header_len = 20;
            p.last_sender_info = (seq_no == 4).then(|| SenderInfo {
                ssrc: 9.into(),
                ntp_time: std::time::SystemTime::UNIX_EPOCH,
                rtp_time: MediaTime::from_90khz(5),
                sender_packet_count: 3,
                sender_octet_count: 4,
            });
            p.time = MediaTime::new(seq_no * 960, Frequency::FORTY_EIGHT_KHZ);
            p
        };
        for (seq_no, level) in [(1, -30), (2, -30), (3, -30), (4, -12)] {
            rtx_cache.cache_sent_packet(with(seq_no, level), after(now, seq_no * 10));
        }
        for (seq_no, level) in [(1, -30), (2, -30), (3, -30), (4, -12)] {
            assert_eq!(
                Some(&mut with(seq_no, level)),
                rtx_cache.get_cached_packet_by_seq_no(seq_no.into())
            );
            assert_eq!(
                Some(8),
                rtx_cache.cached_payload_len(seq_no.into()),
                "the payload is the 8-byte timestamp"
            );
        }
        // Equal header parts are stored once; a change (CSRCs, extension values) starts a new
        // copy.
        let shared = |a: u64, b: u64| {
            let ext = |s: u64| &rtx_cache.packet_by_seq_no.get(s).unwrap().shared.0;
            Arc::ptr_eq(ext(a), ext(b))
        };
        assert!(shared(1, 2));
        assert!(!shared(2, 3) && !shared(3, 4));
    }

    #[test]
    fn rtx_cache_0_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(0, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_by_seq_no(1.into())
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(1000)
        );
    }

    #[test]
    fn rtx_cache_0_duration() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(0));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(1.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_smaller_than(1000));
    }

    #[test]
    fn rtx_cache_1_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(1, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_by_seq_no(1.into())
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(1000)
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(25)
        );
        assert_eq!(None, rtx_cache.get_cached_packet_smaller_than(24));
        rtx_cache.cache_sent_packet(packet(now, 2, 20), after(now, 20));
        assert_eq!(
            Some(&mut packet(now, 2, 20)),
            rtx_cache.get_cached_packet_by_seq_no(2.into())
        );
    }

    #[test]
    fn rtx_cache_100_sized_backwards() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(100, Duration::from_secs(3));

        for i in 1..=200 {
            let seq_no = 201 - i;
            let pkt = packet(now, seq_no, (201 - i) * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(
            Some(&mut packet(now, 200, 2000)),
            rtx_cache.get_cached_packet_by_seq_no(200.into())
        );
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(100.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(101.into()));
    }

    #[test]
    fn rtx_cache_eviction() {
        let now = Instant::now();
        // Cache can take all entries
        let mut rtx_cache = RtxCache::new(400, Duration::from_secs(1));
        for i in 1..=200 {
            let seq_no = i;
            let pkt = packet(now, seq_no, i * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(99.into()));

        assert_eq!(
            Some(&mut packet(now, 100, 1000)),
            rtx_cache.get_cached_packet_by_seq_no(100.into())
        );
        assert_eq!(
            Some(&mut packet(now, 200, 2000)),
            rtx_cache.get_cached_packet_by_seq_no(200.into())
        );
    }
}
