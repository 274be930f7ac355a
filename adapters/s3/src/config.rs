//! The adapter's configuration, read from the Foundation's spec and its
//! admin credentials.
//!
//! | source | key | meaning |
//! |---|---|---|
//! | `spec.endpoint` | | S3 endpoint, `http(s)://host:port`; the admin API answers on it too |
//! | `spec.region` | | signing region (default `us-east-1`) |
//! | `spec.settings` | `dialect` | `rgw-admin` (Ceph RGW Admin Ops) or `iam` (IAM query API, SeaweedFS) |
//! | `spec.settings` | `timeout_seconds` | per-call timeout (default 30) |
//! | `spec.settings` | `seaweedfs.weed`, `seaweedfs.master`, `seaweedfs.filer` | optional, `iam` only: a `weed` binary and the cluster's master and filer (`host:port.grpcPort`), used for bucket size quotas and sizes, which SeaweedFS offers through `weed shell` only |
//! | credentials | `access_key`, `secret_key` | the admin identity |

use std::{fmt, path::PathBuf, time::Duration};

use yunshu_core::{Error, Result, adapter::Credentials, model::FoundationSpec};

/// The admin API a server speaks for users, keys and quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Ceph RADOS Gateway's Admin Ops API (`/admin/user`, `/admin/bucket`, …).
    RgwAdmin,
    /// The IAM query API (`CreateUser`, `CreateAccessKey`, `PutUserPolicy`, …)
    /// as SeaweedFS embeds it on its S3 port.
    Iam,
}

impl Dialect {
    /// The setting's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RgwAdmin => "rgw-admin",
            Self::Iam => "iam",
        }
    }

    /// Parses `spec.settings.dialect`.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            Some("rgw-admin") => Ok(Self::RgwAdmin),
            Some("iam") => Ok(Self::Iam),
            Some(other) => Err(Error::invalid(
                "spec.settings.dialect",
                format!("must be `rgw-admin` or `iam`, got `{other}`"),
            )),
            None => Err(Error::invalid(
                "spec.settings.dialect",
                "is required: `rgw-admin` (Ceph RGW) or `iam` (SeaweedFS)",
            )),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is sent to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access key pair; `Debug` shows the access key id only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: Secret,
}

/// How to reach `weed shell` for SeaweedFS's quota and size commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeedShell {
    /// The `weed` binary.
    pub binary: PathBuf,
    /// The master, `host:port.grpcPort`.
    pub master: String,
    /// The filer, `host:port.grpcPort`.
    pub filer: String,
}

/// Everything the adapter needs, validated.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The S3 endpoint without a trailing slash.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// The admin dialect.
    pub dialect: Dialect,
    /// The admin identity.
    pub admin: KeyPair,
    /// The per-call timeout.
    pub timeout: Duration,
    /// `weed shell`, if configured (`iam` only).
    pub weed: Option<WeedShell>,
}

impl S3Config {
    /// Reads and checks the configuration; every error names the field.
    pub fn from_spec(spec: &FoundationSpec, credentials: &Credentials) -> Result<Self> {
        let endpoint = spec.endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            || endpoint.len() <= "https://".len()
        {
            return Err(Error::invalid(
                "spec.endpoint",
                "must be an http:// or https:// URL of the S3 service",
            ));
        }
        let region = spec
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let dialect = Dialect::parse(spec.settings.get("dialect").map(String::as_str))?;
        let admin = KeyPair {
            access_key: credentials.require("access_key")?.to_owned(),
            secret_key: Secret::new(credentials.require("secret_key")?),
        };
        let timeout = match spec.settings.get("timeout_seconds") {
            None => Duration::from_secs(30),
            Some(v) => match v.parse::<u64>() {
                Ok(s) if (1..=600).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(Error::invalid(
                        "spec.settings.timeout_seconds",
                        "must be a whole number of seconds from 1 to 600",
                    ));
                }
            },
        };
        let weed = weed_shell(spec, dialect)?;
        Ok(Self {
            endpoint,
            region,
            dialect,
            admin,
            timeout,
            weed,
        })
    }
}

fn weed_shell(spec: &FoundationSpec, dialect: Dialect) -> Result<Option<WeedShell>> {
    let get = |k: &str| spec.settings.get(k).filter(|v| !v.is_empty());
    let (binary, master, filer) = (
        get("seaweedfs.weed"),
        get("seaweedfs.master"),
        get("seaweedfs.filer"),
    );
    if binary.is_none() && master.is_none() && filer.is_none() {
        return Ok(None);
    }
    if dialect != Dialect::Iam {
        return Err(Error::invalid(
            "spec.settings.seaweedfs.weed",
            "applies to the `iam` dialect (SeaweedFS) only",
        ));
    }
    match (binary, master, filer) {
        (Some(b), Some(m), Some(f)) => Ok(Some(WeedShell {
            binary: PathBuf::from(b),
            master: m.clone(),
            filer: f.clone(),
        })),
        _ => Err(Error::invalid(
            "spec.settings.seaweedfs",
            "`seaweedfs.weed`, `seaweedfs.master` and `seaweedfs.filer` go together: set all three or none",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(settings: &[(&str, &str)]) -> FoundationSpec {
        let settings: BTreeMap<&str, &str> = settings.iter().copied().collect();
        serde_json::from_value(serde_json::json!({
            "adapter": "s3",
            "endpoint": "http://127.0.0.1:9000/",
            "settings": settings,
        }))
        .expect("valid spec")
    }

    fn creds() -> Credentials {
        Credentials(BTreeMap::from([
            ("access_key".to_owned(), "AK".to_owned()),
            ("secret_key".to_owned(), "very-secret".to_owned()),
        ]))
    }

    #[test]
    fn reads_a_valid_spec() {
        let c = S3Config::from_spec(&spec(&[("dialect", "rgw-admin")]), &creds()).expect("valid");
        assert_eq!(c.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.dialect, Dialect::RgwAdmin);
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn dialect_errors_name_the_field() {
        for settings in [&[][..], &[("dialect", "minio")][..]] {
            let e = S3Config::from_spec(&spec(settings), &creds()).expect_err("bad dialect");
            assert!(e.to_string().contains("spec.settings.dialect"), "{e}");
        }
    }

    #[test]
    fn missing_credentials_name_the_key() {
        let e = S3Config::from_spec(&spec(&[("dialect", "iam")]), &Credentials::default())
            .expect_err("no creds");
        assert!(e.to_string().contains("credentials.access_key"), "{e}");
    }

    #[test]
    fn weed_settings_go_together() {
        let e = S3Config::from_spec(
            &spec(&[("dialect", "iam"), ("seaweedfs.weed", "/bin/weed")]),
            &creds(),
        )
        .expect_err("partial");
        assert!(e.to_string().contains("spec.settings.seaweedfs"), "{e}");
        let ok = S3Config::from_spec(
            &spec(&[
                ("dialect", "iam"),
                ("seaweedfs.weed", "/bin/weed"),
                ("seaweedfs.master", "127.0.0.1:1.2"),
                ("seaweedfs.filer", "127.0.0.1:3.4"),
            ]),
            &creds(),
        )
        .expect("complete");
        assert!(ok.weed.is_some());
    }
}
