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

/// How long an action reserved under a request id (a reboot, a credential
/// issue) may stay under way before a retry takes it over: the server that
/// reserved it is taken to have stopped, so whether it was carried out is
/// unknown, and it is carried out (again). The sweep keeps a reservation
/// under way at least this long whatever the retention, so a retention
/// shorter than this never lets a retry repeat an action still running.
pub const ACTION_STALE_SECS: i64 = 300;

/// The part of every request record the retention sweep reads.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// When the record was written, in seconds since the Unix epoch;
    /// `None` for records written before records carried it.
    #[serde(default)]
    pub written_at: Option<i64>,
    /// An action's record: whether it was carried out, `Some(false)` while
    /// it is under way. `None` for the records of other requests.
    #[serde(default)]
    pub done: Option<bool>,
}
