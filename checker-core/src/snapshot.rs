//! A [`Tally`] as plain JSON data, carried by the JSON report so that reports from many
//! checker processes merge exactly: every latency histogram in HdrHistogram's own V2
//! deflate encoding, base64 in a string.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::sampler::ErrorClass;
use crate::tally::{
    FailureReason, MalformedReply, Tally, TallyParts, VersionTally, Window, Windowing,
};

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

/// Why a snapshot cannot be turned back into a tally.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The encoding is not the one this checker writes.
    #[error("its histograms are encoded as {0:?}, not {HISTOGRAM_ENCODING:?}")]
    Encoding(String),
    /// A histogram is not valid base64 or not a V2 histogram.
    #[error("its {what} histogram cannot be decoded: {why}")]
    Histogram {
        /// Which histogram.
        what: String,
        /// What went wrong.
        why: String,
    },
    /// An error class this checker does not know.
    #[error("it names an unknown error class {0:?}")]
    ErrorClass(String),
    /// A duration that is not a positive finite number of seconds.
    #[error("its window duration {0} is not a positive number of seconds")]
    Duration(f64),
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

/// Decodes a histogram written by [`encode`] (V2 plain or V2 deflate, base64).
pub fn decode(what: &str, text: &str) -> Result<Histogram<u64>, SnapshotError> {
    let bad = |why: String| SnapshotError::Histogram {
        what: what.to_owned(),
        why,
    };
    let bytes = STANDARD.decode(text).map_err(|e| bad(e.to_string()))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| bad(format!("{e:?}")))
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

    /// The tally this snapshot describes.
    pub fn to_tally(&self) -> Result<Tally, SnapshotError> {
        if self.histogram_encoding != HISTOGRAM_ENCODING {
            return Err(SnapshotError::Encoding(self.histogram_encoding.clone()));
        }
        let mut errors = [0; ErrorClass::ALL.len()];
        for (name, n) in &self.errors_by_class {
            let class = ErrorClass::ALL
                .iter()
                .find(|c| c.as_str() == name)
                .ok_or_else(|| SnapshotError::ErrorClass(name.clone()))?;
            errors[class.index()] = *n;
        }
        let mut versions = BTreeMap::new();
        for (name, v) in &self.versions {
            let tally = VersionTally {
                count: v.count,
                connect_us: decode(&format!("{name} connect"), &v.connect_us)?,
                handshake_us: match &v.handshake_us {
                    Some(text) => decode(&format!("{name} handshake"), text)?,
                    None => VersionTally::default().handshake_us,
                },
                reply_us: decode(&format!("{name} reply"), &v.reply_us)?,
            };
            versions.insert(name.clone(), tally);
        }
        let windowing = match self.windowing {
            WindowingSnapshot::Id { total } => Windowing::ById { total },
            WindowingSnapshot::Time { duration_s } => Windowing::ByTime {
                duration: Duration::try_from_secs_f64(duration_s)
                    .map_err(|_| SnapshotError::Duration(duration_s))?,
            },
        };
        let lag_us = match &self.lag_us {
            Some(text) => Some(decode("schedule lag", text)?),
            None => None,
        };
        Ok(Tally::from_parts(TallyParts {
            versions,
            errors,
            windowing,
            windows: self.windows.clone(),
            lag_us,
            malformed: self.malformed_replies.clone(),
            version_errors: self.version_errors.clone(),
            reasons: self.failure_reasons.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Sample;
    use std::time::SystemTime;

    fn sample(id: u64) -> Sample {
        let result = match id % 7 {
            0 => Err(ErrorClass::Reset),
            1 => Err(ErrorClass::MalformedReply),
            2 | 3 => Ok("two".to_owned()),
            _ => Ok("one".to_owned()),
        };
        Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::now(),
            offset: Duration::from_millis(id),
            reply_head: (result == Err(ErrorClass::MalformedReply)).then(|| "two oops\\n".into()),
            connect_us: Some(10 + id * 13 % 5000),
            reply_us: result.is_ok().then_some(100 + id * 7919 % 90_000),
            lag_us: Some(id % 3),
            handshake_us: None,
            reason: None,
            result,
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_json_exactly() {
        let mut tally = Tally::new(Windowing::ById { total: 5000 });
        for id in 0..5000 {
            tally.record(&sample(id));
        }
        let snapshot = TallySnapshot::of(&tally);
        let json = serde_json::to_string(&snapshot).unwrap();
        let back: TallySnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snapshot);
        let again = back.to_tally().unwrap();
        assert_eq!(again.counts(), tally.counts());
        assert_eq!(again.errors_by_class(), tally.errors_by_class());
        assert_eq!(again.windows(), tally.windows());
        assert_eq!(again.version_errors(), tally.version_errors());
        assert_eq!(again.version_errors()["two"], 715);
        assert_eq!(again.malformed(), tally.malformed());
        assert_eq!(again.lag_us(), tally.lag_us());
        for (name, v) in tally.versions() {
            assert_eq!(again.versions()[name].reply_us, v.reply_us);
            assert_eq!(again.versions()[name].connect_us, v.connect_us);
        }
        // Without TLS or reasons the snapshot has no key for them (older readers agree).
        assert!(!json.contains("handshake_us") && !json.contains("failure_reasons"));
    }

    #[test]
    fn handshake_times_and_failure_reasons_round_trip() {
        let mut tally = Tally::new(Windowing::ById { total: 100 });
        for id in 0..100 {
            let mut s = sample(id);
            if s.result.is_ok() {
                s.handshake_us = Some(200 + id);
            } else {
                s.result = Err(ErrorClass::TlsCertificate);
                s.reason = Some(format!("invalid peer certificate: case {}", id % 2));
            }
            tally.record(&s);
        }
        let json = serde_json::to_string(&TallySnapshot::of(&tally)).unwrap();
        let back: TallySnapshot = serde_json::from_str(&json).unwrap();
        let again = back.to_tally().unwrap();
        assert_eq!(again.reasons(), tally.reasons());
        assert_eq!(again.reasons().len(), 2);
        for (name, v) in tally.versions() {
            assert!(!v.handshake_us.is_empty());
            assert_eq!(again.versions()[name].handshake_us, v.handshake_us);
        }
    }

    #[test]
    fn broken_snapshots_are_refused_with_a_reason() {
        let tally = {
            let mut t = Tally::new(Windowing::ByTime {
                duration: Duration::from_secs(1),
            });
            t.record(&sample(2));
            t
        };
        let good = TallySnapshot::of(&tally);
        let mut s = good.clone();
        s.histogram_encoding = "csv".into();
        assert!(s.to_tally().unwrap_err().to_string().contains("csv"));
        let mut s = good.clone();
        s.versions.get_mut("two").unwrap().reply_us = "not base64!".into();
        assert!(s.to_tally().unwrap_err().to_string().contains("two reply"));
        let mut s = good.clone();
        s.errors_by_class.insert("lost".into(), 1);
        assert!(matches!(s.to_tally(), Err(SnapshotError::ErrorClass(_))));
        let mut s = good;
        s.windowing = WindowingSnapshot::Time { duration_s: -1.0 };
        assert!(matches!(s.to_tally(), Err(SnapshotError::Duration(_))));
    }
}
