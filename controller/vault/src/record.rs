//! The sealed record: pure functions from (key ring, name, bytes) to bytes.
//!
//! Envelope encryption: every record gets a fresh random 256-bit data key;
//! the value is sealed with it (AES-256-GCM), and the data key is sealed —
//! "wrapped" — with the primary master key (AES-256-GCM too). The stored
//! record is a small JSON document:
//!
//! ```json
//! {"v":1,"alg":"A256GCM","kid":"k20260101T000000Z-1a2b",
//!  "wrapNonce":"…","wrappedKey":"…","nonce":"…","ciphertext":"…"}
//! ```
//!
//! Both seals carry associated data naming the record (and, for the wrap,
//! the master key id), so a record copied to another name, or relabelled
//! with another key id, fails authentication instead of opening. Rotation
//! re-wraps the data key only: the ciphertext is left as it is.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use yunshu_core::{Error, Result};
use zeroize::Zeroizing;

use crate::keyring::{KEY_LEN, KeyRing, MasterKey};

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const ALG: &str = "A256GCM";
const NONCE_LEN: usize = 12;
const DATA_AAD: &[u8] = b"yunshu-vault/v1/data\0";
const WRAP_AAD: &[u8] = b"yunshu-vault/v1/key\0";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    v: u32,
    alg: String,
    kid: String,
    wrap_nonce: String,
    wrapped_key: String,
    nonce: String,
    ciphertext: String,
}

/// Seals `plaintext` as the record `name` under the ring's primary key.
pub fn seal(ring: &KeyRing, name: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(data_key.as_mut());
    let nonce = random_nonce();
    let ciphertext = cipher(&data_key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &data_aad(name),
            },
        )
        .map_err(|_| Error::internal(format!("failed to seal secret {name}")))?;
    let (kid, master) = ring.primary();
    let (wrap_nonce, wrapped_key) = wrap(master, kid, name, &data_key)?;
    encode(&Record {
        v: FORMAT_VERSION,
        alg: ALG.to_owned(),
        kid: kid.to_owned(),
        wrap_nonce: STANDARD.encode(wrap_nonce),
        wrapped_key: STANDARD.encode(wrapped_key),
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(ciphertext),
    })
}

/// Opens the record `name`: unwraps its data key with the master key it
/// names, then opens the value.
pub fn open(ring: &KeyRing, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let record = decode(name, bytes)?;
    let data_key = unwrap(ring, name, &record)?;
    let nonce = decode_field(name, "nonce", &record.nonce)?;
    let ciphertext = decode_field(name, "ciphertext", &record.ciphertext)?;
    if nonce.len() != NONCE_LEN {
        return Err(malformed(name, "nonce has the wrong length"));
    }
    cipher(&data_key)
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &data_aad(name),
            },
        )
        .map_err(|_| tampered(name))
}

/// The master key id a record is wrapped under.
pub fn key_id(name: &str, bytes: &[u8]) -> Result<String> {
    Ok(decode(name, bytes)?.kid)
}

/// Re-wraps the record's data key under the ring's primary key, leaving the
/// ciphertext untouched; `None` if it is already wrapped under the primary.
pub fn rewrap(ring: &KeyRing, name: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut record = decode(name, bytes)?;
    let (kid, master) = ring.primary();
    if record.kid == kid {
        return Ok(None);
    }
    let data_key = unwrap(ring, name, &record)?;
    let (wrap_nonce, wrapped_key) = wrap(master, kid, name, &data_key)?;
    record.kid = kid.to_owned();
    record.wrap_nonce = STANDARD.encode(wrap_nonce);
    record.wrapped_key = STANDARD.encode(wrapped_key);
    encode(&record).map(Some)
}

fn wrap(
    master: &MasterKey,
    kid: &str,
    name: &str,
    data_key: &[u8; KEY_LEN],
) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let nonce = random_nonce();
    let wrapped = cipher(master.bytes())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: data_key,
                aad: &wrap_aad(kid, name),
            },
        )
        .map_err(|_| Error::internal(format!("failed to wrap the data key of secret {name}")))?;
    Ok((nonce, wrapped))
}

fn unwrap(ring: &KeyRing, name: &str, record: &Record) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let master = ring.get(&record.kid).ok_or_else(|| {
        Error::internal(format!(
            "secret {name} is sealed under master key `{}`, which is not in the key ring (ring holds {:?})",
            record.kid,
            ring.ids().collect::<Vec<_>>()
        ))
    })?;
    let nonce = decode_field(name, "wrapNonce", &record.wrap_nonce)?;
    let wrapped = decode_field(name, "wrappedKey", &record.wrapped_key)?;
    if nonce.len() != NONCE_LEN {
        return Err(malformed(name, "wrapNonce has the wrong length"));
    }
    let raw = Zeroizing::new(
        cipher(master.bytes())
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &wrapped,
                    aad: &wrap_aad(&record.kid, name),
                },
            )
            .map_err(|_| tampered(name))?,
    );
    if raw.len() != KEY_LEN {
        return Err(malformed(name, "the data key has the wrong length"));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&raw);
    Ok(key)
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

fn data_aad(name: &str) -> Vec<u8> {
    [DATA_AAD, name.as_bytes()].concat()
}

fn wrap_aad(kid: &str, name: &str) -> Vec<u8> {
    [WRAP_AAD, kid.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn encode(record: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Internal {
        message: "failed to encode a sealed record".into(),
        source: Some(Box::new(e)),
    })
}

fn decode(name: &str, bytes: &[u8]) -> Result<Record> {
    let record: Record =
        serde_json::from_slice(bytes).map_err(|_| malformed(name, "it is not a sealed record"))?;
    if record.v != FORMAT_VERSION || record.alg != ALG {
        return Err(malformed(
            name,
            &format!(
                "format v{} {} is not supported (this build reads v{FORMAT_VERSION} {ALG})",
                record.v, record.alg
            ),
        ));
    }
    Ok(record)
}

fn decode_field(name: &str, field: &str, value: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(value)
        .map_err(|_| malformed(name, &format!("field `{field}` is not base64")))
}

fn malformed(name: &str, why: &str) -> Error {
    Error::internal(format!("secret {name} cannot be read: {why}"))
}

fn tampered(name: &str) -> Error {
    Error::internal(format!(
        "secret {name} failed authentication: the record was altered, or belongs to another name"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str], primary: &str) -> KeyRing {
        KeyRing::from_keys(
            ids.iter()
                .enumerate()
                .map(|(i, id)| ((*id).to_owned(), vec![u8::try_from(i).unwrap_or(0) + 1; 32])),
            primary,
        )
        .expect("ring")
    }

    #[test]
    fn round_trips_and_each_seal_differs() {
        let r = ring(&["a"], "a");
        let one = seal(&r, "s3/x/health", b"hello").expect("seal");
        let two = seal(&r, "s3/x/health", b"hello").expect("seal");
        assert_ne!(one, two, "fresh data key and nonces per record");
        assert_eq!(open(&r, "s3/x/health", &one).expect("open"), b"hello");
    }

    #[test]
    fn wrong_name_fails() {
        let r = ring(&["a"], "a");
        let sealed = seal(&r, "one", b"v").expect("seal");
        let e = open(&r, "two", &sealed).expect_err("other name");
        assert!(e.to_string().contains("failed authentication"), "{e}");
    }

    #[test]
    fn relabelled_key_id_fails() {
        let r = ring(&["a", "b"], "a");
        let sealed = seal(&r, "n", b"v").expect("seal");
        let text = String::from_utf8(sealed)
            .expect("utf8")
            .replace("\"kid\":\"a\"", "\"kid\":\"b\"");
        assert!(open(&r, "n", text.as_bytes()).is_err());
    }

    #[test]
    fn rewrap_changes_wrap_only() {
        let old = ring(&["a"], "a");
        let sealed = seal(&old, "n", b"v").expect("seal");
        let both = ring(&["a", "b"], "b");
        let re = rewrap(&both, "n", &sealed)
            .expect("rewrap")
            .expect("changed");
        let before: Record = serde_json::from_slice(&sealed).expect("json");
        let after: Record = serde_json::from_slice(&re).expect("json");
        assert_eq!(before.ciphertext, after.ciphertext);
        assert_eq!(before.nonce, after.nonce);
        assert_eq!(after.kid, "b");
        assert_eq!(open(&both, "n", &re).expect("open"), b"v");
        assert!(rewrap(&both, "n", &re).expect("rewrap").is_none());
    }
}
