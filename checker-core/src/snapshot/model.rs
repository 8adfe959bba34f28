//! The snapshot's data: what the report carries of a tally, and its histograms' encoding.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::histogram::{self, HistogramError};
use crate::sampler::ErrorClass;
use crate::tally::{FailureReason, MalformedReply, Tally, Window, Windowing};

/// The name of the histograms' encoding, written in every snapshot.
pub const HISTOGRAM_ENCODING: &str = "hdrhistogram-v2-deflate-base64";

/// A tally as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TallySnapshot {
    /// Always [`HISTOGRAM_ENCODING`].
    pub histogram_encoding: String,
    /// How samples were assigned to windows.
    pub windowing: WindowingSnapshot,
    /// Per version: count and encoded connect and reply histograms (microseconds).
    pub versions: BTreeMap<String, VersionSnapshot>,
    /// Failed samples per error class name.
    pub errors_by_class: BTreeMap<String, u64>,
    /// Malformed replies per version that sent them.
    pub version_errors: BTreeMap<String, u64>,
    /// Counts per consecutive window, oldest first.
    pub windows: Vec<Window>,
    /// The encoded schedule-lag histogram with `--rate`.
    pub lag_us: Option<String>,
    /// The first few distinct malformed replies.
    pub malformed_replies: Vec<MalformedReply>,
    /// The first few distinct failure reasons (TLS, captured values); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_reasons: Vec<FailureReason>,
}

/// How samples were assigned to windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum WindowingSnapshot {
    /// By sample id over a planned total.
    Id {
        /// The planned number of samples.
        total: u64,
    },
    /// By time over a planned duration.
    Time {
        /// The planned duration, seconds.
        duration_s: f64,
    },
}

/// One version's count and encoded histograms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSnapshot {
    /// Samples it answered.
    pub count: u64,
    /// Connect latency histogram, encoded.
    pub connect_us: String,
    /// TLS handshake latency histogram, encoded; absent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_us: Option<String>,
    /// Reply latency histogram, encoded.
    pub reply_us: String,
}

/// Why a snapshot cannot be turned back into a tally; each names the field.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The encoding is not the one this checker writes.
    #[error("its histograms are encoded as {0:?}, not {HISTOGRAM_ENCODING:?}")]
    Encoding(String),
    /// A histogram cannot be decoded within bounds.
    #[error("{field} {source}")]
    Histogram {
        /// The field, e.g. `tally.versions.one.reply_us`.
        field: String,
        /// Why.
        source: HistogramError,
    },
    /// A field disagrees with the rest of the tally, or is not what the checker writes.
    #[error("{field} {why}")]
    Field {
        /// The field, e.g. `tally.versions.one.count`.
        field: String,
        /// What is wrong, a clause after the field's name.
        why: String,
    },
}

/// Encodes `h` in the V2 deflate format, base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail, and the histogram's own counts always encode.
    match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => STANDARD.encode(bytes),
        Err(e) => {
            tracing::error!("cannot encode a latency histogram: {e:?}");
            String::new()
        }
    }
}

/// Decodes a histogram written by [`encode`] (V2 plain or V2 deflate, base64) within
/// bounds, naming `field` when it cannot.
pub fn decode(field: &str, text: &str) -> Result<Histogram<u64>, SnapshotError> {
    histogram::decode(text).map_err(|source| SnapshotError::Histogram {
        field: field.to_owned(),
        source,
    })
}

impl TallySnapshot {
    /// The snapshot of `tally`.
    pub fn of(tally: &Tally) -> Self {
        let by_class = tally.errors_by_class();
        Self {
            histogram_encoding: HISTOGRAM_ENCODING.to_owned(),
            windowing: match tally.windowing() {
                Windowing::ById { total } => WindowingSnapshot::Id { total },
                Windowing::ByTime { duration } => WindowingSnapshot::Time {
                    duration_s: duration.as_secs_f64(),
                },
            },
            versions: tally
                .versions()
                .iter()
                .map(|(name, v)| {
                    let snapshot = VersionSnapshot {
                        count: v.count,
                        connect_us: encode(&v.connect_us),
                        handshake_us: (!v.handshake_us.is_empty()).then(|| encode(&v.handshake_us)),
                        reply_us: encode(&v.reply_us),
                    };
                    (name.clone(), snapshot)
                })
                .collect(),
            errors_by_class: ErrorClass::ALL
                .iter()
                .map(|c| (c.as_str().to_owned(), by_class[c.index()]))
                .collect(),
            version_errors: tally.version_errors().clone(),
            windows: tally.windows().to_vec(),
            lag_us: tally.lag_us().map(encode),
            malformed_replies: tally.malformed().to_vec(),
            failure_reasons: tally.reasons().to_vec(),
        }
    }
}
