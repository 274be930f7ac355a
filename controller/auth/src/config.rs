//! The authentication configuration: which methods are on and how each is
//! checked. Serde structs with defaults, field names in camelCase, unknown
//! fields refused so a typo cannot silently switch a check off.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};

/// The most clock skew an operator may allow for `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Paths served without credentials unless `publicPaths` says otherwise:
/// health checking (for probes) and reflection (the schema, no data).
pub const DEFAULT_PUBLIC_PATHS: [&str; 2] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
];

/// How callers are authenticated. A method whose section is absent is off;
/// API tokens are on unless `apiTokens: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Mutual TLS with client certificates.
    pub mtls: Option<MtlsConfig>,
    /// OIDC bearer JWTs.
    pub oidc: Option<OidcConfig>,
    /// Whether static API tokens (`ysk_…`) are accepted.
    pub api_tokens: bool,
    /// gRPC paths served without authentication, matched as prefixes, e.g.
    /// `/grpc.health.v1.Health/`. Requests to them carry no principal.
    /// Absent: [`DEFAULT_PUBLIC_PATHS`]; `[]` makes every path authenticate.
    pub public_paths: Vec<String>,
    /// How often an open watch checks its caller's credentials again, in
    /// seconds: a revoked token, an expired JWT or a removed identity ends
    /// the watch with UNAUTHENTICATED within this time.
    pub watch_recheck_secs: u64,
}

impl AuthConfig {
    /// Checks every rule; called by [`Authenticator::new`](crate::Authenticator::new).
    pub fn validate(&self) -> Result<()> {
        for path in &self.public_paths {
            let service = path.strip_prefix('/').unwrap_or_default();
            if service.is_empty() || path.chars().any(char::is_whitespace) {
                return Err(AuthError::config(
                    "publicPaths",
                    "each entry must be a gRPC path prefix like /grpc.health.v1.Health/",
                ));
            }
        }
        if self.watch_recheck_secs == 0 {
            return Err(AuthError::config("watchRecheckSecs", "must be at least 1"));
        }
        match &self.oidc {
            Some(oidc) => oidc.validate(),
            None => Ok(()),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mtls: None,
            oidc: None,
            api_tokens: true,
            public_paths: DEFAULT_PUBLIC_PATHS.map(str::to_owned).to_vec(),
            watch_recheck_secs: 30,
        }
    }
}

/// Client-certificate authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MtlsConfig {
    /// PEM bundle of the CAs whose client certificates are trusted. A
    /// certificate from any other CA fails the TLS handshake.
    pub client_ca_file: PathBuf,
    /// Refuse TLS connections without a client certificate. Off by default
    /// so that token users can connect over TLS without one.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// Where the OIDC provider's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum JwksSource {
    /// A JWKS JSON file, reread when a token names an unknown key.
    File(PathBuf),
    /// An `https://` URL (or `http://` to a loopback address only).
    Url(String),
}

/// OIDC bearer-token authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcConfig {
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry (a string or one entry of an array).
    pub audience: String,
    /// The signing keys.
    pub jwks: JwksSource,
    /// PEM bundle trusted for an `https://` JWKS URL; the system roots when
    /// absent.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The claim holding the caller's groups (an array of strings).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Least time between two JWKS fetches, in seconds (at least 1): an
    /// unknown `kid` triggers a fetch at most this often.
    #[serde(default = "default_refresh_interval")]
    pub jwks_refresh_interval_secs: u64,
    /// Keys older than this are refetched in the background, in seconds.
    #[serde(default = "default_max_age")]
    pub jwks_max_age_secs: u64,
    /// Deadline of one JWKS fetch, in seconds.
    #[serde(default = "default_fetch_timeout")]
    pub jwks_fetch_timeout_secs: u64,
}

fn default_leeway() -> u64 {
    60
}
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_refresh_interval() -> u64 {
    30
}
fn default_max_age() -> u64 {
    900
}
fn default_fetch_timeout() -> u64 {
    5
}

impl OidcConfig {
    /// A configuration with every optional field at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            jwks_ca_file: None,
            leeway_secs: default_leeway(),
            groups_claim: default_groups_claim(),
            jwks_refresh_interval_secs: default_refresh_interval(),
            jwks_max_age_secs: default_max_age(),
            jwks_fetch_timeout_secs: default_fetch_timeout(),
        }
    }

    /// The leeway as a duration.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway_secs)
    }

    /// Checks every rule; called by [`Authenticator::new`](crate::Authenticator::new).
    pub fn validate(&self) -> Result<()> {
        if self.issuer.trim().is_empty() {
            return Err(AuthError::config("oidc.issuer", "must not be empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(AuthError::config("oidc.audience", "must not be empty"));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthError::config(
                "oidc.leewaySecs",
                format!("must be at most {MAX_LEEWAY_SECS}"),
            ));
        }
        if self.groups_claim.is_empty() {
            return Err(AuthError::config("oidc.groupsClaim", "must not be empty"));
        }
        // Zero would let every token with a made-up `kid` send a fetch to
        // the identity provider.
        if self.jwks_refresh_interval_secs == 0 {
            return Err(AuthError::config(
                "oidc.jwksRefreshIntervalSecs",
                "must be at least 1",
            ));
        }
        if self.jwks_fetch_timeout_secs == 0 {
            return Err(AuthError::config(
                "oidc.jwksFetchTimeoutSecs",
                "must be at least 1",
            ));
        }
        if let JwksSource::Url(url) = &self.jwks {
            check_jwks_url(url)?;
        }
        Ok(())
    }
}

/// An `https` URL, or `http` to a loopback host: keys fetched in clear text
/// from anywhere else could be replaced on the way.
fn check_jwks_url(url: &str) -> Result<http::Uri> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| AuthError::config("oidc.jwks.url", "is not a valid URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| AuthError::config("oidc.jwks.url", "has no host"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(AuthError::config(
            "oidc.jwks.url",
            "must not carry credentials (user:password@)",
        ));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(AuthError::config(
            "oidc.jwks.url",
            "plain http is allowed only to a loopback address; use https",
        )),
        _ => Err(AuthError::config("oidc.jwks.url", "must be an https URL")),
    }
}

pub(crate) fn jwks_uri(url: &str) -> Result<http::Uri> {
    check_jwks_url(url)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(url: &str) -> OidcConfig {
        OidcConfig::new("https://idp", "yunshu", JwksSource::Url(url.into()))
    }

    #[test]
    fn defaults_fill_in_and_unknown_fields_are_refused() {
        let c: AuthConfig = serde_json::from_str(
            r#"{"oidc": {"issuer": "https://idp", "audience": "yunshu",
                 "jwks": {"file": "/etc/jwks.json"}}}"#,
        )
        .expect("parses");
        let o = c.oidc.expect("oidc");
        assert_eq!(o.leeway_secs, 60);
        assert_eq!(o.groups_claim, "groups");
        assert_eq!(o.jwks_refresh_interval_secs, 30);
        assert!(c.api_tokens);
        // Turning OIDC on leaves health checks and reflection public.
        assert_eq!(c.public_paths, DEFAULT_PUBLIC_PATHS);
        let closed: AuthConfig = serde_json::from_str(r#"{"publicPaths": []}"#).expect("parses");
        assert!(closed.public_paths.is_empty());
        assert!(
            serde_json::from_str::<AuthConfig>(
                r#"{"mtls": {"clientCaFile": "a", "requireClientCerts": true}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn public_paths_must_name_a_service() {
        let mut c = AuthConfig {
            public_paths: vec!["/grpc.health.v1.Health/".into()],
            ..AuthConfig::default()
        };
        c.validate().expect("valid");
        for bad in ["/", "", "grpc.health.v1.Health/", "/a b"] {
            c.public_paths = vec![bad.into()];
            assert!(c.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn leeway_is_capped() {
        let mut o = oidc("https://idp/jwks");
        o.leeway_secs = MAX_LEEWAY_SECS + 1;
        let e = o.validate().expect_err("too large");
        assert!(e.to_string().contains("leewaySecs"), "{e}");
        o.leeway_secs = MAX_LEEWAY_SECS;
        o.validate().expect("at the cap");
    }

    #[test]
    fn jwks_refetches_are_always_rate_limited() {
        let mut o = oidc("https://idp/jwks");
        o.jwks_refresh_interval_secs = 0;
        let e = o.validate().expect_err("no rate limit");
        assert!(e.to_string().contains("jwksRefreshIntervalSecs"), "{e}");
        o.jwks_refresh_interval_secs = 1;
        o.validate().expect("one second");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://idp.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/k",
            "http://[::1]:1/k",
        ] {
            oidc(ok).validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "https://user:secret@idp.example/jwks",
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://idp/jwks",
            "not a url",
        ] {
            assert!(oidc(bad).validate().is_err(), "{bad}");
        }
    }
}
