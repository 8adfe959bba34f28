//! The reusable buffers of one sampling worker.

use bytes::BytesMut;

/// Reusable buffers of one worker, so that a sample allocates almost nothing.
#[derive(Debug, Default)]
pub struct ProbeBuffers {
    pub(crate) probe: BytesMut,
    pub(crate) reply: Vec<u8>,
    pub(crate) timestamp: String,
    /// A line probe's capture slots, made on its first sample.
    pub(crate) locs: Option<regex::bytes::CaptureLocations>,
}
