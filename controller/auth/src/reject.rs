//! Why a request was refused: a small `Copy` reason with a stable label, the
//! gRPC code it answers with, and a fixed message that can hold no secret;
//! and the counters of accepted and refused requests.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

use tonic::{Code, Status};

use crate::principal::AuthMethod;

/// Why a request was refused. The set is fixed, so it is safe as a metric
/// label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No `authorization` header and no client certificate.
    MissingCredentials,
    /// The `authorization` header or the token in it is malformed.
    MalformedCredentials,
    /// The credential's method is switched off on this server.
    MethodDisabled,
    /// The JWT's `alg` is not RS256 or ES256 (`none` and HS* included).
    UnsupportedAlgorithm,
    /// The JWT header has no `kid`.
    MissingKeyId,
    /// No signing key has the JWT's `kid`, even after refetching the JWKS.
    UnknownKeyId,
    /// The JWT's signature does not verify with the key it names.
    BadSignature,
    /// The JWT's `exp` has passed (beyond the leeway).
    Expired,
    /// The JWT's `nbf` has not come yet (beyond the leeway).
    NotYetValid,
    /// The JWT's `iss` is not the configured issuer.
    WrongIssuer,
    /// The JWT's `aud` does not include the configured audience.
    WrongAudience,
    /// The JWT lacks `exp` or `sub`, or a claim has the wrong type.
    MissingClaim,
    /// The signing keys could not be fetched.
    KeysUnavailable,
    /// No API token has that id and secret.
    InvalidApiToken,
    /// The API token was revoked.
    RevokedApiToken,
    /// The client certificate has no single usable subject CN.
    CertificateUnusable,
    /// The identity is valid but belongs to no department (or not to the
    /// one the caller named).
    NoDepartment,
    /// The identity belongs to several departments and the caller named none.
    AmbiguousDepartment,
}

impl RejectReason {
    /// Every reason, in a fixed order.
    pub const ALL: [Self; 18] = [
        Self::MissingCredentials,
        Self::MalformedCredentials,
        Self::MethodDisabled,
        Self::UnsupportedAlgorithm,
        Self::MissingKeyId,
        Self::UnknownKeyId,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingClaim,
        Self::KeysUnavailable,
        Self::InvalidApiToken,
        Self::RevokedApiToken,
        Self::CertificateUnusable,
        Self::NoDepartment,
        Self::AmbiguousDepartment,
    ];

    /// A short, stable, lower-case name for metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::MalformedCredentials => "malformed_credentials",
            Self::MethodDisabled => "method_disabled",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::MissingKeyId => "missing_kid",
            Self::UnknownKeyId => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::KeysUnavailable => "keys_unavailable",
            Self::InvalidApiToken => "invalid_api_token",
            Self::RevokedApiToken => "revoked_api_token",
            Self::CertificateUnusable => "certificate_unusable",
            Self::NoDepartment => "no_department",
            Self::AmbiguousDepartment => "ambiguous_department",
        }
    }

    /// The gRPC code: `UNAUTHENTICATED` for missing or bad credentials,
    /// `PERMISSION_DENIED` for a valid identity without a department,
    /// `UNAVAILABLE` when the keys to check a token cannot be had.
    pub const fn code(self) -> Code {
        match self {
            Self::NoDepartment | Self::AmbiguousDepartment => Code::PermissionDenied,
            Self::KeysUnavailable => Code::Unavailable,
            _ => Code::Unauthenticated,
        }
    }

    /// The message sent to the caller: fixed text, never a credential.
    pub const fn message(self) -> &'static str {
        match self {
            Self::MissingCredentials => {
                "credentials required: a client certificate or an authorization bearer token"
            }
            Self::MalformedCredentials => "malformed authorization header or token",
            Self::MethodDisabled => "this kind of credential is not accepted by this server",
            Self::UnsupportedAlgorithm => "token algorithm not allowed (RS256 or ES256 only)",
            Self::MissingKeyId => "token header has no key id (kid)",
            Self::UnknownKeyId => "token signed with an unknown key id",
            Self::BadSignature => "token signature is invalid",
            Self::Expired => "token has expired",
            Self::NotYetValid => "token is not yet valid",
            Self::WrongIssuer => "token issuer is not trusted",
            Self::WrongAudience => "token audience does not include this service",
            Self::MissingClaim => "token lacks a required claim (exp, sub) or has a malformed one",
            Self::KeysUnavailable => "token signing keys are unavailable; retry later",
            Self::InvalidApiToken => "invalid API token",
            Self::RevokedApiToken => "API token has been revoked",
            Self::CertificateUnusable => "client certificate has no single usable subject CN",
            Self::NoDepartment => "identity is not a member of the department",
            Self::AmbiguousDepartment => {
                "identity belongs to several departments; name one in the x-yunshu-department header"
            }
        }
    }

    /// The gRPC status the caller receives.
    pub fn to_status(self) -> Status {
        Status::new(self.code(), self.message())
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of accepted requests per method and refused requests per
/// reason. Lock-free; shared by every clone of an authenticator.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: [AtomicU64; AuthMethod::ALL.len()],
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

impl Counters {
    pub(crate) fn accept(&self, method: AuthMethod) {
        self.accepted[method.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reject(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AuthStats {
        AuthStats {
            accepted: AuthMethod::ALL
                .map(|m| (m, self.accepted[m.index()].load(Ordering::Relaxed))),
            rejected: RejectReason::ALL
                .map(|r| (r, self.rejected[r.index()].load(Ordering::Relaxed))),
        }
    }
}

/// A point-in-time copy of the counters, every label present (zeros too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthStats {
    /// Accepted requests per method.
    pub accepted: [(AuthMethod, u64); AuthMethod::ALL.len()],
    /// Refused requests per reason.
    pub rejected: [(RejectReason, u64); RejectReason::ALL.len()],
}

impl AuthStats {
    /// How many requests were refused for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()].1
    }

    /// How many requests were accepted by `method`.
    pub fn accepted(&self, method: AuthMethod) -> u64 {
        self.accepted[method.index()].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_labels_are_unique() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
        for (i, m) in AuthMethod::ALL.iter().enumerate() {
            assert_eq!(m.index(), i, "{m}");
        }
        let mut labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RejectReason::ALL.len());
    }

    #[test]
    fn counters_snapshot_counts_per_label() {
        let c = Counters::default();
        c.reject(RejectReason::Expired);
        c.reject(RejectReason::Expired);
        c.accept(AuthMethod::Oidc);
        let s = c.snapshot();
        assert_eq!(s.rejected(RejectReason::Expired), 2);
        assert_eq!(s.rejected(RejectReason::BadSignature), 0);
        assert_eq!(s.accepted(AuthMethod::Oidc), 1);
        assert_eq!(s.accepted(AuthMethod::Mtls), 0);
    }

    #[test]
    fn codes_follow_the_rule() {
        assert_eq!(RejectReason::NoDepartment.code(), Code::PermissionDenied);
        assert_eq!(RejectReason::Expired.code(), Code::Unauthenticated);
        assert_eq!(
            RejectReason::MissingCredentials.code(),
            Code::Unauthenticated
        );
    }
}
