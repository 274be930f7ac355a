//! OIDC bearer JWTs: signature, algorithm, issuer, audience and lifetime.
//!
//! The checks, in order, each with its own rejection reason:
//!
//! 1. compact JWS form (`header.payload.signature`, base64url), at most 16 KiB;
//! 2. `alg` is `RS256` or `ES256` — `none`, `HS*` and everything else are
//!    refused before any key is looked at, so a public key can never be
//!    used as an HMAC secret; `crit` headers are refused;
//! 3. `kid` is present and names a cached key (refetching the JWKS once if
//!    not) whose type matches `alg`;
//! 4. the signature verifies (ring);
//! 5. `iss` equals the configured issuer, `aud` contains the audience;
//! 6. `exp` is present and not past, `nbf` (if present) not in the future,
//!    both with the configured leeway;
//! 7. `sub` is a non-empty string; groups are read from the configured
//!    claim (an array of strings, or one string).

mod fetch;
mod jwks;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use self::jwks::{KeyCache, Lookup, Source};
use crate::{
    config::{JwksSource, OidcConfig},
    error::{AuthError, Result},
    reject::RejectReason,
};

/// The longest token accepted.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The signature algorithms allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OidcIdentity {
    pub(crate) subject: String,
    pub(crate) groups: Vec<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// Checks bearer JWTs against one issuer's keys.
pub(crate) struct OidcVerifier {
    issuer: String,
    audience: String,
    leeway: u64,
    groups_claim: String,
    keys: Arc<KeyCache>,
}

impl OidcVerifier {
    /// Validates the configuration and loads the keys. A JWKS file must load;
    /// a JWKS URL that cannot be reached yet is retried on first use.
    pub(crate) async fn new(config: &OidcConfig) -> Result<Self> {
        config.validate()?;
        let source = match &config.jwks {
            JwksSource::File(path) => Source::File(path.clone()),
            JwksSource::Url(url) => Source::Url(Box::new(fetch::Fetcher::new(
                url,
                config.jwks_ca_file.as_deref(),
                Duration::from_secs(config.jwks_fetch_timeout_secs),
            )?)),
        };
        let is_file = matches!(source, Source::File(_));
        let keys = Arc::new(KeyCache::new(
            source,
            Duration::from_secs(config.jwks_refresh_interval_secs),
            Duration::from_secs(config.jwks_max_age_secs),
        ));
        if let Some(reason) = keys.refresh_if_due().await
            && is_file
        {
            return Err(AuthError::LoadJwks { reason });
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            groups_claim: config.groups_claim.clone(),
            keys,
        })
    }

    /// Verifies a token at the current time.
    pub(crate) async fn verify(&self, token: &str) -> Result<OidcIdentity, RejectReason> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(token, now).await
    }

    async fn verify_at(&self, token: &str, now: u64) -> Result<OidcIdentity, RejectReason> {
        use RejectReason as R;
        if token.len() > MAX_TOKEN_LEN {
            return Err(R::MalformedCredentials);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::MalformedCredentials);
        };
        let header: Header = decode_json(h)?;
        let alg = Alg::from_name(&header.alg).ok_or(R::UnsupportedAlgorithm)?;
        if header.crit.is_some() {
            return Err(R::MalformedCredentials);
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(R::MissingKeyId)?;
        let key = match self.keys.get(&kid).await {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Err(R::UnknownKeyId),
            Lookup::Unavailable => return Err(R::KeysUnavailable),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| R::MalformedCredentials)?;
        let signed = &token[..h.len() + 1 + p.len()];
        if key.alg() != alg || !key.verify(signed.as_bytes(), &signature) {
            return Err(R::BadSignature);
        }
        let claims: Map<String, Value> = decode_json(p)?;
        self.check_claims(&claims, now)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<OidcIdentity, RejectReason> {
        use RejectReason as R;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(R::WrongIssuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(R::WrongAudience);
        }
        let exp = numeric_date(claims.get("exp"))?.ok_or(R::MissingClaim)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(R::Expired);
        }
        if let Some(nbf) = numeric_date(claims.get("nbf"))?
            && now.saturating_add(self.leeway) < nbf
        {
            return Err(R::NotYetValid);
        }
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(R::MissingClaim),
        };
        let groups = match claims.get(&self.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(g)) => vec![g.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|g| g.as_str().map(str::to_owned).ok_or(R::MissingClaim))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(R::MissingClaim),
        };
        Ok(OidcIdentity { subject, groups })
    }
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Result<T, RejectReason> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| RejectReason::MalformedCredentials)?;
    serde_json::from_slice(&bytes).map_err(|_| RejectReason::MalformedCredentials)
}

/// A NumericDate claim in whole seconds; `None` when absent, an error when
/// it is not a non-negative number.
fn numeric_date(v: Option<&Value>) -> Result<Option<u64>, RejectReason> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(RejectReason::MissingClaim),
        Some(_) => Err(RejectReason::MissingClaim),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
