//! Issued and revoked bucket credentials.
//!
//! Issued credentials are the one place a secret reaches the terminal, so
//! their shape is fixed for scripts and deliberate for people:
//! - JSON/YAML is exactly `{"bucket", "accessKeyId", "secretAccessKey",
//!   "expireTime", "endpoints"}` — camelCase, as S3 tooling spells them,
//!   unlike the snake_case resource views — where `bucket` is the name on
//!   the object store (the bucket's `status.cloud_id`), the name an S3
//!   client needs, and `expireTime` is RFC 3339;
//! - the table prints the secret once, last, and the command warns on
//!   stderr that it cannot be shown again;
//! - `Debug` redacts the secret, so no log or panic message carries it.

use std::{
    fmt,
    io::{self, Write},
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use yunshu_proto::api::v1 as pb;

use super::{rfc3339, rfc3339_secs, time};
use crate::{
    table::{Table, list},
    units::format_age,
};

/// Issued credentials as JSON/YAML.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCredentialsView {
    /// The bucket's name on the object store (`status.cloud_id`); `null`
    /// when the server reported none.
    pub bucket: Option<String>,
    /// The S3 access key id; also names the credentials for revocation.
    pub access_key_id: String,
    /// The S3 secret access key, shown only here.
    pub secret_access_key: String,
    /// RFC 3339 time the credentials stop working; `null` if the server
    /// gave none.
    pub expire_time: Option<String>,
    /// The S3 endpoints to use them with.
    pub endpoints: Vec<String>,
}

impl fmt::Debug for IssuedCredentialsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentialsView")
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("expire_time", &self.expire_time)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl IssuedCredentialsView {
    /// The view of an answer for the bucket whose store name is `cloud_id`.
    pub fn new(cloud_id: &str, r: &pb::IssueBucketCredentialsResponse) -> Self {
        Self {
            bucket: (!cloud_id.is_empty()).then(|| cloud_id.to_owned()),
            access_key_id: r.access_key_id.clone(),
            secret_access_key: r.secret_access_key.clone(),
            expire_time: rfc3339(r.expire_time.as_ref()),
            endpoints: r.endpoints.clone(),
        }
    }
}

/// The warning printed (on stderr) with every issued secret.
pub const SECRET_SHOWN_ONCE: &str = "warning: the secret access key is shown only once; \
     store it now, it cannot be retrieved again";

/// Writes issued credentials for `name` (the bucket's short name), the
/// secret last.
pub fn render_issued(
    name: &str,
    r: &pb::IssueBucketCredentialsResponse,
    view: &IssuedCredentialsView,
    now: DateTime<Utc>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut t = Table::headless();
    t.row(["Bucket:", name]);
    t.row([
        "S3 bucket:".to_owned(),
        view.bucket.clone().unwrap_or_default(),
    ]);
    t.row(["Access key id:", view.access_key_id.as_str()]);
    t.row(["Expires:".to_owned(), expiry(r.expire_time.as_ref(), now)]);
    t.row(["Endpoints:".to_owned(), list(&view.endpoints)]);
    t.row(["Secret access key:", view.secret_access_key.as_str()]);
    t.render(w)
}

/// `2026-05-01T09:30:00Z (in 59m)`; empty when unknown.
pub fn expiry(ts: Option<&prost_types::Timestamp>, now: DateTime<Utc>) -> String {
    let (Some(at), Some(t)) = (rfc3339_secs(ts), time(ts)) else {
        return String::new();
    };
    match (t - now).to_std() {
        Ok(left) => format!("{at} (in {})", format_age(left)),
        Err(_) => format!("{at} (expired)"),
    }
}

/// Revoked credentials as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedCredentialsView {
    /// The bucket's resource name, `departments/{d}/buckets/{b}`.
    pub name: String,
    /// The access key id revoked.
    pub access_key_id: String,
    /// Always `true`: revoking revoked or expired credentials succeeds too.
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures::ts;

    fn issued() -> pb::IssueBucketCredentialsResponse {
        pb::IssueBucketCredentialsResponse {
            access_key_id: "YSK4HEALTHSCANS0001".into(),
            secret_access_key: "s3cr3t/Key+material".into(),
            expire_time: ts(1_003_600),
            endpoints: vec!["http://127.0.0.1:8333".into()],
        }
    }

    #[test]
    fn json_has_exactly_the_keys_scripts_read() {
        let view = IssuedCredentialsView::new("yunshu-health-scans", &issued());
        let v = serde_json::to_value(&view).expect("json");
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "accessKeyId",
                "bucket",
                "endpoints",
                "expireTime",
                "secretAccessKey"
            ]
        );
        assert_eq!(v["bucket"], "yunshu-health-scans");
        assert_eq!(v["accessKeyId"], "YSK4HEALTHSCANS0001");
        assert_eq!(v["secretAccessKey"], "s3cr3t/Key+material");
        assert_eq!(v["expireTime"], "1970-01-12T14:46:40Z");
        assert_eq!(v["endpoints"][0], "http://127.0.0.1:8333");
        let unnamed =
            serde_json::to_value(IssuedCredentialsView::new("", &issued())).expect("json");
        assert_eq!(unnamed["bucket"], serde_json::Value::Null);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let view = IssuedCredentialsView::new("b", &issued());
        let debug = format!("{view:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn table_shows_key_expiry_endpoints_and_the_secret_last() {
        let r = issued();
        let view = IssuedCredentialsView::new("yunshu-health-scans", &r);
        let now = time(ts(1_000_000).as_ref()).expect("valid");
        let mut out = Vec::new();
        render_issued("scans", &r, &view, now, &mut out).expect("renders");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "Bucket:              scans\n\
             S3 bucket:           yunshu-health-scans\n\
             Access key id:       YSK4HEALTHSCANS0001\n\
             Expires:             1970-01-12T14:46:40Z (in 1h)\n\
             Endpoints:           http://127.0.0.1:8333\n\
             Secret access key:   s3cr3t/Key+material\n"
        );
    }

    #[test]
    fn expiry_in_the_past_says_so() {
        let now = time(ts(1_000_000).as_ref()).expect("valid");
        assert_eq!(
            expiry(ts(999_000).as_ref(), now),
            "1970-01-12T13:30:00Z (expired)"
        );
        assert_eq!(expiry(None, now), "");
    }
}
