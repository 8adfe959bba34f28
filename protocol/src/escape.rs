//! The one escaping function for text that came from outside (a malformed reply, a
//! manifest, a file name) and is about to reach a terminal: nothing it returns can move
//! the cursor, recolour the screen, hide text or reorder it.

use std::fmt::Write;

/// `bytes` made safe to print, one line: `\` is doubled; tab, newline and carriage return
/// become `\t`, `\n`, `\r`; other ASCII control bytes `\xNN`; bytes that are not UTF-8
/// `\xNN`; Unicode control characters (C1, such as the one-byte CSI U+009B) and the
/// invisible characters that reorder or hide text (bidirectional overrides and isolates,
/// zero-width characters, line and paragraph separators, the byte-order mark)
/// `\u{NNNN}`. Everything else, quotes and printable non-ASCII text included, is kept.
pub fn escape(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if c.is_control() || hides_or_reorders(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// The invisible format characters that change how the text around them is shown.
fn hides_or_reorders(c: char) -> bool {
    matches!(
        u32::from(c),
        0x061c | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn printable_text_is_kept() {
        assert_eq!(
            escape("tcp-echo subset \"canary\""),
            "tcp-echo subset \"canary\""
        );
        assert_eq!(escape("café ünïcode 版本"), "café ünïcode 版本");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn what_could_drive_a_terminal_is_escaped() {
        assert_eq!(escape("a\x1b[31mred\x1b[0m"), "a\\x1b[31mred\\x1b[0m");
        assert_eq!(
            escape("one\ttwo\r\nthree\x07\x7f"),
            "one\\ttwo\\r\\nthree\\x07\\x7f"
        );
        assert_eq!(escape("\u{9b}2J"), "\\u{009b}2J");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            escape("zero\u{200b}width\u{feff}"),
            "zero\\u{200b}width\\u{feff}"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_and_backslashes_are_unambiguous() {
        assert_eq!(escape(b"\x00\xff\"".as_slice()), "\\x00\\xff\"");
        assert_eq!(escape(b"caf\xc3".as_slice()), "caf\\xc3");
        assert_eq!(escape("a\\x1b"), "a\\\\x1b");
    }

    #[test]
    fn the_result_holds_no_control_character() {
        let every_byte: Vec<u8> = (0..=255u8).collect();
        let escaped = escape(&every_byte);
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
    }
}
