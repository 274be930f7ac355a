//! The OIDC provider's signing keys: parsing a JWKS and caching it.
//!
//! Only keys that can verify an allowed algorithm are kept: RSA keys of at
//! least 2048 bits for RS256 and P-256 keys for ES256, each with a `kid`
//! and, when the JWK says so, `use: sig` and a matching `alg`. Symmetric
//! (`oct`) keys are never kept, so no JWKS entry can turn a shared secret
//! into a verifier.
//!
//! A token naming an unknown `kid` triggers a refetch, at most once per
//! refresh interval; concurrent requests wait for the same fetch. Keys older
//! than the maximum age are refetched in the background while the old ones
//! keep serving.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::{Alg, fetch::Fetcher};

/// A public key ready to verify one algorithm.
#[derive(Debug)]
pub(crate) enum VerifyingKey {
    /// RSA modulus and exponent, big-endian.
    Rs256 { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed P-256 point.
    Es256 { point: Vec<u8> },
}

impl VerifyingKey {
    pub(crate) fn alg(&self) -> Alg {
        match self {
            Self::Rs256 { .. } => Alg::Rs256,
            Self::Es256 { .. } => Alg::Es256,
        }
    }

    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Rs256 { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            Self::Es256 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

pub(crate) type KeyMap = HashMap<String, Arc<VerifyingKey>>;

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document, skipping (and logging) keys it cannot use.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<KeyMap, String> {
    let set: JwkSet =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = KeyMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::debug!("jwks entry skipped: not a JWK");
            continue;
        };
        let kid = jwk.kid.clone().unwrap_or_default();
        match to_key(jwk) {
            Ok(key) if !kid.is_empty() => {
                keys.insert(kid, Arc::new(key));
            }
            Ok(_) => tracing::debug!("jwks entry skipped: no kid"),
            Err(why) => tracing::debug!(%kid, why, "jwks entry skipped"),
        }
    }
    Ok(keys)
}

fn to_key(jwk: Jwk) -> Result<VerifyingKey, &'static str> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signing key");
    }
    let b64 = |v: Option<String>| -> Result<Vec<u8>, &'static str> {
        URL_SAFE_NO_PAD
            .decode(v.ok_or("missing parameter")?)
            .map_err(|_| "bad base64url")
    };
    let key = match jwk.kty.as_str() {
        "RSA" => {
            let n = strip_zeros(b64(jwk.n)?);
            let e = strip_zeros(b64(jwk.e)?);
            if n.len() < 256 || e.is_empty() {
                return Err("RSA key shorter than 2048 bits");
            }
            VerifyingKey::Rs256 { n, e }
        }
        "EC" if jwk.crv.as_deref() == Some("P-256") => {
            let (x, y) = (b64(jwk.x)?, b64(jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are not 32 bytes");
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            VerifyingKey::Es256 { point }
        }
        _ => return Err("key type or curve not supported"),
    };
    match jwk.alg.as_deref() {
        None => Ok(key),
        Some(alg) if alg == key.alg().name() => Ok(key),
        Some(_) => Err("key's alg is not allowed"),
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

/// Where the keys are read from.
pub(crate) enum Source {
    File(PathBuf),
    Url(Box<Fetcher>),
}

/// What a key lookup found.
pub(crate) enum Lookup {
    Found(Arc<VerifyingKey>),
    Unknown,
    Unavailable,
}

#[derive(Default)]
struct State {
    keys: Arc<KeyMap>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// The cached keys and the rules for refetching them.
pub(crate) struct KeyCache {
    source: Source,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
    background: AtomicBool,
    min_interval: Duration,
    max_age: Duration,
}

impl KeyCache {
    pub(crate) fn new(source: Source, min_interval: Duration, max_age: Duration) -> Self {
        Self {
            source,
            state: RwLock::default(),
            refresh: tokio::sync::Mutex::new(()),
            background: AtomicBool::new(false),
            min_interval,
            max_age,
        }
    }

    /// The key named `kid`, refetching once if it is unknown.
    pub(crate) async fn get(self: &Arc<Self>, kid: &str) -> Lookup {
        let (hit, stale) = {
            let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let old = s.fetched_at.is_none_or(|t| t.elapsed() >= self.max_age);
            let due = s
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.min_interval);
            (s.keys.get(kid).cloned(), old && due)
        };
        if let Some(key) = hit {
            if stale {
                self.refresh_in_background();
            }
            return Lookup::Found(key);
        }
        self.refresh_if_due().await;
        let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match s.keys.get(kid) {
            Some(key) => Lookup::Found(key.clone()),
            None if s.last_failed => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    /// Fetches now unless a fetch happened within the refresh interval;
    /// returns the error of this fetch, if it ran and failed.
    pub(crate) async fn refresh_if_due(&self) -> Option<String> {
        let _single_flight = self.refresh.lock().await;
        let due = {
            let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
            s.last_attempt
                .is_none_or(|t| t.elapsed() >= self.min_interval)
        };
        if !due {
            return None;
        }
        let result = self.fetch().await;
        let mut s = self.state.write().unwrap_or_else(PoisonError::into_inner);
        s.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "jwks loaded");
                s.keys = Arc::new(keys);
                s.fetched_at = s.last_attempt;
                s.last_failed = false;
                None
            }
            Err(error) => {
                tracing::warn!(%error, "jwks fetch failed; keeping the keys we had");
                s.last_failed = true;
                Some(error)
            }
        }
    }

    /// Starts one background refetch unless one is already running.
    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = self.clone();
        rt.spawn(async move {
            cache.refresh_if_due().await;
            cache.background.store(false, Ordering::Release);
        });
    }

    async fn fetch(&self) -> Result<KeyMap, String> {
        let bytes = match &self.source {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("failed to read {}: {e}", path.display()))?,
            Source::Url(fetcher) => fetcher.fetch().await?,
        };
        parse_jwks(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn keeps_only_keys_for_allowed_algorithms() {
        let n = b64(&[0xc5; 256]);
        let short_n = b64(&[0xc5; 128]);
        let xy = b64(&[7; 32]);
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": n, "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "RSA", "kid": "rsa-short", "n": short_n, "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-384", "n": n, "e": "AQAB", "alg": "RS384"},
            {"kty": "RSA", "kid": "rsa-enc", "n": n, "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": xy, "y": xy},
            {"kty": "EC", "kid": "ec-384", "crv": "P-384", "x": xy, "y": xy},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            "not an object"
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).expect("parses");
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ec", "rsa"]);
        assert_eq!(keys["rsa"].alg(), Alg::Rs256);
        assert_eq!(keys["ec"].alg(), Alg::Es256);
        assert!(parse_jwks(b"{}").is_err());
    }

    #[tokio::test]
    async fn unknown_kid_refetches_at_most_once_per_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys": []}"#).expect("write");
        let cache = Arc::new(KeyCache::new(
            Source::File(path.clone()),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        ));
        assert!(matches!(cache.get("ec").await, Lookup::Unknown));
        let xy = b64(&[7; 32]);
        let doc = serde_json::json!({"keys": [{"kty": "EC", "kid": "ec", "crv": "P-256", "x": xy, "y": xy}]});
        std::fs::write(&path, doc.to_string()).expect("write");
        // Within the interval: no refetch, the new key stays unknown.
        assert!(matches!(cache.get("ec").await, Lookup::Unknown));

        let eager = Arc::new(KeyCache::new(
            Source::File(path.clone()),
            Duration::ZERO,
            Duration::from_secs(3600),
        ));
        assert!(matches!(eager.get("ec").await, Lookup::Found(_)));
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(eager.get("other").await, Lookup::Unavailable));
        assert!(
            matches!(eager.get("ec").await, Lookup::Found(_)),
            "old keys keep serving"
        );
    }

    #[tokio::test]
    async fn keys_past_their_age_are_refetched_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        let xy = b64(&[7; 32]);
        let doc = serde_json::json!({"keys": [{"kty": "EC", "kid": "ec", "crv": "P-256", "x": xy, "y": xy}]});
        std::fs::write(&path, doc.to_string()).expect("write");
        let cache = Arc::new(KeyCache::new(
            Source::File(path.clone()),
            Duration::ZERO,
            Duration::ZERO,
        ));
        assert!(cache.refresh_if_due().await.is_none());
        // The provider drops the key; the cached copy serves once more while
        // the background refetch runs, then it is gone.
        std::fs::write(&path, r#"{"keys": []}"#).expect("write");
        assert!(matches!(cache.get("ec").await, Lookup::Found(_)));
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if !cache.background.load(Ordering::Acquire) {
                break;
            }
        }
        let s = cache.state.read().expect("lock");
        assert!(s.keys.is_empty(), "background refetch dropped the key");
    }
}
