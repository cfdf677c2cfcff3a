//! Timestamps as microseconds since the Unix epoch (UTC), and the RFC 3339 subset the
//! command line accepts and prints, on `chrono` (already in the tree through Arrow).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

pub const US_PER_SEC: i64 = 1_000_000;
pub const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// `ts` moved by `months` calendar months (the day clamped to the month's length); `ts` itself
/// when the result leaves chrono's range.
pub fn add_months(ts_us: i64, months: i64) -> i64 {
    let Some(t) = DateTime::from_timestamp_micros(ts_us) else {
        return ts_us;
    };
    let n = Months::new(u32::try_from(months.unsigned_abs()).unwrap_or(u32::MAX));
    let moved = if months >= 0 {
        t.checked_add_months(n)
    } else {
        t.checked_sub_months(n)
    };
    moved.map_or(ts_us, |t| t.timestamp_micros())
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
    let mut t = s.trim().to_string();
    if t.len() == 10 {
        let d = NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(|_| err())?;
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(err)?
            .and_utc()
            .timestamp_micros());
    }
    if t.as_bytes().get(10) == Some(&b' ') {
        t.replace_range(10..11, "T");
    }
    // An offset is `±HH:MM` (chrono would also take `±HHMM`, which RFC 3339 does not).
    let Some(rest) = t.get(10..) else {
        return Err(err());
    };
    if let Some(at) = rest.rfind(['+', '-']).map(|i| i + 10) {
        let o = &t.as_bytes()[at..];
        if o.len() != 6 || o[3] != b':' {
            return Err(err());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"] {
        if let Ok(d) = DateTime::parse_from_str(&t, fmt) {
            return Ok(d.timestamp_micros());
        }
    }
    let naive = t.strip_suffix('Z').unwrap_or(&t);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Ok(d.and_utc().timestamp_micros());
        }
    }
    Err(err())
}

/// Formats as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
pub fn format_rfc3339(ts_us: i64) -> String {
    let Some(t) = DateTime::<Utc>::from_timestamp_micros(ts_us) else {
        return format!("{ts_us} µs since the epoch");
    };
    let precision = if ts_us.rem_euclid(US_PER_SEC) == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    t.to_rfc3339_opts(precision, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = parse_rfc3339("2025-06-01T12:30:05Z").unwrap();
        assert_eq!(format_rfc3339(t), "2025-06-01T12:30:05Z");
        assert_eq!(parse_rfc3339("2025-06-01").unwrap(), 20_240 * US_PER_DAY);
        assert_eq!(parse_rfc3339("1970-01-01").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2025-06-01T12:30Z").unwrap(),
            t - 5 * US_PER_SEC
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
            "é",
            "2025-06-01é",
            "2025-06-01T12:00+02:00:00",
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
