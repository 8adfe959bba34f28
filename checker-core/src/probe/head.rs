//! A reply's head as the reports show it: its first bytes, escaped, the line sent
//! replaced by a marker so that the same mistake gives the same head on every sample.

/// How many bytes of a malformed reply are kept (escaped) for the report.
pub const REPLY_HEAD_BYTES: usize = 48;

/// What stands for the probe line inside a malformed reply's head.
pub const LINE_SENT: &str = "<line sent>";

/// The first [`REPLY_HEAD_BYTES`] of `reply`, escaped by [`protocol::escape`] (`\t`,
/// `\n`, `\x00`), with `...` when cut: printable on any terminal and in JSON. The probe
/// line (`sent` without its newline) is replaced by [`LINE_SENT`], so that the same
/// mistake gives the same head on every sample.
pub fn reply_head(reply: &[u8], sent: &[u8]) -> String {
    let body = sent.strip_suffix(b"\n").unwrap_or(sent);
    let normalised: Vec<u8> = match (!body.is_empty())
        .then(|| reply.windows(body.len()).position(|w| w == body))
        .flatten()
    {
        Some(at) => [
            &reply[..at],
            LINE_SENT.as_bytes(),
            &reply[at + body.len()..],
        ]
        .concat(),
        None => reply.to_vec(),
    };
    let cut = normalised.len() > REPLY_HEAD_BYTES;
    let mut head = protocol::escape(&normalised[..normalised.len().min(REPLY_HEAD_BYTES)]);
    if cut {
        head.push_str("...");
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_heads_are_escaped_and_cut() {
        let sent = b"tcp-canary 7 2026-11-29T18:20:34.905862957Z\n";
        assert_eq!(reply_head(b"one\thello\n", sent), "one\\thello\\n");
        assert_eq!(reply_head(b"\x00\xff\"", sent), "\\x00\\xff\"");
        let long = vec![b'a'; 100];
        assert_eq!(
            reply_head(&long, sent),
            format!("{}...", "a".repeat(REPLY_HEAD_BYTES))
        );
        let tab = [b"one\t".as_slice(), sent].concat();
        assert_eq!(reply_head(&tab, sent), "one\\t<line sent>\\n");
    }
}
