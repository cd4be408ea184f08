//! The picture size a keyframe's first packet announces, read from the RTP payload: the VP8
//! key frame header, the VP9 payload descriptor's scalability structure, or the H264 sequence
//! parameter set. It orders a track's simulcast layers by what they show: measured rates do not
//! (a still picture's top layer may send fewer bytes than its lowest), and `rid`s are only names.
//! Every reader takes untrusted bytes and answers `None` to anything it cannot read in full.

use str0m::format::Codec;

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

impl FrameSize {
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The size a keyframe's first packet of `codec` announces, if it says.
pub fn keyframe_size(codec: Codec, payload: &[u8]) -> Option<FrameSize> {
    let size = match codec {
        Codec::Vp8 => vp8(payload),
        Codec::Vp9 => vp9(payload),
        Codec::H264 => h264(payload),
        _ => None,
    }?;
    (size.width > 0 && size.height > 0).then_some(size)
}

/// RFC 7741 payload descriptor, then the key frame's start code and its 14-bit dimensions.
fn vp8(p: &[u8]) -> Option<FrameSize> {
    let first = *p.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let x = *p.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // PictureID: the M bit makes it 15 bits.
            at += if *p.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    let frame = p.get(at..at + 10)?;
    // P bit clear: a key frame; then the start code 9d 01 2a.
    if frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let dim = |lo: u8, hi: u8| u32::from(u16::from_le_bytes([lo, hi]) & 0x3fff);
    Some(FrameSize {
        width: dim(frame[6], frame[7]),
        height: dim(frame[8], frame[9]),
    })
}

/// The VP9 payload descriptor (draft-ietf-payload-vp9): its scalability structure, sent with
/// keyframes, gives each spatial layer's size; the last is the largest.
fn vp9(p: &[u8]) -> Option<FrameSize> {
    let first = *p.first()?;
    let (picture_id, inter, layers, flexible, ss) = (
        first & 0x80 != 0,
        first & 0x40 != 0,
        first & 0x20 != 0,
        first & 0x10 != 0,
        first & 0x02 != 0,
    );
    if !ss {
        return None;
    }
    let mut at = 1;
    if picture_id {
        at += if *p.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if layers {
        at += if flexible { 1 } else { 2 };
    }
    if flexible && inter {
        // Up to three reference indices, each with a "more follow" bit.
        for _ in 0..3 {
            let diff = *p.get(at)?;
            at += 1;
            if diff & 0x01 == 0 {
                break;
            }
        }
    }
    let header = *p.get(at)?;
    at += 1;
    let spatial = usize::from(header >> 5) + 1;
    if header & 0x10 == 0 {
        return None; // no sizes in this structure
    }
    let sizes = p.get(at..at + 4 * spatial)?;
    let last = &sizes[4 * (spatial - 1)..];
    Some(FrameSize {
        width: u32::from(u16::from_be_bytes([last[0], last[1]])),
        height: u32::from(u16::from_be_bytes([last[2], last[3]])),
    })
}

/// An SPS sent alone (NAL type 7) or first in a STAP-A (type 24), as browsers send them.
fn h264(p: &[u8]) -> Option<FrameSize> {
    let nal = match *p.first()? & 0x1f {
        7 => p,
        24 => {
            let len = usize::from(u16::from_be_bytes([*p.get(1)?, *p.get(2)?]));
            let nal = p.get(3..3 + len)?;
            if *nal.first()? & 0x1f != 7 {
                return None;
            }
            nal
        }
        _ => return None,
    };
    sps_size(&unescape(nal.get(1..)?))
}

/// Remove emulation prevention bytes (00 00 03 → 00 00); an SPS is tens of bytes.
fn unescape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len());
    let mut zeros = 0;
    for &b in rbsp.iter().take(256) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits, most significant first; every read fails past the end.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.at / 8)?;
        let bit = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// Exp-Golomb, unsigned; longer than 31 bits is refused.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// ITU-T H.264 7.3.2.1.1, up to the cropping window.
fn sps_size(rbsp: &[u8]) -> Option<FrameSize> {
    let mut b = Bits { data: rbsp, at: 0 };
    let profile = b.bits(8)?;
    b.bits(16)?; // constraint flags, level
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = b.ue()?;
        if chroma_format == 3 {
            b.bit()?; // separate_colour_plane_flag
        }
        b.ue()?; // bit depths
        b.ue()?;
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? == 1 {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let cycle = b.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = b.ue()?.checked_add(1)?;
    let height_units = b.ue()?.checked_add(1)?;
    let frame_mbs_only = b.bit()?;
    if frame_mbs_only == 0 {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let mut width = width_mbs.checked_mul(16)?;
    let mut height = (2 - frame_mbs_only)
        .checked_mul(height_units)?
        .checked_mul(16)?;
    if b.bit()? == 1 {
        let (left, right, top, bottom) = (b.ue()?, b.ue()?, b.ue()?, b.ue()?);
        // Crop units: 2 luma samples across for 4:2:0 and 4:2:2, 1 for monochrome and 4:4:4;
        // down, the same times two for field-coded pictures.
        let unit_x = if matches!(chroma_format, 1 | 2) { 2 } else { 1 };
        let unit_y = if chroma_format == 1 { 2 } else { 1 } * (2 - frame_mbs_only);
        width = width.checked_sub(unit_x * left.checked_add(right)?)?;
        height = height.checked_sub(unit_y * top.checked_add(bottom)?)?;
    }
    Some(FrameSize { width, height })
}

fn skip_scaling_list(b: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + b.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits and exp-Golomb codes, to build SPSs for the tests.
    #[derive(Default)]
    struct Writer {
        bits: Vec<u8>,
    }

    impl Writer {
        fn bits(&mut self, v: u32, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push(((v >> i) & 1) as u8);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let code = v + 1;
            let len = 32 - code.leading_zeros();
            self.bits(0, len - 1).bits(code, len)
        }
        fn bytes(&self) -> Vec<u8> {
            let mut out: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|c| c.iter().enumerate().fold(0, |a, (i, b)| a | b << (7 - i)))
                .collect();
            out.push(0x80); // rbsp trailing bits
            out
        }
    }

    /// A baseline (66) or high (100) profile SPS of `mbs` macroblocks, cropped by `crop`.
    fn sps(profile: u32, mbs: (u32, u32), crop: Option<(u32, u32)>) -> Vec<u8> {
        let mut w = Writer::default();
        w.bits(profile, 8).bits(0, 8).bits(31, 8).ue(0);
        if profile == 100 {
            w.ue(1).ue(0).ue(0).bits(0, 1).bits(0, 1);
        }
        w.ue(0).ue(0).ue(4).ue(1).bits(0, 1);
        w.ue(mbs.0 - 1).ue(mbs.1 - 1).bits(1, 1).bits(1, 1);
        match crop {
            Some((right, bottom)) => w.bits(1, 1).ue(0).ue(right).ue(0).ue(bottom),
            None => w.bits(0, 1),
        };
        w.bits(0, 1); // vui_parameters_present_flag
        let mut nal = vec![0x67];
        nal.extend(w.bytes());
        nal
    }

    #[test]
    fn vp8_key_frame_header() {
        // X, I with a 15-bit picture id, then a key frame of 1280×720.
        let mut p = vec![0x90, 0x80, 0x81, 0x23];
        p.extend([0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
        let size = keyframe_size(Codec::Vp8, &p);
        assert_eq!(
            size,
            Some(FrameSize {
                width: 1280,
                height: 720
            })
        );
        // The same without the extension bytes, and with the scale bits set.
        let p = [
            0x10, 0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a, 0x40, 0x41, 0xb4, 0x80,
        ];
        let size = keyframe_size(Codec::Vp8, &p);
        assert_eq!(
            size,
            Some(FrameSize {
                width: 320,
                height: 180
            })
        );
        // An inter frame, a wrong start code, a cut packet: nothing.
        assert_eq!(
            keyframe_size(
                Codec::Vp8,
                &[0x10, 0x51, 0x2d, 0x01, 0x9d, 0x01, 0x2a, 0, 5, 0xd0, 2]
            ),
            None
        );
        assert_eq!(
            keyframe_size(
                Codec::Vp8,
                &[0x10, 0x50, 0x2d, 0x01, 0x9d, 0x00, 0x2a, 0, 5, 0xd0, 2]
            ),
            None
        );
        assert_eq!(keyframe_size(Codec::Vp8, &[0x90, 0x80, 0x81]), None);
    }

    #[test]
    fn vp9_scalability_structure() {
        // I (15-bit id), B, V; SS: one spatial layer with sizes, 640×360.
        let p = [0x8a, 0x80, 0x01, 0x18, 0x02, 0x80, 0x01, 0x68, 0xaa];
        let size = keyframe_size(Codec::Vp9, &p);
        assert_eq!(
            size,
            Some(FrameSize {
                width: 640,
                height: 360
            })
        );
        // Two spatial layers: the larger, last, counts.
        let p = [0x0a, 0x38, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68];
        let size = keyframe_size(Codec::Vp9, &p);
        assert_eq!(
            size,
            Some(FrameSize {
                width: 640,
                height: 360
            })
        );
        // No SS, or an SS without sizes, or cut short: nothing.
        assert_eq!(keyframe_size(Codec::Vp9, &[0x88, 0x01, 0xaa]), None);
        assert_eq!(keyframe_size(Codec::Vp9, &[0x0a, 0x08, 0xaa]), None);
        assert_eq!(keyframe_size(Codec::Vp9, &[0x0a, 0x38, 0x01, 0x40]), None);
    }

    #[test]
    fn h264_sequence_parameter_set() {
        // 1280×720: 80×45 macroblocks, no cropping; baseline and high profile.
        for profile in [66, 100] {
            let size = keyframe_size(Codec::H264, &sps(profile, (80, 45), None));
            assert_eq!(
                size,
                Some(FrameSize {
                    width: 1280,
                    height: 720
                }),
                "{profile}"
            );
        }
        // 1920×1080: 120×68 macroblocks (1088) cropped by 4 × 2 lines.
        let size = keyframe_size(Codec::H264, &sps(66, (120, 68), Some((0, 4))));
        assert_eq!(
            size,
            Some(FrameSize {
                width: 1920,
                height: 1080
            })
        );
        // In a STAP-A, first.
        let nal = sps(66, (20, 12), Some((0, 3)));
        let mut stap = vec![0x78, 0, nal.len() as u8];
        stap.extend(&nal);
        stap.extend([0, 2, 0x68, 0xce]);
        let size = keyframe_size(Codec::H264, &stap);
        assert_eq!(
            size,
            Some(FrameSize {
                width: 320,
                height: 186
            })
        );
        // A PPS, an SPS cut short, a STAP-A whose length lies: nothing.
        assert_eq!(keyframe_size(Codec::H264, &[0x68, 0xce, 0x3c, 0x80]), None);
        let whole = sps(66, (80, 45), None);
        assert_eq!(keyframe_size(Codec::H264, &whole[..4]), None);
        assert_eq!(keyframe_size(Codec::H264, &[0x78, 0, 40, 0x67, 0x42]), None);
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..200 {
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1] {
                let _ = keyframe_size(codec, &p);
            }
            let mut sps = vec![0x67];
            sps.extend(&p);
            let _ = keyframe_size(Codec::H264, &sps);
        }
    }
}
