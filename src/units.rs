//! Parsing and formatting of the units users type and read: durations ("250us", "5ms", "2m"),
//! counts with suffixes ("50k", "1.5M"), ratios ("0.1%", "0.001").

use std::time::Duration;

/// A duration in humantime syntax: `250us`, `5ms`, `30s`, `2m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration ({e}); try 5ms, 30s, 2m"))
}

/// A non-negative count, optionally with k/M/G suffix: `50000`, `50k`, `1.5M`.
pub fn parse_count(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v * mult),
        _ => Err("not a number; try 1000, 50k or 1.5M".into()),
    }
}

/// A whole count (`100k` is fine, `1.5` is not).
pub fn parse_whole(s: &str) -> Result<u64, String> {
    let v = parse_count(s)?;
    if v.fract() != 0.0 || v > u64::MAX as f64 {
        return Err("not a whole number".into());
    }
    Ok(v as u64)
}

/// A size in bytes: `65536`, `64KiB`, `16MiB`, `1GiB` (also KB/MB/GB as powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err("not a size; try 65536, 64KiB or 16MiB".into()),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok((v * mult as f64) as u64),
        _ => Err("not a size; try 65536, 64KiB or 16MiB".into()),
    }
}

/// A ratio: `0.001`, or a percentage `0.1%`. Must lie in [0, 1].
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| "not a ratio; try 0.001 or 0.1%".to_owned())?;
    if !(0.0..=1.0).contains(&v) {
        return Err("must lie between 0 and 1 (0% and 100%)".into());
    }
    Ok(v)
}

/// Milliseconds with a precision that suits the size: `0.052`, `4.87`, `123.4`, `5012`.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.2}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_type() {
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_count("50k").unwrap(), 50_000.0);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000.0);
        assert!(parse_count("-3").is_err());
        assert!(parse_count("k").is_err());
        assert_eq!(parse_whole("100k").unwrap(), 100_000);
        assert!(parse_whole("1.5").is_err());
        assert_eq!(parse_ratio("0.1%").unwrap(), 0.001);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert!(parse_size("big").is_err());
        assert_eq!(parse_ratio("0").unwrap(), 0.0);
        assert!(parse_ratio("150%").is_err());
    }

    #[test]
    fn formats_for_reading() {
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_ms(0.0523), "0.052");
        assert_eq!(fmt_ms(4.871), "4.87");
        assert_eq!(fmt_ms(5012.2), "5012");
    }
}
