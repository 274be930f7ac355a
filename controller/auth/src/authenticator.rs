//! The authenticator: picks the credential a request carries, checks it,
//! and maps it through the [`IdentityIndex`] to a [`Principal`].
//!
//! Which credential counts:
//!
//! 1. An `authorization: Bearer …` header, when present, decides alone: a
//!    token starting `ysk_` is an API token, anything else an OIDC JWT. A
//!    bad bearer token is refused even if the connection also has a valid
//!    client certificate, so a mistake never silently falls back.
//! 2. Otherwise the connection's verified client certificate (mTLS).
//! 3. Otherwise the request is refused as `missing_credentials`.
//!
//! The optional `x-yunshu-department` header names the department to act
//! for when an identity belongs to several (see [`crate::index`]).

use std::sync::Arc;

use http::{Extensions, HeaderMap, header::AUTHORIZATION};

use crate::{
    config::AuthConfig,
    error::Result,
    index::{IdentityIndex, Membership},
    layer::AuthLayer,
    mtls,
    oidc::OidcVerifier,
    principal::{AuthMethod, Principal},
    reject::{AuthStats, Counters, RejectReason},
    token::TOKEN_PREFIX,
};

/// The header naming the department a caller acts for.
pub const DEPARTMENT_HEADER: &str = "x-yunshu-department";

/// Checks credentials and counts the outcomes. Cheap to clone; clones share
/// the index, the key cache and the counters.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    index: IdentityIndex,
    mtls: bool,
    api_tokens: bool,
    oidc: Option<OidcVerifier>,
    public_paths: Vec<String>,
    watch_recheck: std::time::Duration,
    counters: Counters,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mtls", &self.inner.mtls)
            .field("oidc", &self.inner.oidc.is_some())
            .field("api_tokens", &self.inner.api_tokens)
            .field("public_paths", &self.inner.public_paths)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Validates `config`, loads the OIDC keys if OIDC is on, and serves
    /// identities from `index` (keep a clone of it to update departments).
    pub async fn new(config: &AuthConfig, index: IdentityIndex) -> Result<Self> {
        config.validate()?;
        let oidc = match &config.oidc {
            Some(oidc) => Some(OidcVerifier::new(oidc).await?),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                mtls: config.mtls.is_some(),
                api_tokens: config.api_tokens,
                oidc,
                public_paths: config.public_paths.clone(),
                watch_recheck: std::time::Duration::from_secs(config.watch_recheck_secs),
                counters: Counters::default(),
            }),
        })
    }

    /// The tower layer that authenticates every request with this
    /// authenticator.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }

    /// The identity index this authenticator reads.
    pub fn index(&self) -> &IdentityIndex {
        &self.inner.index
    }

    /// The counters of accepted and refused requests so far.
    pub fn stats(&self) -> AuthStats {
        self.inner.counters.snapshot()
    }

    /// How often an open watch checks its caller's credentials again.
    pub fn watch_recheck(&self) -> std::time::Duration {
        self.inner.watch_recheck
    }

    /// Whether requests to `path` are served without authentication.
    pub fn is_public(&self, path: &str) -> bool {
        self.inner
            .public_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }

    /// Authenticates one request from its headers and extensions, and
    /// counts the outcome.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Principal, RejectReason> {
        let outcome = self.check(headers, extensions).await;
        match &outcome {
            Ok(p) => self.inner.counters.accept(p.method),
            Err(r) => self.inner.counters.reject(*r),
        }
        outcome
    }

    /// Checks an open watch's credentials again. Not counted as a request
    /// when they still hold (a watch is one request however long it stays
    /// open); a refusal, which ends the watch, is counted by its reason.
    pub async fn reauthenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Principal, RejectReason> {
        let outcome = self.check(headers, extensions).await;
        if let Err(r) = &outcome {
            self.inner.counters.reject(*r);
        }
        outcome
    }

    async fn check(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Principal, RejectReason> {
        let requested = match headers.get(DEPARTMENT_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| RejectReason::MalformedCredentials)?),
        };
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = bearer(value)?;
            return if token.starts_with(TOKEN_PREFIX) {
                self.api_token(token, requested)
            } else {
                self.oidc(token, requested).await
            };
        }
        match mtls::peer_certificates(extensions) {
            Some(chain) if self.inner.mtls => {
                let leaf = chain.first().ok_or(RejectReason::CertificateUnusable)?;
                let cn = mtls::peer_common_name(leaf)?;
                let m = self.inner.index.resolve_certificate(&cn, requested)?;
                Ok(principal(m, cn, AuthMethod::Mtls))
            }
            _ => Err(RejectReason::MissingCredentials),
        }
    }

    fn api_token(&self, token: &str, requested: Option<&str>) -> Result<Principal, RejectReason> {
        if !self.inner.api_tokens {
            return Err(RejectReason::MethodDisabled);
        }
        let m = self.inner.index.resolve_api_token(token, requested)?;
        let id = crate::token::parse_id(token).unwrap_or_default().to_owned();
        Ok(principal(m, id, AuthMethod::ApiToken))
    }

    async fn oidc(&self, token: &str, requested: Option<&str>) -> Result<Principal, RejectReason> {
        let verifier = self
            .inner
            .oidc
            .as_ref()
            .ok_or(RejectReason::MethodDisabled)?;
        let identity = verifier.verify(token).await?;
        let m = self
            .inner
            .index
            .resolve_oidc(&identity.subject, &identity.groups, requested)?;
        Ok(principal(m, identity.subject, AuthMethod::Oidc))
    }
}

fn principal(m: Membership, subject: String, method: AuthMethod) -> Principal {
    Principal {
        department: m.department,
        subject,
        role: m.role,
        method,
    }
}

/// The token of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &http::HeaderValue) -> Result<&str, RejectReason> {
    let value = value
        .to_str()
        .map_err(|_| RejectReason::MalformedCredentials)?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(RejectReason::MalformedCredentials)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(RejectReason::MalformedCredentials);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(&HeaderValue::from_static("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&HeaderValue::from_static("bearer  abc ")), Ok("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer  ", "abc"] {
            assert_eq!(
                bearer(&HeaderValue::from_static(bad)),
                Err(RejectReason::MalformedCredentials),
                "{bad}"
            );
        }
    }
}
