//! Request records: what a client request id did, kept under
//! [`keys::request`](crate::keys::request) so a retry gets the first answer.
//!
//! A record is kept for a retention period (`--request-retention`, a day by
//! default), then swept: within it, a retry is answered as the first call
//! was; after it, the id is forgotten and a retry is a new request (a
//! create finds its name taken, ALREADY_EXISTS, or makes a new object if the
//! first was deleted; a delete finds nothing, NOT_FOUND, or deletes an
//! object made again under the name).
//! Every kind of record carries [`Written::written_at`], which is all the
//! sweep reads.

use serde::Deserialize;

/// Seconds since the Unix epoch, the unit of [`Written::written_at`].
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The part of every request record the retention sweep reads.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// When the record was written, in seconds since the Unix epoch;
    /// `None` for records written before records carried it.
    #[serde(default)]
    pub written_at: Option<i64>,
}
