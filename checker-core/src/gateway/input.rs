//! Bounded reads of what the gateway says: every document is read up to a limit and
//! refused beyond it, without reading the rest into memory.

use std::io::Read;

pub use input_file::bytes_text;

/// The largest config dump read (a gateway's whole `/config_dump`, bootstrap and
/// clusters included, is a few MiB even in large meshes; 64 MiB leaves room without
/// letting a runaway file exhaust memory).
pub const MAX_CONFIG_DUMP_BYTES: u64 = 64 << 20;

/// The largest counter text read (`/stats`, `/stats/prometheus`, a scrape).
pub const MAX_STATS_BYTES: u64 = 32 << 20;

/// The largest Prometheus API answer read.
pub const MAX_API_BYTES: u64 = 8 << 20;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The document is larger than the limit.
    #[error("{what} is larger than {limit_text}: refused without reading the rest", limit_text = bytes_text(*limit))]
    TooLarge {
        /// What was being read.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// It is not a regular file (a FIFO, a device, a directory, a loop of links).
    #[error("{what} cannot be read: {why}")]
    NotAFile {
        /// What was being read.
        what: String,
        /// What it is instead.
        why: input_file::InputError,
    },
    /// The operating system could not read it.
    #[error("{what} could not be read: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// Reads all of `reader` if it holds at most `limit` bytes; `what` names it in errors.
pub fn read_bounded(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, InputError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| InputError::Io {
            what: what.to_owned(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(InputError::TooLarge {
            what: what.to_owned(),
            limit,
        });
    }
    Ok(out)
}

/// Reads a file (or standard input for `-`) of at most `limit` bytes.
pub fn read_source(source: &str, limit: u64) -> Result<Vec<u8>, InputError> {
    if source == "-" {
        return read_bounded(std::io::stdin().lock(), limit, "standard input");
    }
    // Opened without blocking and only when regular: a FIFO would wait for a writer
    // forever and a device such as /dev/zero never ends.
    let what = source.to_owned();
    let file = input_file::open_regular(std::path::Path::new(source)).map_err(|why| match why {
        input_file::InputError::Read(source) => InputError::Io {
            what: what.clone(),
            source,
        },
        other => InputError::NotAFile {
            what: what.clone(),
            why: other,
        },
    })?;
    read_bounded(file, limit, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let text = [b'x'; 100];
        assert_eq!(read_bounded(&text[..], 100, "t").unwrap().len(), 100);
        let err = read_bounded(&text[..], 99, "the dump").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the dump is larger than 99 bytes: refused without reading the rest"
        );
    }

    #[test]
    fn a_huge_stream_is_refused_after_reading_only_the_limit() {
        // An endless reader: only limit + 1 bytes are ever pulled from it.
        let endless = std::io::repeat(b'{');
        let err = read_bounded(endless, 1 << 20, "stdin").unwrap_err();
        assert!(matches!(err, InputError::TooLarge { limit, .. } if limit == 1 << 20));
        assert!(err.to_string().contains("1 MiB"), "{err}");
    }

    #[test]
    fn sizes_read_as_units() {
        assert_eq!(bytes_text(MAX_CONFIG_DUMP_BYTES), "64 MiB");
        assert_eq!(bytes_text(2048), "2 KiB");
        assert_eq!(bytes_text(1000), "1000 bytes");
    }
}
