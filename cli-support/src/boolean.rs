//! The one rule both binaries use to read a yes/no value from a variable (or a flag
//! that takes a value).

/// Parses a yes/no value in the usual spellings: 1/0, true/false, yes/no, y/n, on/off (any
/// case, surrounding spaces ignored); empty is no. The error is the end of a sentence
/// naming the flag (`must be ...`), without the value, which each binary shows its own way.
pub fn parse(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err("must be 1/0, true/false, yes/no or on/off".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_spellings_are_read() {
        for yes in ["1", "true", "YES", " y ", "On"] {
            assert_eq!(parse(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "No", "n", "OFF", ""] {
            assert_eq!(parse(no), Ok(false), "{no}");
        }
        for bad in ["maybe", "2", "yes please"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("must be 1/0"), "{bad}: {e}");
        }
    }
}
