//! A latency histogram read back from a report, decoded within bounds.
//!
//! HdrHistogram's own V2 decoder trusts what the bytes declare: it allocates the payload
//! length a header claims (up to 4 GiB) and inflates a deflate stream without a limit.
//! A report is input, so its histograms are checked here first: the text's length, the
//! cookie, the deflated length against the bytes present, inflation through a byte
//! limit, the header's bounds (those of every histogram the checker writes, see
//! [`crate::tally`]) and the declared payload against what such a histogram can need.
//! Only then does HdrHistogram's decoder see the bytes, and what it allocates is bounded.

use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{DeserializeError, Deserializer};

use crate::tally::{LATENCY_SIGFIG, MAX_LATENCY_US, new_histogram};

/// HdrHistogram's V2 cookie (uncompressed).
const V2_COOKIE: u32 = 0x1c84_9313;
/// HdrHistogram's V2 deflate cookie.
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// A V2 header: cookie, payload length, normalizing offset, digits, lowest, highest, ratio.
const V2_HEADER: usize = 40;
/// The longest count in the payload: a 9-byte LEB128 varint.
const LONGEST_COUNT: usize = 9;

/// Why a histogram read back is refused; each reads after the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// The text is longer than any histogram of the tally's bounds.
    #[error("is {len} characters long; a histogram of the checker's bounds takes at most {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// Not base64.
    #[error("is not base64 ({0})")]
    Base64(String),
    /// Fewer bytes than a header.
    #[error("ends before its header does ({0} bytes)")]
    Short(usize),
    /// An unknown cookie.
    #[error("does not start with an HdrHistogram V2 cookie (it starts with {0:#010x})")]
    Cookie(u32),
    /// The deflated length disagrees with the bytes present.
    #[error("declares {declared} deflated bytes but holds {present}")]
    DeflatedLength {
        /// As declared.
        declared: u32,
        /// As present.
        present: usize,
    },
    /// The deflate stream is broken.
    #[error("is not a valid deflate stream ({0})")]
    Inflate(String),
    /// Inflation passed the limit: a deflate bomb, or not a histogram of the tally's bounds.
    #[error(
        "inflates to more than {max} bytes, more than a histogram of the checker's bounds can need (a deflate bomb?)"
    )]
    Bomb {
        /// The limit.
        max: usize,
    },
    /// Bounds other than those the checker writes.
    #[error(
        "tracks {low}..{high} at {digits} significant digits, not the bounds the checker writes (1..{MAX_LATENCY_US} µs at {LATENCY_SIGFIG} digits)"
    )]
    Bounds {
        /// Lowest discernible value.
        low: u64,
        /// Highest trackable value.
        high: u64,
        /// Significant digits.
        digits: u32,
    },
    /// The declared payload is more than a histogram of the tally's bounds can need.
    #[error(
        "declares {declared} bytes of counts; a histogram of the checker's bounds needs at most {max}"
    )]
    Declared {
        /// As declared.
        declared: u32,
        /// The most a histogram can need.
        max: usize,
    },
    /// The declared payload disagrees with the bytes present.
    #[error("declares {declared} bytes of counts but ends after {present}")]
    Ends {
        /// As declared.
        declared: u32,
        /// As present.
        present: usize,
    },
    /// HdrHistogram's decoder refused the counts.
    #[error("holds counts that cannot be decoded ({0})")]
    Counts(&'static str),
    /// The counts add up past what a count holds.
    #[error("holds counts that add up to more than 2^64-1")]
    Total,
}

/// The number of counts in a histogram of the tally's bounds.
fn slots() -> usize {
    new_histogram().distinct_values()
}

/// The most bytes a V2 histogram of the tally's bounds takes uncompressed: its header
/// and the longest varint for every count (about 221 KB).
pub fn max_plain_len() -> usize {
    V2_HEADER + LONGEST_COUNT * slots()
}

/// The most deflated bytes accepted: deflate grows incompressible data by 5 bytes per
/// 16 KiB stored block, zlib adds 6, and V2 deflate its 8-byte cookie and length.
pub fn max_deflated_len() -> usize {
    let plain = max_plain_len();
    8 + plain + 5 * plain.div_ceil(16 * 1024) + 6
}

/// The longest base64 text accepted (about 300 KB).
pub fn max_text_len() -> usize {
    max_deflated_len().div_ceil(3) * 4
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Inflates a zlib stream through a limit of [`max_plain_len`] bytes.
fn inflate(zlib: &[u8]) -> Result<Vec<u8>, HistogramError> {
    let max = max_plain_len();
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(zlib)
        .take(max as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| HistogramError::Inflate(e.to_string()))?;
    if plain.len() > max {
        return Err(HistogramError::Bomb { max });
    }
    Ok(plain)
}

/// Checks an uncompressed V2 histogram's header against the tally's bounds.
fn check_plain(plain: &[u8]) -> Result<(), HistogramError> {
    if plain.len() < V2_HEADER {
        return Err(HistogramError::Short(plain.len()));
    }
    let cookie = u32_at(plain, 0);
    if cookie != V2_COOKIE {
        return Err(HistogramError::Cookie(cookie));
    }
    let (digits, low, high) = (u32_at(plain, 12), u64_at(plain, 16), u64_at(plain, 24));
    if (low, high, digits) != (1, MAX_LATENCY_US, u32::from(LATENCY_SIGFIG)) {
        return Err(HistogramError::Bounds { low, high, digits });
    }
    let declared = u32_at(plain, 4);
    let max = LONGEST_COUNT * slots();
    if declared as usize > max {
        return Err(HistogramError::Declared { declared, max });
    }
    let present = plain.len() - V2_HEADER;
    if declared as usize != present {
        return Err(HistogramError::Ends { declared, present });
    }
    Ok(())
}

fn counts_error(e: &DeserializeError) -> HistogramError {
    HistogramError::Counts(match e {
        DeserializeError::IoError(_) => "they end early",
        DeserializeError::InvalidCookie => "a wrong cookie",
        DeserializeError::UnsupportedFeature => "a feature this checker does not write",
        DeserializeError::UnsuitableCounterType => "a count beyond 2^63-1",
        DeserializeError::InvalidParameters => "invalid bounds",
        DeserializeError::UsizeTypeTooSmall => "a run of zeros too long",
        DeserializeError::EncodedArrayTooLong => "more counts than the bounds have",
    })
}

/// Decodes a histogram written by [`super::encode`] (V2 deflate, or V2 plain, base64)
/// within the bounds above.
pub fn decode(text: &str) -> Result<Histogram<u64>, HistogramError> {
    let max = max_text_len();
    if text.len() > max {
        return Err(HistogramError::TooLong {
            len: text.len(),
            max,
        });
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| HistogramError::Base64(e.to_string()))?;
    if bytes.len() < 4 {
        return Err(HistogramError::Short(bytes.len()));
    }
    let plain = match u32_at(&bytes, 0) {
        V2_DEFLATE_COOKIE => {
            if bytes.len() < 8 {
                return Err(HistogramError::Short(bytes.len()));
            }
            let declared = u32_at(&bytes, 4);
            let zlib = &bytes[8..];
            if declared as usize != zlib.len() {
                return Err(HistogramError::DeflatedLength {
                    declared,
                    present: zlib.len(),
                });
            }
            inflate(zlib)?
        }
        V2_COOKIE => bytes,
        other => return Err(HistogramError::Cookie(other)),
    };
    check_plain(&plain)?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut plain.as_slice())
        .map_err(|e| counts_error(&e))?;
    // The decoder adds counts with saturation: a total at the ceiling may have wrapped.
    if h.len() == u64::MAX {
        return Err(HistogramError::Total);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer, V2Serializer};

    fn header(payload_len: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&V2_COOKIE.to_be_bytes());
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes());
        h.extend_from_slice(&u32::from(LATENCY_SIGFIG).to_be_bytes());
        h.extend_from_slice(&1u64.to_be_bytes());
        h.extend_from_slice(&MAX_LATENCY_US.to_be_bytes());
        h.extend_from_slice(&1.0f64.to_be_bytes());
        h
    }

    fn deflated(plain: &[u8]) -> String {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(plain).unwrap();
        let zlib = e.finish().unwrap();
        let mut out = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        out.extend_from_slice(&(zlib.len() as u32).to_be_bytes());
        out.extend_from_slice(&zlib);
        STANDARD.encode(out)
    }

    #[test]
    fn the_bounds_are_a_few_hundred_kilobytes() {
        // The figures the README gives.
        assert_eq!(slots(), 23_552);
        assert_eq!(max_plain_len(), 212_008);
        assert_eq!(max_text_len(), 282_784);
        assert!(max_plain_len() < 256 * 1024, "{}", max_plain_len());
        assert!(max_text_len() < 400 * 1024, "{}", max_text_len());
    }

    #[test]
    fn histograms_the_checker_writes_decode_both_ways() {
        let mut h = new_histogram();
        for v in [1, 90, 4000, 77_777, MAX_LATENCY_US] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let mut deflated = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h, &mut deflated)
            .unwrap();
        assert_eq!(decode(&STANDARD.encode(&deflated)).unwrap(), h);
        let mut plain = Vec::new();
        V2Serializer::new().serialize(&h, &mut plain).unwrap();
        assert_eq!(decode(&STANDARD.encode(&plain)).unwrap(), h);
    }

    #[test]
    fn lies_about_lengths_and_bounds_are_refused() {
        assert_eq!(
            decode(&deflated(&header(u32::MAX))),
            Err(HistogramError::Declared {
                declared: u32::MAX,
                max: LONGEST_COUNT * slots()
            })
        );
        assert_eq!(
            decode(&deflated(&header(100))),
            Err(HistogramError::Ends {
                declared: 100,
                present: 0
            })
        );
        let mut other = header(0);
        other[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            decode(&deflated(&other)),
            Err(HistogramError::Bounds { .. })
        ));
        let mut plain = header(0);
        plain.extend(std::iter::repeat_n(0u8, max_plain_len()));
        assert_eq!(
            decode(&deflated(&plain)),
            Err(HistogramError::Bomb {
                max: max_plain_len()
            })
        );
        let long = "A".repeat(max_text_len() + 4);
        assert!(matches!(decode(&long), Err(HistogramError::TooLong { .. })));
        assert!(matches!(decode("!!"), Err(HistogramError::Base64(_))));
        assert_eq!(decode("AAAA"), Err(HistogramError::Short(3)));
        assert!(matches!(
            decode(&STANDARD.encode([0u8; 64])),
            Err(HistogramError::Cookie(0))
        ));
    }
}
