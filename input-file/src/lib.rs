//! Files that are input (a manifest, a rehearsal's plan, a report read back, a samples
//! file, the watch's expectation file, a CA file, a config dump, the echo server's
//! certificate and key) are opened the one careful way: without blocking (a FIFO would
//! wait for a writer forever), only when they are regular files (not a device such as
//! `/dev/zero`, a FIFO, a socket or a directory), and read through a size limit. A crate
//! of its own at the bottom of the workspace, so that every reader shares it and none
//! links more than this for it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// Why an input file cannot be read: a clause for after "cannot read FILE: ".
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It cannot be opened or read.
    #[error("{0}")]
    Read(std::io::Error),
    /// Its symbolic links lead back to themselves.
    #[error("it is a loop of symbolic links")]
    Loop,
    /// It is not a regular file.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// It is not UTF-8 text.
    #[error("it is not UTF-8 text (byte {0})")]
    NotUtf8(usize),
    /// It is longer than the limit.
    #[error("it is larger than {}, the most the checker reads from {what}", bytes_text(*.limit))]
    TooLarge {
        /// The limit, bytes.
        limit: u64,
        /// What the file is ("one report").
        what: &'static str,
    },
}

/// `bytes` as `16 MiB` when a whole number of MiB or KiB, else bytes (`100 bytes`).
pub fn bytes_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a file that is not regular is, in words.
fn kind(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_dir() {
        Some("a directory")
    } else {
        Some("not a file")
    }
}

/// Whether `e` (from `std::fs::metadata`, say) says that the path's symbolic links lead
/// back to themselves.
pub fn is_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Opens `path` for reading if it is a regular file, never blocking on the way.
pub fn open_regular(path: &Path) -> Result<File, InputError> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            InputError::Loop
        } else {
            InputError::Read(e.into())
        }
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(InputError::Read)?;
    match kind(meta.file_type()) {
        Some(kind) => Err(InputError::NotRegular(kind)),
        None => Ok(file),
    }
}

/// Reads the regular file at `path` whole, refusing it past `limit` bytes (`what` says
/// what the file is, for the message: "one report").
pub fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(InputError::Read)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit, what });
    }
    Ok(bytes)
}

/// Reads the regular file at `path` whole as UTF-8 text (see [`read_bounded`]).
pub fn read_text_bounded(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<String, InputError> {
    String::from_utf8(read_bounded(path, limit, what)?)
        .map_err(|e| InputError::NotUtf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "one=90,two=10\n").unwrap();
        assert_eq!(read_bounded(&file, 64, "x").unwrap(), b"one=90,two=10\n");
        let e = read_bounded(&file, 4, "one expectation file").unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is larger than 4 bytes, the most the checker reads from one expectation file"
        );
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20, "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file"
        );
        let e = read_bounded(dir.path(), 64, "x").unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let e = read_bounded(&looped, 64, "x").unwrap_err();
        assert!(matches!(e, InputError::Loop), "{e}");
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 64, "x"),
            Err(InputError::Read(_))
        ));
        std::fs::write(&file, b"ok\xff").unwrap();
        let e = read_text_bounded(&file, 64, "x").unwrap_err();
        assert_eq!(e.to_string(), "it is not UTF-8 text (byte 2)");
        assert_eq!(bytes_text(16 << 20), "16 MiB");
        assert_eq!(bytes_text(64 << 10), "64 KiB");
    }
}
