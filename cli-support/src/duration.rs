//! The one rule both binaries (echo-server and checker) use to read a duration from a
//! flag or an environment variable (and the checker's library from a threshold).
//!
//! A duration is either a number with units, as humantime reads it (`500ms`, `1.5s`,
//! `2m`, `1m30s`, `1h`), or a bare number of seconds, which may have a fraction
//! (`5`, `1.5`), shorter than 2^64 seconds (what a duration holds). Surrounding spaces
//! are ignored.
//! Negative, too long, infinite and not-a-number values are refused, each with its own
//! reason.

use std::time::Duration;

/// The rule in one line, for `--help` texts and error messages.
pub const RULE: &str =
    "a duration such as 500ms, 1.5s, 2m or 1m30s, or a bare number of seconds (fractions allowed)";

/// Why a duration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Less than zero.
    Negative,
    /// As long as 2^64 seconds or longer: more than a duration holds.
    TooLong,
}

/// The end of the sentence for a duration of 2^64 seconds or more.
fn too_long() -> String {
    "is too long: a duration must be shorter than 2^64 seconds (about 584 billion years)".to_owned()
}

/// Parses `text`, saying why not.
fn read(text: &str) -> Result<Duration, Result<Refused, String>> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_nan() {
            return Err(Err(format!("must be {RULE}")));
        }
        if seconds < 0.0 {
            return Err(Ok(Refused::Negative));
        }
        return Duration::try_from_secs_f64(seconds).map_err(|_| Ok(Refused::TooLong));
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(Ok(Refused::TooLong)),
        Err(e) => Err(Err(format!("must be {RULE} ({e})"))),
    }
}

/// Parses a duration by the crate's rule; the error is the end of a sentence naming the
/// flag (`must be ...`, `is too long: ...`), without the value, which each binary shows
/// its own way.
pub fn parse(text: &str) -> Result<Duration, String> {
    read(text).map_err(|why| match why {
        Ok(Refused::Negative) => "must be a duration of zero or more seconds".to_owned(),
        Ok(Refused::TooLong) => too_long(),
        Err(why) => why,
    })
}

/// Parses a duration longer than zero (see [`parse`]).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let zero = || "must be a duration longer than zero, such as 30s, 2m or 1.5".to_owned();
    match read(text) {
        Ok(d) if d.is_zero() => Err(zero()),
        Ok(d) => Ok(d),
        Err(Ok(Refused::Negative)) => Err(zero()),
        Err(Ok(Refused::TooLong)) => Err(too_long()),
        Err(Err(why)) => Err(why),
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
        for bad in ["-1", "-1s", "soon", "", "NaN", "5 parsecs"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("must be a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn too_long_is_said_with_the_limit() {
        let said = Err(
            "is too long: a duration must be shorter than 2^64 seconds (about 584 billion years)"
                .to_owned(),
        );
        for bad in [
            "1e99",
            "inf",
            "18446744073709551616",
            "99999999999999999999999s",
        ] {
            assert_eq!(parse(bad), said, "{bad}");
            assert_eq!(parse_positive(bad), said, "{bad}");
        }
        // Absurd but representable: the echo server saturates such timeouts.
        assert!(parse_positive("500000000y").is_ok());
    }

    #[test]
    fn positive_refuses_zero() {
        assert_eq!(parse_positive("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0", "0s", "-1", "soon"] {
            assert!(parse_positive(bad).is_err(), "{bad}");
        }
    }
}
