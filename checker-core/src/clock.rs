//! Wall-clock timestamps as RFC 3339 text in UTC, formatted by humantime (the crate
//! that also reads and prints the command line's durations, so one crate does both).

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `t` as `2026-11-27T13:37:49.123456789Z` to `out`, without allocating.
///
/// A clock set before 1970 writes the epoch; a time after year 9999 writes nothing.
pub fn write_rfc3339_nanos(t: SystemTime, out: &mut String) {
    // humantime panics before the epoch and refuses years past 9999 with a fmt error,
    // which is ignored here: an empty timestamp still makes a valid probe line.
    let _ = write!(
        out,
        "{}",
        humantime::format_rfc3339_nanos(t.max(UNIX_EPOCH))
    );
}

/// `t` as `2026-11-27T13:37:49.123456Z` (microseconds), for the report's start and end.
pub fn rfc3339_micros(t: SystemTime) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{}",
        humantime::format_rfc3339_micros(t.max(UNIX_EPOCH))
    );
    out
}

/// `t` as `2026-11-27T13:37:49.123456789Z` (nanoseconds).
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let mut out = String::new();
    write_rfc3339_nanos(t, &mut out);
    out
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp such as
/// `2026-11-27T13:37:49.123456789Z` (as written above); `None` when it is not one.
pub fn unix_seconds(text: &str) -> Option<f64> {
    parse_utc(text).ok()
}

/// Why a timestamp cannot be read; a clause after the timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339 in UTC.
    #[error("is not an RFC 3339 time in UTC such as 2026-11-27T13:37:49Z ({0})")]
    Format(String),
    /// A real time, but before the Unix epoch: no run of the checker took place then.
    #[error("is before 1970-01-01T00:00:00Z, the Unix epoch, before any run of the checker")]
    BeforeEpoch,
}

/// [`unix_seconds`], saying why not.
pub fn parse_utc(text: &str) -> Result<f64, TimeError> {
    let t = humantime::parse_rfc3339(text).map_err(|e| {
        // humantime reads only the years it can represent (1970 on): a time of the
        // right form before then is out of its range, not malformed.
        if year_before_1970(text) {
            TimeError::BeforeEpoch
        } else {
            TimeError::Format(e.to_string())
        }
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .map_err(|_| TimeError::BeforeEpoch)
}

/// Whether `text` has the form `YYYY-MM-DDTHH:MM:SS[.frac]Z` with a year before 1970.
fn year_before_1970(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let form = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b.last() == Some(&b'Z')
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1)));
    form && text[..4].parse::<u32>().is_ok_and(|year| year < 1970)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_fixed_digits() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(rfc3339_nanos(t), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(rfc3339_micros(t), "2023-11-14T22:13:20.123456Z");
        let whole = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339_nanos(whole), "2023-11-14T22:13:20.000000000Z");
        assert_eq!(rfc3339_micros(whole), "2023-11-14T22:13:20.000000Z");
        assert_eq!(
            unix_seconds("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000.5)
        );
        assert_eq!(unix_seconds(&rfc3339_micros(whole)), Some(1_700_000_000.0));
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(
            parse_utc("0001-01-01T00:00:00Z"),
            Err(TimeError::BeforeEpoch)
        );
        assert!(matches!(
            parse_utc("2026-11-27T13:37:49+02:00"),
            Err(TimeError::Format(_))
        ));
    }

    #[test]
    fn a_clock_out_of_range_does_not_panic() {
        let early = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_nanos(early), "1970-01-01T00:00:00.000000000Z");
        let late = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339_nanos(late), "");
        let mut out = "kept".to_owned();
        write_rfc3339_nanos(late, &mut out);
        assert_eq!(out, "kept");
    }
}
