//! Version patterns: bounded regular expressions over raw reply bytes, and where in the
//! reply they are tried (anywhere, the first line only, or the HTTP header block only).

use std::ops::Range;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

use super::error::ProbeError;

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;
/// The most memory a compiled pattern may take (its program), in bytes.
pub const COMPILED_SIZE_LIMIT: usize = 1 << 20;
/// The most memory the lazy DFA of one pattern may use while matching, in bytes.
pub const DFA_SIZE_LIMIT: usize = 2 << 20;
/// The deepest nesting of groups and repetitions accepted.
pub const NEST_LIMIT: u32 = 64;

/// Compiles `pattern` within the limits above; it must have a capture group (the version).
pub fn compile(pattern: &str) -> Result<Regex, ProbeError> {
    let bad = |reason: String| ProbeError::Pattern {
        pattern: protocol::escape(pattern.get(..200).unwrap_or(pattern)),
        reason,
    };
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(bad(format!(
            "it is {} bytes long, the limit is {MAX_PATTERN_LEN}",
            pattern.len()
        )));
    }
    let regex = RegexBuilder::new(pattern)
        .size_limit(COMPILED_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    if regex.captures_len() < 2 {
        return Err(bad(
            "it has no capture group: put the part that names the version in ( )".to_owned(),
        ));
    }
    Ok(regex)
}

/// Where a pattern is tried, and what the reply must hold before it is.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Anywhere in the complete lines received (everything, once no more will come).
    Anywhere(Regex),
    /// In the first line only (its `\r\n` or `\n` excluded).
    FirstLine(Regex),
    /// In an HTTP response's header block only, once it is complete (`\r\n\r\n`).
    Headers(Regex),
}

/// What a search of the reply so far found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// The version is these bytes of the reply.
    Found(Range<usize>),
    /// Not yet: more of the reply may bring it.
    NotYet,
    /// Never: the part of the reply the pattern is tried on is complete and does not match.
    Never,
}

impl Matcher {
    /// The pattern's regular expression.
    pub fn regex(&self) -> &Regex {
        match self {
            Matcher::Anywhere(r) | Matcher::FirstLine(r) | Matcher::Headers(r) => r,
        }
    }

    /// Searches `reply`; `complete` says nothing more will arrive (closed, limit, timeout).
    pub fn search(&self, reply: &[u8], complete: bool, locs: &mut CaptureLocations) -> Search {
        let (regex, scope, definitive) = match self {
            Matcher::Anywhere(regex) => {
                // Only whole lines, so that `(\S+)` cannot match half a version whose
                // rest is still on the wire.
                let end = if complete {
                    reply.len()
                } else {
                    match memchr::memrchr(b'\n', reply) {
                        Some(pos) => pos + 1,
                        None => return Search::NotYet,
                    }
                };
                (regex, &reply[..end], complete)
            }
            Matcher::FirstLine(regex) => match memchr::memchr(b'\n', reply) {
                Some(pos) => {
                    let line = &reply[..pos];
                    (regex, line.strip_suffix(b"\r").unwrap_or(line), true)
                }
                None if complete => (regex, reply, true),
                None => return Search::NotYet,
            },
            Matcher::Headers(regex) => match memchr::memmem::find(reply, b"\r\n\r\n") {
                Some(pos) => (regex, &reply[..pos + 2], true),
                None if complete => (regex, reply, true),
                None => return Search::NotYet,
            },
        };
        if regex.captures_read(locs, scope).is_some() {
            if let Some((start, end)) = locs.get(1) {
                return Search::Found(start..end);
            }
            return Search::Never;
        }
        if definitive {
            Search::Never
        } else {
            Search::NotYet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(m: &Matcher, reply: &[u8], complete: bool) -> Search {
        m.search(reply, complete, &mut m.regex().capture_locations())
    }

    #[test]
    fn patterns_need_a_group_and_stay_within_bounds() {
        assert!(compile(r"version (\S+)").is_ok());
        let err = compile(r"version \S+").unwrap_err().to_string();
        assert!(err.contains("no capture group"), "{err}");
        assert!(compile(r"(unclosed").is_err());
        assert!(compile(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        // A pattern whose program exceeds the size limit is refused, not built.
        let err = compile(r"(\w{1000}){1000}").unwrap_err().to_string();
        assert!(err.contains("size limit"), "{err}");
        let nested = format!("{}x{}", "(".repeat(100), ")".repeat(100));
        assert!(compile(&nested).is_err());
    }

    #[test]
    fn anywhere_waits_for_whole_lines_unless_complete() {
        let m = Matcher::Anywhere(compile(r"redis_version:(\S+)").unwrap());
        assert_eq!(
            search(&m, b"# Server\r\nredis_version:7.0", false),
            Search::NotYet
        );
        let full = b"# Server\r\nredis_version:7.0.15\r\n";
        assert_eq!(search(&m, full, false), Search::Found(24..30));
        assert_eq!(search(&m, b"x\nversion 1", false), Search::NotYet);
        assert_eq!(search(&m, b"-NOAUTH\r\n", true), Search::Never);
        let m = Matcher::Anywhere(compile(r"v=(\d+)").unwrap());
        assert_eq!(search(&m, b"v=12", true), Search::Found(2..4));
    }

    #[test]
    fn first_line_is_decided_by_the_first_line_alone() {
        let m = Matcher::FirstLine(compile(r"^(.*)$").unwrap());
        assert_eq!(search(&m, b"SSH-2.0-OpenSSH", false), Search::NotYet);
        assert_eq!(
            search(&m, b"SSH-2.0-OpenSSH_9.2p1 one\r\nmore", false),
            Search::Found(0..25)
        );
        let m = Matcher::FirstLine(compile(r" (canary|stable)$").unwrap());
        assert_eq!(search(&m, b"220 ready\r\ncanary", false), Search::Never);
    }

    #[test]
    fn headers_are_searched_once_complete_and_never_in_the_body() {
        let m = Matcher::Headers(compile(r"(?im)^x-version:[ \t]*([^\r\n]*?)[ \t]*\r$").unwrap());
        let head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Version:  v2 \r\n";
        assert_eq!(search(&m, head, false), Search::NotYet);
        let whole = [head.as_slice(), b"\r\nbody"].concat();
        assert_eq!(search(&m, &whole, false), Search::Found(44..46));
        let in_body = b"HTTP/1.1 200 OK\r\n\r\nx-version: v9\r\n";
        assert_eq!(search(&m, in_body, false), Search::Never);
    }
}
