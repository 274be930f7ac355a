//! Static API tokens: `ysk_<id>_<secret>`.
//!
//! The id is public and names the token (in logs, in the Department, in the
//! principal's subject); the secret is 32 random bytes in hex. A Department
//! stores only the hex SHA-256 of the *whole* token string, so a leaked
//! Department object grants nothing. Checking hashes the presented token and
//! compares digests in constant time; a revoked token is refused only after
//! its secret matched, so the "revoked" answer is never given to a guesser.

use std::fmt;

use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
};
use yunshu_core::model::{Identity, Role};

use crate::error::{AuthError, Result};

/// Every API token starts with this.
pub const TOKEN_PREFIX: &str = "ysk_";

/// The longest token accepted; longer input is refused before hashing.
const MAX_TOKEN_LEN: usize = 256;

/// An API token's secret text. `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenSecret(String);

impl ApiTokenSecret {
    /// The token, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokenSecret(<redacted>)")
    }
}

/// A freshly minted API token: show `token` to its owner once, store only
/// `id` and `sha256` (see [`MintedToken::identity`]).
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The public id.
    pub id: String,
    /// Hex SHA-256 of the whole token, for `Identity::ApiToken::sha256`.
    pub sha256: String,
    /// The token itself.
    pub token: ApiTokenSecret,
}

impl MintedToken {
    /// The identity to put into `DepartmentSpec::identities`.
    pub fn identity(&self, role: Role) -> Identity {
        Identity::ApiToken {
            id: self.id.clone(),
            sha256: self.sha256.clone(),
            role,
            revoked: false,
        }
    }
}

/// Mints a token with a random 16-hex-digit id.
pub fn mint_api_token() -> Result<MintedToken> {
    let id = hex(&random::<8>()?);
    mint_api_token_with_id(&id)
}

/// Mints a token with a chosen id: 1–64 ASCII letters, digits or `-`.
pub fn mint_api_token_with_id(id: &str) -> Result<MintedToken> {
    if !valid_id(id) {
        return Err(AuthError::config(
            "apiToken.id",
            "must be 1-64 ASCII letters, digits or '-'",
        ));
    }
    let token = format!("{TOKEN_PREFIX}{id}_{}", hex(&random::<32>()?));
    Ok(MintedToken {
        id: id.to_owned(),
        sha256: hash_api_token(&token),
        token: ApiTokenSecret(token),
    })
}

/// The hex SHA-256 of a whole token, as stored in a Department.
pub fn hash_api_token(token: &str) -> String {
    hex(digest_token(token).as_ref())
}

/// Splits a token into its id, or `None` when it is not well-formed.
pub(crate) fn parse_id(token: &str) -> Option<&str> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (valid_id(id) && !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(id)
}

pub(crate) fn digest_token(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Decodes a stored hex digest; `None` when it is not 64 hex digits.
pub(crate) fn decode_digest(hex_digest: &str) -> Option<[u8; 32]> {
    let bytes = hex_digest.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn valid_id(id: &str) -> bool {
    yunshu_core::model::is_api_token_id(id)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| AuthError::Random)?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_hash_round_trips() {
        let m = mint_api_token().expect("mint");
        let token = m.token.expose();
        assert!(token.starts_with("ysk_"));
        assert_eq!(parse_id(token), Some(m.id.as_str()));
        assert_eq!(hash_api_token(token), m.sha256);
        assert_eq!(decode_digest(&m.sha256), Some(digest_token(token)));
        assert!(!format!("{m:?}").contains(token), "Debug must redact");
        let other = mint_api_token().expect("mint");
        assert_ne!(other.token, m.token);
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        for bad in [
            "",
            "ysk_",
            "ysk_abc",
            "ysk__secret",
            "xsk_abc_def",
            "ysk_a b_c",
            "ysk_id_sec ret",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
        assert_eq!(parse_id(&format!("ysk_id_{}", "a".repeat(300))), None);
        assert_eq!(parse_id("ysk_my-ci_s3cr_et"), Some("my-ci"));
    }

    #[test]
    fn chosen_ids_are_checked() {
        assert!(mint_api_token_with_id("ci-deploy").is_ok());
        assert!(mint_api_token_with_id("bad_id").is_err());
        assert!(mint_api_token_with_id("").is_err());
    }

    #[test]
    fn stored_digests_must_be_64_hex_digits() {
        assert!(decode_digest(&"0".repeat(63)).is_none());
        assert!(decode_digest(&"g".repeat(64)).is_none());
        assert_eq!(decode_digest(&"ff".repeat(32)), Some([0xff; 32]));
    }
}
