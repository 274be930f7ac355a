//! Test JWTs: an RSA key (made once per test binary: RSA key generation is
//! slow in debug builds) and EC keys, their JWKS, and tokens signed right,
//! wrong, or not at all.

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    hmac,
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair},
};
use rsa::{
    pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://sso.city.example/realms/gov";
pub const AUDIENCE: &str = "yunshu";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims that pass every check, for `sub`.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600})
}

/// `claims` with one field replaced.
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// The shared RSA key: ring key pair for signing, public PEM and JWK.
pub struct RsaKey {
    pub pair: RsaKeyPair,
    pub public_pem: String,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

pub fn rsa_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let private =
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa keygen");
        let der = private.to_pkcs8_der().expect("pkcs8");
        let public = private.to_public_key();
        RsaKey {
            pair: RsaKeyPair::from_pkcs8(der.as_bytes()).expect("ring rsa"),
            public_pem: public.to_public_key_pem(LineEnding::LF).expect("pem"),
            n: public.n().to_bytes_be(),
            e: public.e().to_bytes_be(),
        }
    })
}

pub fn ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("ec keygen");
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .expect("ec key")
}

pub fn rsa_jwk(kid: &str) -> Value {
    let k = rsa_key();
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
           "n": URL_SAFE_NO_PAD.encode(&k.n), "e": URL_SAFE_NO_PAD.encode(&k.e)})
}

pub fn ec_jwk(kid: &str, key: &EcdsaKeyPair) -> Value {
    let p = key.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "kid": kid,
           "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
}

pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn finish(input: String, sig: &[u8]) -> String {
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub fn rs256(kid: &str, claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims);
    let k = rsa_key();
    let mut sig = vec![0; k.pair.public().modulus_len()];
    k.pair
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .expect("rsa sign");
    finish(input, &sig)
}

pub fn es256(kid: &str, key: &EcdsaKeyPair, claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "ES256", "kid": kid}), claims);
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("ec sign");
    finish(input, sig.as_ref())
}

/// HS256 with `secret` as the HMAC key: the key-confusion attack when the
/// secret is the RSA public key PEM.
pub fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), claims);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    finish(input, tag.as_ref())
}

/// An unsigned token (`alg: none`, empty signature).
pub fn unsigned(kid: &str, claims: &Value) -> String {
    format!(
        "{}.",
        signing_input(&json!({"alg": "none", "kid": kid}), claims)
    )
}

/// A token signed with a header of our choosing (e.g. without `kid`).
pub fn es256_with_header(header: Value, key: &EcdsaKeyPair, claims: &Value) -> String {
    let input = signing_input(&header, claims);
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("ec sign");
    finish(input, sig.as_ref())
}
