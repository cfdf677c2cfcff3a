//! Timestamps as microseconds since the Unix epoch (UTC), and the RFC 3339 subset the
//! command line accepts and prints. No calendar crate: the proleptic Gregorian conversions
//! are Howard Hinnant's `days_from_civil` / `civil_from_days`.

use std::time::{SystemTime, UNIX_EPOCH};

pub const US_PER_SEC: i64 = 1_000_000;
pub const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `ts` moved by `months` calendar months (the day clamped to the month's length).
pub fn add_months(ts_us: i64, months: i64) -> i64 {
    let days = ts_us.div_euclid(US_PER_DAY);
    let rem = ts_us.rem_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + (m as i64 - 1) + months;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * US_PER_DAY + rem
}

/// Now, in microseconds since the epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with an optional `Z` or `±HH:MM`
/// offset (no offset = UTC; a space may replace the `T`).
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let err = || {
        format!(
            "invalid timestamp {s:?} (expected RFC 3339, e.g. 2025-06-01 or 2025-06-01T12:00:00Z)"
        )
    };
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = b.get(r).ok_or_else(err)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        std::str::from_utf8(part)
            .map_err(|_| err())?
            .parse()
            .map_err(|_| err())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(err());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return Err(err());
    }
    let mut us = days_from_civil(y, mo, d) * US_PER_DAY;
    let mut i = 10;
    if i < b.len() && (b[i] == b'T' || b[i] == b't' || b[i] == b' ') {
        if b.get(i + 3) != Some(&b':') {
            return Err(err());
        }
        let (h, mi) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
        if h > 23 || mi > 59 {
            return Err(err());
        }
        us += (h * 3600 + mi * 60) * US_PER_SEC;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1..i + 3)?;
            if sec > 60 {
                return Err(err());
            }
            us += sec * US_PER_SEC;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return Err(err());
                }
                let mut frac = 0i64;
                for k in 0..6 {
                    frac = frac * 10
                        + b.get(start + k)
                            .filter(|_| start + k < end)
                            .map_or(0, |c| (c - b'0') as i64);
                }
                us += frac;
                i = end;
            }
        }
    }
    match b.get(i) {
        None => {}
        Some(b'Z' | b'z') if i + 1 == b.len() => {}
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = (num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?) * 60 * US_PER_SEC;
            us += if sign == b'+' { -off } else { off };
        }
        _ => return Err(err()),
    }
    Ok(us)
}

/// Formats as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
pub fn format_rfc3339(ts_us: i64) -> String {
    let days = ts_us.div_euclid(US_PER_DAY);
    let rem = ts_us.rem_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / US_PER_SEC;
    let frac = rem % US_PER_SEC;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:06}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn parses_and_formats() {
        let t = parse_rfc3339("2025-06-01T12:30:05Z").unwrap();
        assert_eq!(format_rfc3339(t), "2025-06-01T12:30:05Z");
        assert_eq!(
            parse_rfc3339("2025-06-01").unwrap(),
            days_from_civil(2025, 6, 1) * US_PER_DAY
        );
        assert_eq!(parse_rfc3339("2025-06-01T14:30:05+02:00").unwrap(), t);
        assert_eq!(
            parse_rfc3339("2025-06-01 12:30:05.25").unwrap(),
            t + 250_000
        );
        assert_eq!(format_rfc3339(t + 250_000), "2025-06-01T12:30:05.250000Z");
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z").unwrap(), -US_PER_SEC);
        for bad in [
            "",
            "2025",
            "2025-13-01",
            "2025-02-30",
            "2025-06-01T25:00",
            "2025-06-01X",
            "2025-06-01T12:00+0200",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn months_clamp_days() {
        let jan31 = parse_rfc3339("2024-01-31T10:00:00Z").unwrap();
        assert_eq!(format_rfc3339(add_months(jan31, 1)), "2024-02-29T10:00:00Z");
        assert_eq!(
            format_rfc3339(add_months(jan31, 13)),
            "2025-02-28T10:00:00Z"
        );
        assert_eq!(
            format_rfc3339(add_months(jan31, -2)),
            "2023-11-30T10:00:00Z"
        );
    }
}
