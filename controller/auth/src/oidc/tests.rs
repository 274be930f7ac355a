//! Claim and lifetime rules at a fixed clock, with an ES256 key made here.

use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::json;

use super::*;

const NOW: u64 = 1_800_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    key: EcdsaKeyPair,
    verifier: OidcVerifier,
}

async fn fixture(leeway: u64) -> Fixture {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    let point = key.public_key().as_ref();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).expect("write");
    let mut config = OidcConfig::new("https://idp.city", "yunshu", JwksSource::File(path));
    config.leeway_secs = leeway;
    config.groups_claim = "roles".into();
    let verifier = OidcVerifier::new(&config).await.expect("verifier");
    Fixture {
        _dir: dir,
        key,
        verifier,
    }
}

impl Fixture {
    fn sign(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "ec-1"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let sig = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .expect("sign");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    async fn check(&self, claims: Value) -> Result<OidcIdentity, RejectReason> {
        self.verifier.verify_at(&self.sign(&claims), NOW).await
    }
}

fn claims() -> Value {
    json!({"iss": "https://idp.city", "aud": "yunshu", "sub": "alice", "exp": NOW + 600})
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

#[tokio::test]
async fn lifetime_honours_the_leeway_exactly() {
    let f = fixture(60).await;
    assert!(
        f.check(with(claims(), "exp", json!(NOW - 59)))
            .await
            .is_ok()
    );
    assert_eq!(
        f.check(with(claims(), "exp", json!(NOW - 60))).await,
        Err(RejectReason::Expired)
    );
    assert!(
        f.check(with(claims(), "nbf", json!(NOW + 60)))
            .await
            .is_ok()
    );
    assert_eq!(
        f.check(with(claims(), "nbf", json!(NOW + 61))).await,
        Err(RejectReason::NotYetValid)
    );
    let strict = fixture(0).await;
    assert_eq!(
        strict.check(with(claims(), "exp", json!(NOW))).await,
        Err(RejectReason::Expired)
    );
    assert!(
        strict
            .check(with(claims(), "exp", json!(NOW as f64 + 1.5)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn required_claims_and_their_types() {
    let f = fixture(60).await;
    let mut no_exp = claims();
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_eq!(f.check(no_exp).await, Err(RejectReason::MissingClaim));
    assert_eq!(
        f.check(with(claims(), "exp", json!("soon"))).await,
        Err(RejectReason::MissingClaim)
    );
    assert_eq!(
        f.check(with(claims(), "sub", json!(""))).await,
        Err(RejectReason::MissingClaim)
    );
    assert_eq!(
        f.check(with(claims(), "sub", json!(7))).await,
        Err(RejectReason::MissingClaim)
    );
    assert_eq!(
        f.check(with(claims(), "roles", json!([1]))).await,
        Err(RejectReason::MissingClaim)
    );
}

#[tokio::test]
async fn audience_may_be_a_list_and_groups_come_from_the_configured_claim() {
    let f = fixture(60).await;
    let c = with(claims(), "aud", json!(["other", "yunshu"]));
    let c = with(c, "roles", json!(["health-ops", "readers"]));
    let c = with(c, "groups", json!(["ignored"]));
    assert_eq!(
        f.check(c).await,
        Ok(OidcIdentity {
            subject: "alice".into(),
            groups: vec!["health-ops".into(), "readers".into()]
        })
    );
    assert_eq!(
        f.check(with(claims(), "roles", json!("solo")))
            .await
            .map(|i| i.groups),
        Ok(vec!["solo".to_owned()])
    );
    assert_eq!(
        f.check(with(claims(), "aud", json!(["other"]))).await,
        Err(RejectReason::WrongAudience)
    );
    assert_eq!(
        f.check(with(claims(), "iss", json!("https://idp.city/")))
            .await,
        Err(RejectReason::WrongIssuer)
    );
}

#[tokio::test]
async fn structure_is_checked_before_keys() {
    let f = fixture(60).await;
    let good = f.sign(&claims());
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.AA", &format!("{good}.x")] {
        assert_eq!(
            f.verifier.verify_at(bad, NOW).await,
            Err(RejectReason::MalformedCredentials),
            "{bad}"
        );
    }
    let crit =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "ec-1", "crit": ["exp"]}).to_string());
    let (_, rest) = good.split_once('.').expect("dot");
    assert_eq!(
        f.verifier.verify_at(&format!("{crit}.{rest}"), NOW).await,
        Err(RejectReason::MalformedCredentials)
    );
    let long = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(
        f.verifier.verify_at(&long, NOW).await,
        Err(RejectReason::MalformedCredentials)
    );
    assert!(f.verifier.verify_at(&good, NOW).await.is_ok());
}
