//! Every rejection case, driven through the public layer in front of a
//! recording service: the gRPC code and message the caller would get, that
//! the message holds no part of the credential, that the wrapped service
//! never ran, and that the refusal was counted under its reason.

mod common;

use std::{
    future::poll_fn,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use common::{department, group_identity, jwt, subject_identity};
use serde_json::json;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;
use yunshu_auth::{
    AuthConfig, AuthMethod, Authenticator, IdentityIndex, JwksSource, OidcConfig, Principal,
    RejectReason, mint_api_token_with_id,
};
use yunshu_core::model::{Identity, Role};

/// The wrapped service: records the principal of each request it serves.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Option<Principal>>>>);

impl Service<http::Request<()>> for Recorder {
    type Response = http::Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        let p = req.extensions().get::<Principal>().cloned();
        self.0.lock().expect("lock").push(p);
        std::future::ready(Ok(http::Response::new("served".to_owned())))
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    auth: Authenticator,
    index: IdentityIndex,
    ec: ring::signature::EcdsaKeyPair,
}

impl Harness {
    async fn new(config: impl FnOnce(&mut AuthConfig)) -> Self {
        let ec = jwt::ec_key();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        std::fs::write(
            &path,
            jwt::jwks(&[jwt::rsa_jwk("rsa-1"), jwt::ec_jwk("ec-1", &ec)]),
        )
        .expect("write jwks");
        let mut cfg = AuthConfig {
            oidc: Some(OidcConfig::new(
                jwt::ISSUER,
                jwt::AUDIENCE,
                JwksSource::File(path),
            )),
            ..AuthConfig::default()
        };
        config(&mut cfg);
        let index = IdentityIndex::from_departments(&[
            department(
                "health",
                vec![
                    subject_identity("alice", Role::Operator),
                    group_identity("health-viewers", Role::Viewer),
                ],
            ),
            department("water", vec![group_identity("city-ops", Role::Admin)]),
            department("transport", vec![group_identity("city-ops", Role::Viewer)]),
        ]);
        let auth = Authenticator::new(&cfg, index.clone())
            .await
            .expect("authenticator");
        Self {
            _dir: dir,
            auth,
            index,
            ec,
        }
    }

    /// Sends a request with these headers; returns the response and what
    /// the wrapped service saw.
    async fn send(
        &self,
        headers: &[(&str, &str)],
    ) -> (http::Response<String>, Vec<Option<Principal>>) {
        let recorder = Recorder::default();
        let mut svc = self.auth.layer().layer(recorder.clone());
        let mut req = http::Request::builder().uri("/yunshu.api.v1.Instances/List");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        poll_fn(|cx| svc.poll_ready(cx)).await.expect("ready");
        let resp = svc
            .call(req.body(()).expect("request"))
            .await
            .expect("infallible");
        let seen = recorder.0.lock().expect("lock").clone();
        (resp, seen)
    }

    async fn bearer(&self, token: &str) -> (http::Response<String>, Vec<Option<Principal>>) {
        self.send(&[("authorization", &format!("Bearer {token}"))])
            .await
    }

    /// Asserts the request was refused for `reason` with `code`, that the
    /// service never ran, that no credential text leaked, and the count.
    async fn assert_refused(&self, token: Option<&str>, reason: RejectReason, code: Code) {
        let before = self.auth.stats().rejected(reason);
        let (resp, seen) = match token {
            Some(t) => self.bearer(t).await,
            None => self.send(&[]).await,
        };
        assert!(
            seen.is_empty(),
            "{reason}: the wrapped service must not run"
        );
        let status = tonic::Status::from_header_map(resp.headers()).expect("grpc status");
        assert_eq!(status.code(), code, "{reason}: {status:?}");
        assert_eq!(status.message(), reason.message());
        if let Some(t) = token {
            for part in t.split(['.', '_']).filter(|p| p.len() >= 8) {
                assert!(
                    !status.message().contains(part),
                    "{reason}: message leaks the token"
                );
                let headers = format!("{:?}", resp.headers());
                assert!(!headers.contains(part), "{reason}: headers leak the token");
            }
        }
        assert_eq!(
            self.auth.stats().rejected(reason),
            before + 1,
            "{reason} counted"
        );
    }
}

#[tokio::test]
async fn valid_tokens_reach_the_service_with_a_principal() {
    let h = Harness::new(|_| {}).await;
    let (resp, seen) = h.bearer(&jwt::rs256("rsa-1", &jwt::claims("alice"))).await;
    assert_eq!(resp.body(), "served");
    let expected = Principal {
        department: "health".into(),
        subject: "alice".into(),
        role: Role::Operator,
        method: AuthMethod::Oidc,
    };
    assert_eq!(seen, vec![Some(expected)]);

    let claims = jwt::with(jwt::claims("bob"), "groups", json!(["health-viewers"]));
    let (_, seen) = h.bearer(&jwt::es256("ec-1", &h.ec, &claims)).await;
    assert_eq!(
        seen[0].as_ref().map(|p| (p.department.as_str(), p.role)),
        Some(("health", Role::Viewer))
    );
    assert_eq!(h.auth.stats().accepted(AuthMethod::Oidc), 2);
}

#[tokio::test]
async fn expired_token() {
    let h = Harness::new(|_| {}).await;
    let claims = jwt::with(jwt::claims("alice"), "exp", json!(jwt::now() - 3600));
    h.assert_refused(
        Some(&jwt::rs256("rsa-1", &claims)),
        RejectReason::Expired,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn token_not_yet_valid() {
    let h = Harness::new(|_| {}).await;
    let claims = jwt::with(jwt::claims("alice"), "nbf", json!(jwt::now() + 3600));
    h.assert_refused(
        Some(&jwt::rs256("rsa-1", &claims)),
        RejectReason::NotYetValid,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn wrong_issuer() {
    let h = Harness::new(|_| {}).await;
    let claims = jwt::with(jwt::claims("alice"), "iss", json!("https://evil.example"));
    h.assert_refused(
        Some(&jwt::rs256("rsa-1", &claims)),
        RejectReason::WrongIssuer,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn wrong_audience() {
    let h = Harness::new(|_| {}).await;
    let claims = jwt::with(jwt::claims("alice"), "aud", json!(["another-service"]));
    h.assert_refused(
        Some(&jwt::rs256("rsa-1", &claims)),
        RejectReason::WrongAudience,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn alg_none() {
    let h = Harness::new(|_| {}).await;
    let token = jwt::unsigned("rsa-1", &jwt::claims("alice"));
    h.assert_refused(
        Some(&token),
        RejectReason::UnsupportedAlgorithm,
        Code::Unauthenticated,
    )
    .await;
    // Also with a real signature glued on.
    let signed = jwt::rs256("rsa-1", &jwt::claims("alice"));
    let sig = signed.rsplit('.').next().expect("sig");
    h.assert_refused(
        Some(&format!("{token}{sig}")),
        RejectReason::UnsupportedAlgorithm,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn hs256_with_the_rsa_public_key_as_secret() {
    let h = Harness::new(|_| {}).await;
    let pem = &jwt::rsa_key().public_pem;
    for secret in [pem.as_bytes(), pem.trim_end().as_bytes()] {
        let token = jwt::hs256("rsa-1", secret, &jwt::claims("alice"));
        h.assert_refused(
            Some(&token),
            RejectReason::UnsupportedAlgorithm,
            Code::Unauthenticated,
        )
        .await;
    }
}

#[tokio::test]
async fn forged_signature() {
    let h = Harness::new(|_| {}).await;
    // A valid token for bob with alice's claims swapped in.
    let real = jwt::rs256("rsa-1", &jwt::claims("bob"));
    let forged_claims = jwt::rs256("rsa-1", &jwt::claims("alice"));
    let mut parts: Vec<&str> = real.split('.').collect();
    parts[1] = forged_claims.split('.').nth(1).expect("payload");
    h.assert_refused(
        Some(&parts.join(".")),
        RejectReason::BadSignature,
        Code::Unauthenticated,
    )
    .await;
    // Signed by another EC key that claims the trusted kid.
    let impostor = jwt::ec_key();
    let token = jwt::es256("ec-1", &impostor, &jwt::claims("alice"));
    h.assert_refused(
        Some(&token),
        RejectReason::BadSignature,
        Code::Unauthenticated,
    )
    .await;
    // An ES256 token naming the RSA key.
    let token = jwt::es256("rsa-1", &h.ec, &jwt::claims("alice"));
    h.assert_refused(
        Some(&token),
        RejectReason::BadSignature,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn unknown_and_missing_kid() {
    let h = Harness::new(|_| {}).await;
    let token = jwt::es256("rotated-away", &h.ec, &jwt::claims("alice"));
    h.assert_refused(
        Some(&token),
        RejectReason::UnknownKeyId,
        Code::Unauthenticated,
    )
    .await;
    let token = jwt::es256_with_header(json!({"alg": "ES256"}), &h.ec, &jwt::claims("alice"));
    h.assert_refused(
        Some(&token),
        RejectReason::MissingKeyId,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn api_tokens_valid_revoked_and_wrong() {
    let h = Harness::new(|_| {}).await;
    let good = mint_api_token_with_id("ci-deploy").expect("mint");
    let old = mint_api_token_with_id("old-ci").expect("mint");
    let mut revoked = old.identity(Role::Admin);
    if let Identity::ApiToken { revoked, .. } = &mut revoked {
        *revoked = true;
    }
    h.index.upsert(&department(
        "health",
        vec![good.identity(Role::Operator), revoked],
    ));

    let (_, seen) = h.bearer(good.token.expose()).await;
    let p = seen[0].clone().expect("principal");
    assert_eq!(
        (p.department.as_str(), p.subject.as_str(), p.role, p.method),
        ("health", "ci-deploy", Role::Operator, AuthMethod::ApiToken)
    );

    h.assert_refused(
        Some(old.token.expose()),
        RejectReason::RevokedApiToken,
        Code::Unauthenticated,
    )
    .await;
    let wrong = format!("ysk_ci-deploy_{}", "0".repeat(64));
    h.assert_refused(
        Some(&wrong),
        RejectReason::InvalidApiToken,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn missing_and_malformed_credentials() {
    let h = Harness::new(|_| {}).await;
    h.assert_refused(
        None,
        RejectReason::MissingCredentials,
        Code::Unauthenticated,
    )
    .await;
    let (resp, seen) = h
        .send(&[("authorization", "Basic c2VjcmV0LXBhc3N3b3Jk")])
        .await;
    assert!(seen.is_empty());
    let status = tonic::Status::from_header_map(resp.headers()).expect("status");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("c2VjcmV0"));
    h.assert_refused(
        Some("not-a-jwt-at-all"),
        RejectReason::MalformedCredentials,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn valid_identity_in_no_department_is_permission_denied() {
    let h = Harness::new(|_| {}).await;
    let token = jwt::rs256("rsa-1", &jwt::claims("mallory"));
    h.assert_refused(
        Some(&token),
        RejectReason::NoDepartment,
        Code::PermissionDenied,
    )
    .await;
    let ops = jwt::with(jwt::claims("olga"), "groups", json!(["city-ops"]));
    let token = jwt::rs256("rsa-1", &ops);
    h.assert_refused(
        Some(&token),
        RejectReason::AmbiguousDepartment,
        Code::PermissionDenied,
    )
    .await;
    let (_, seen) = h
        .send(&[
            ("authorization", &format!("Bearer {token}")),
            ("x-yunshu-department", "water"),
        ])
        .await;
    assert_eq!(
        seen[0].as_ref().map(|p| (p.department.as_str(), p.role)),
        Some(("water", Role::Admin))
    );
}

#[tokio::test]
async fn switched_off_methods_are_refused() {
    let h = Harness::new(|c| {
        c.oidc = None;
        c.api_tokens = false;
    })
    .await;
    let token = jwt::rs256("rsa-1", &jwt::claims("alice"));
    h.assert_refused(
        Some(&token),
        RejectReason::MethodDisabled,
        Code::Unauthenticated,
    )
    .await;
    let api = mint_api_token_with_id("ci").expect("mint");
    h.assert_refused(
        Some(api.token.expose()),
        RejectReason::MethodDisabled,
        Code::Unauthenticated,
    )
    .await;
}

#[tokio::test]
async fn public_paths_pass_without_a_principal() {
    let h = Harness::new(|c| c.public_paths = vec!["/grpc.health.v1.Health/".into()]).await;
    let recorder = Recorder::default();
    let mut svc = h.auth.layer().layer(recorder.clone());
    let req = http::Request::get("/grpc.health.v1.Health/Check")
        .body(())
        .expect("req");
    let resp = svc.call(req).await.expect("infallible");
    assert_eq!(resp.body(), "served");
    assert_eq!(*recorder.0.lock().expect("lock"), vec![None]);
}

#[tokio::test]
async fn rechecks_of_an_open_watch_are_not_counted_as_requests() {
    let h = Harness::new(|_| {}).await;
    let mut headers = http::HeaderMap::new();
    let token = jwt::rs256("rsa-1", &jwt::claims("alice"));
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let extensions = http::Extensions::new();
    for _ in 0..3 {
        h.auth
            .reauthenticate(&headers, &extensions)
            .await
            .expect("still valid");
    }
    assert_eq!(h.auth.stats().accepted(AuthMethod::Oidc), 0);
    headers.insert(
        "authorization",
        "Bearer ysk_notatoken".parse().expect("header"),
    );
    let before = h.auth.stats().rejected(RejectReason::MalformedCredentials);
    let refused = h
        .auth
        .reauthenticate(&headers, &extensions)
        .await
        .expect_err("refused");
    assert_eq!(refused, RejectReason::MalformedCredentials);
    assert_eq!(
        h.auth.stats().rejected(RejectReason::MalformedCredentials),
        before + 1,
        "the refusal that ends a watch is counted"
    );
}
