//! Quantities on the command line: bit rates (`2.5M`), durations (`90s`, `1h30m`) and shares
//! (`0.1`, `10%`).

use std::time::Duration;

pub(crate) fn parse_bitrate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected bits per second like 2500000, 2500k or 2.5M"))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok((v * mult).round() as u64)
}

pub(crate) fn secs(v: f64, what: &str) -> Result<Duration, String> {
    if !(v > 0.0 && v.is_finite() && v <= 3600.0) {
        return Err(format!("{what} must be between 0 and 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A duration like `90s`, `10m`, `1h30m`, `1.5h` or `500ms`; a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let bad = || format!("{text:?}: expected a duration like 90s, 10m, 1h30m or 500ms");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(v) = text.parse::<f64>() {
        return duration_of(v, 1.0).ok_or_else(bad);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let v: f64 = num.parse().map_err(|_| bad())?;
        total += duration_of(v, scale).ok_or_else(bad)?;
        rest = next;
    }
    Ok(total)
}

/// Longer than anything this tool accepts, short enough for `Duration::from_secs_f64`.
const MAX_PARSED_SECS: f64 = 1e9;

/// `v` units of `scale` seconds, if that is a finite, non-negative duration (callers check
/// their own upper bounds; this one only keeps the conversion from overflowing).
fn duration_of(v: f64, scale: f64) -> Option<Duration> {
    let secs = v * scale;
    (secs.is_finite() && (0.0..=MAX_PARSED_SECS).contains(&secs))
        .then(|| Duration::from_secs_f64(secs))
}

/// A share of something: `0.1` or `10%`, between 0 and 1.
pub(crate) fn parse_fraction(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let v = match text.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("{text:?}: expected a share like 0.1 or 10%"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{text:?}: must be between 0 and 1 (0 % and 100 %)"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("2500000"), Ok(2_500_000));
        assert_eq!(parse_bitrate("2500k"), Ok(2_500_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("-1k").is_err());
    }

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration("90s"), Ok(s(90)));
        assert_eq!(parse_duration("90"), Ok(s(90)));
        assert_eq!(parse_duration("10m"), Ok(s(600)));
        assert_eq!(parse_duration("1h"), Ok(s(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(s(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(s(5400)));
        assert_eq!(parse_duration(" 2m30s "), Ok(s(150)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in [
            "", "h", "10x", "1h30", "-5s", "fast", "1..2s", "inf", "1e300s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("0.1"), Ok(0.1));
        assert_eq!(parse_fraction("10%"), Ok(0.1));
        assert_eq!(parse_fraction("0"), Ok(0.0));
        assert_eq!(parse_fraction("100 %"), Ok(1.0));
        for bad in ["10", "150%", "-0.1", "some"] {
            assert!(parse_fraction(bad).is_err(), "{bad:?}");
        }
    }
}
