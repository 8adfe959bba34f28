//! The watch's expectation file (`--expect-file`): one line as `--expect` takes it
//! (`one=90,two=10`), read as input: a regular file of at most
//! [`MAX_EXPECT_FILE_BYTES`], opened without blocking (see [`input_file`]), its
//! name and text escaped in every message.

use std::path::Path;

use crate::expect::Expectation;

/// The largest expectation file read, bytes: an expectation is one line of a few
/// hundred bytes (32 versions of at most 64 bytes each fit in a few KiB).
pub const MAX_EXPECT_FILE_BYTES: u64 = 64 * 1024;

/// The longest part of a file's text quoted in a message, characters.
const QUOTED: usize = 80;

/// Why an expectation file cannot be used; names the file (escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectFileError {
    /// The file cannot be read: missing, not a regular file, too large, not UTF-8.
    #[error("cannot read the expectation file {path}: {why}")]
    Read {
        /// The file, escaped.
        path: String,
        /// Why, escaped.
        why: String,
    },
    /// The text is not an expectation.
    #[error("the expectation file {path} holds \"{text}\", which is not an expectation: {why}")]
    Parse {
        /// The file, escaped.
        path: String,
        /// Its text (trimmed, escaped, shortened).
        text: String,
        /// Why, escaped.
        why: String,
    },
}

/// `text` escaped and cut to [`QUOTED`] characters.
fn quoted(text: &str) -> String {
    let mut cut: String = text.chars().take(QUOTED).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    protocol::escape(cut)
}

/// Reads the expectation in the file at `path`.
pub fn read(path: &Path) -> Result<Expectation, ExpectFileError> {
    let name = protocol::escape(path.as_os_str().as_encoded_bytes());
    let read_error = |why: String| ExpectFileError::Read {
        path: name.clone(),
        why: protocol::escape(why),
    };
    let text = input_file::read_text_bounded(path, MAX_EXPECT_FILE_BYTES, "one expectation file")
        .map_err(|e| read_error(e.to_string()))?;
    let text = text.trim();
    text.parse::<Expectation>()
        .map_err(|e| ExpectFileError::Parse {
            path: name.clone(),
            text: quoted(text),
            why: protocol::escape(e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_is_read_and_bad_ones_are_named_with_their_text_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("expect");
        std::fs::write(&file, " one=90, two=10\r\n").unwrap();
        assert_eq!(read(&file).unwrap().to_string(), "one=90,two=10");
        std::fs::write(&file, "one=abc\x1b[2J\n").unwrap();
        let e = read(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "the expectation file {} holds \"one=abc\\x1b[2J\", which is not an expectation: ",
                file.display()
            )),
            "{e}"
        );
        assert!(!e.contains('\x1b'), "{e}");
        std::fs::write(&file, "x".repeat(200)).unwrap();
        let e = read(&file).unwrap_err().to_string();
        assert!(e.contains(&format!("\"{}…\"", "x".repeat(QUOTED))), "{e}");
        let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot read the expectation file /dev/zero: it is a character device, not a regular file"
        );
        std::fs::write(&file, vec![b'a'; MAX_EXPECT_FILE_BYTES as usize + 1]).unwrap();
        let e = read(&file).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "it is larger than 64 KiB, the most the checker reads from one expectation file"
            ),
            "{e}"
        );
    }
}
