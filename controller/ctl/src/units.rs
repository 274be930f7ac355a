//! Quantities and durations as people type them: `8Gi`, `512Mi`, `10Gi`,
//! `90s`, `15m`; and the reverse, for tables.
//!
//! Only binary suffixes are accepted (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, with an
//! optional `B`): `8G` could mean 8×10⁹ or 8×2³⁰ bytes, so it is refused
//! with a hint instead of guessed. A number without a suffix is in the
//! field's own unit (MiB for memory, GiB for disks and volumes, bytes for
//! bucket quotas). Fractions are accepted when the result is whole in that
//! unit: `1.5Gi` is 1536 MiB.

use std::time::Duration;

const KI: u128 = 1 << 10;
const MI: u128 = 1 << 20;
const GI: u128 = 1 << 30;

/// The binary suffixes, largest first, with their size in bytes.
const SUFFIXES: [(&str, u128); 5] = [
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", GI),
    ("Mi", MI),
    ("Ki", KI),
];

/// Parses memory: a number of MiB, or a quantity such as `8Gi`.
pub fn parse_mib(s: &str) -> Result<u64, String> {
    parse_in(s, MI, "MiB")
}

/// Parses a disk or volume size: a number of GiB, or a quantity such as `1Ti`.
pub fn parse_gib(s: &str) -> Result<u64, String> {
    parse_in(s, GI, "GiB")
}

/// Parses a byte count: a number of bytes, or a quantity such as `10Gi`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    parse_in(s, 1, "bytes")
}

/// Parses `s` into a whole number of `unit` bytes; a bare number is in `unit`.
fn parse_in(s: &str, unit: u128, unit_name: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let suffix = suffix.trim_start();
    let not_a_size = || format!("`{s}` is not a size; examples: 8Gi, 512Mi, 100");
    if number.is_empty() {
        return Err(not_a_size());
    }
    let scale = if suffix.is_empty() {
        unit
    } else {
        let bare = suffix.strip_suffix('B').unwrap_or(suffix);
        match SUFFIXES.iter().find(|(name, _)| *name == bare) {
            Some((_, scale)) => *scale,
            None if bare.is_empty() => 1,
            None => return Err(bad_suffix(suffix)),
        }
    };
    let (mantissa, divisor) = parse_decimal(number).ok_or_else(not_a_size)?;
    let bytes = mantissa
        .checked_mul(scale)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    let exact = divisor * unit;
    if bytes % exact != 0 {
        return Err(format!("`{s}` is not a whole number of {unit_name}"));
    }
    u64::try_from(bytes / exact).map_err(|_| format!("`{s}` is too large"))
}

fn bad_suffix(suffix: &str) -> String {
    let hint = match suffix.trim_end_matches(['B', 'b']) {
        "K" | "k" => " (did you mean Ki?)",
        "M" | "m" => " (did you mean Mi?)",
        "G" | "g" => " (did you mean Gi?)",
        "T" | "t" => " (did you mean Ti?)",
        "P" | "p" => " (did you mean Pi?)",
        _ => "",
    };
    format!("unknown unit `{suffix}`{hint}; use Ki, Mi, Gi, Ti or Pi")
}

/// `"1.5"` → `(15, 10)`: the digits as an integer and the power of ten to
/// divide by. `None` unless it is digits with at most one point.
fn parse_decimal(s: &str) -> Option<(u128, u128)> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !(whole.bytes().all(|b| b.is_ascii_digit()) && fraction.bytes().all(|b| b.is_ascii_digit()))
        || fraction.len() > 9
    {
        return None;
    }
    let mantissa: u128 = format!("{whole}{fraction}").parse().ok()?;
    Some((mantissa, 10u128.pow(u32::try_from(fraction.len()).ok()?)))
}

/// Parses a duration: `90` (seconds), `500ms`, `30s`, `15m`, `2h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration; examples: 30s, 15m, 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(end);
        let value: u64 = number.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = next;
    }
    Ok(total)
}

/// Formats bytes with the largest binary suffix that fits: exact when it
/// divides evenly (`10Gi`), else to one decimal (`1.3Gi`).
pub fn format_bytes(bytes: u64) -> String {
    let value = u128::from(bytes);
    for (name, scale) in SUFFIXES {
        if value >= scale {
            return if value % scale == 0 {
                format!("{}{name}", value / scale)
            } else {
                // Display only; the precision loss of f64 is irrelevant here.
                #[allow(clippy::cast_precision_loss)]
                let approx = value as f64 / scale as f64;
                format!("{approx:.1}{name}")
            };
        }
    }
    if bytes == 0 {
        "0".to_owned()
    } else {
        format!("{bytes}B")
    }
}

/// Formats MiB (memory) like [`format_bytes`].
pub fn format_mib(mib: u64) -> String {
    format_bytes(mib.saturating_mul(1 << 20))
}

/// Formats GiB (disks, volumes) like [`format_bytes`].
pub fn format_gib(gib: u64) -> String {
    format_bytes(gib.saturating_mul(1 << 30))
}

/// A compact age: `45s`, `12m`, `3h`, `5d`.
pub fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Elapsed time for progress lines: `0.4s`, `41.0s`, `2m05s`.
pub fn format_elapsed(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    if s < 60 {
        format!("{}.{}s", s, elapsed.subsec_millis() / 100)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// A duration as the user would type it: `15m`, `1h30m`, `45s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_takes_mib_or_binary_quantities() {
        assert_eq!(parse_mib("8192"), Ok(8192));
        assert_eq!(parse_mib("8Gi"), Ok(8192));
        assert_eq!(parse_mib("8GiB"), Ok(8192));
        assert_eq!(parse_mib("512Mi"), Ok(512));
        assert_eq!(parse_mib("1.5Gi"), Ok(1536));
        assert_eq!(parse_mib(" 2Gi "), Ok(2048));
        assert_eq!(parse_mib("1Ti"), Ok(1 << 20));
    }

    #[test]
    fn memory_refuses_fractions_of_a_mib_and_decimal_units() {
        assert!(
            parse_mib("1Ki")
                .expect_err("refused")
                .contains("whole number of MiB")
        );
        assert!(
            parse_mib("0.5")
                .expect_err("refused")
                .contains("whole number")
        );
        let err = parse_mib("8G").expect_err("refused");
        assert!(err.contains("did you mean Gi?"), "{err}");
        assert!(
            parse_mib("8GB")
                .expect_err("refused")
                .contains("did you mean Gi?")
        );
        assert!(
            parse_mib("8 parsecs")
                .expect_err("refused")
                .contains("unknown unit")
        );
    }

    #[test]
    fn garbage_is_not_a_size() {
        for bad in ["", "Gi", "-1", "1.2.3", ".", "1e9", "abc"] {
            assert!(parse_mib(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn disks_take_gib() {
        assert_eq!(parse_gib("40"), Ok(40));
        assert_eq!(parse_gib("40Gi"), Ok(40));
        assert_eq!(parse_gib("2Ti"), Ok(2048));
        assert!(
            parse_gib("512Mi")
                .expect_err("refused")
                .contains("whole number of GiB")
        );
    }

    #[test]
    fn bucket_quotas_take_bytes() {
        assert_eq!(parse_bytes("10Gi"), Ok(10 << 30));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("1024B"), Ok(1024));
        assert_eq!(parse_bytes("4Ki"), Ok(4096));
        assert_eq!(parse_bytes("1.5Ki"), Ok(1536));
        assert!(
            parse_bytes("0.5")
                .expect_err("refused")
                .contains("whole number of bytes")
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert!(
            parse_bytes("99999999999999999Pi")
                .expect_err("refused")
                .contains("too large")
        );
        assert!(parse_bytes("18446744073709551616").is_err());
        assert_eq!(parse_bytes("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "m", "10x", "1.5h", "h1", "-3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        assert_eq!(format_bytes(10 << 30), "10Gi");
        assert_eq!(format_bytes(1536 << 20), "1.5Gi");
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_mib(8192), "8Gi");
        assert_eq!(format_mib(1000), "1000Mi");
        assert_eq!(format_gib(2048), "2Ti");
        for q in ["8Gi", "1000Mi", "3Ti"] {
            assert_eq!(format_bytes(parse_bytes(q).expect("parses")), q);
        }
    }

    #[test]
    fn ages_and_elapsed_times() {
        assert_eq!(format_age(Duration::from_secs(45)), "45s");
        assert_eq!(format_age(Duration::from_secs(125)), "2m");
        assert_eq!(format_age(Duration::from_secs(7300)), "2h");
        assert_eq!(format_age(Duration::from_secs(200_000)), "2d");
        assert_eq!(format_elapsed(Duration::from_millis(2150)), "2.1s");
        assert_eq!(format_elapsed(Duration::from_secs(125)), "2m05s");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
        assert_eq!(format_duration(Duration::from_secs(5430)), "1h30m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
