//! The one rule both binaries (echo-server and checker) use to read a duration from a
//! flag or an environment variable (and the checker's library from a threshold).
//!
//! A duration is either a number with units, as humantime reads it (`500ms`, `1.5s`,
//! `2m`, `1m30s`, `1h`), or a bare number of seconds, which may have a fraction
//! (`5`, `1.5`). Surrounding spaces are ignored. Negative, infinite and not-a-number
//! values are refused.

use std::time::Duration;

/// The rule in one line, for `--help` texts and error messages.
pub const RULE: &str =
    "a duration such as 500ms, 1.5s, 2m or 1m30s, or a bare number of seconds (fractions allowed)";

/// Parses a duration by the crate's rule; the error is the end of a sentence naming the
/// flag (`must be ...`), without the value, which each binary shows its own way.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| "must be a duration of zero or more seconds".to_owned());
    }
    humantime::parse_duration(text).map_err(|e| format!("must be {RULE} ({e})"))
}

/// Parses a duration longer than zero (see [`parse`]).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    match parse(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err("must be a duration longer than zero, such as 30s, 2m or 1.5".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds_are_read() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 7 "), Ok(Duration::from_secs(7)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn nonsense_and_negative_values_are_refused() {
        for bad in ["-1", "-1s", "soon", "", "NaN", "inf", "5 parsecs"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("must be a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn positive_refuses_zero() {
        assert_eq!(parse_positive("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0", "0s", "-1", "soon"] {
            assert!(parse_positive(bad).is_err(), "{bad}");
        }
    }
}
