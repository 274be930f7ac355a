//! Real TLS handshakes against a tonic server on 127.0.0.1 with the auth
//! layer in front of the standard health service. A test-only layer behind
//! the auth layer copies the principal into a response header, so the
//! client sees which department and role the server decided on.

mod common;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use common::{cert_identity, department, jwt, pki::Ca, subject_identity};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, server::TcpIncoming},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower_service::Service;
use yunshu_auth::{
    AuthConfig, Authenticator, IdentityIndex, JwksSource, MtlsConfig, OidcConfig, Principal,
    RejectReason, mint_api_token_with_id, server_tls_config,
};
use yunshu_core::model::Role;

/// Behind the auth layer: reports the principal in `x-test-principal`.
#[derive(Clone)]
struct ShowPrincipal<S>(S);

impl<S, B, R> Service<http::Request<B>> for ShowPrincipal<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let shown = req
            .extensions()
            .get::<Principal>()
            .map(|p| format!("{}/{}/{:?}/{}", p.department, p.subject, p.role, p.method));
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if let Some(v) = shown.and_then(|s| http::HeaderValue::from_str(&s).ok()) {
                resp.headers_mut().insert("x-test-principal", v);
            }
            Ok(resp)
        })
    }
}

struct TestServer {
    addr: std::net::SocketAddr,
    ca: Arc<Ca>,
    auth: Authenticator,
    index: IdentityIndex,
    ec: ring::signature::EcdsaKeyPair,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(require_client_cert: bool) -> TestServer {
    let ca = Arc::new(Ca::new("Yunshu test client CA"));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).expect("write ca");
    let jwks = dir.path().join("jwks.json");
    let ec = jwt::ec_key();
    std::fs::write(&jwks, jwt::jwks(&[jwt::ec_jwk("ec-1", &ec)])).expect("write jwks");
    let config = AuthConfig {
        mtls: Some(MtlsConfig {
            client_ca_file: ca_file,
            require_client_cert,
        }),
        oidc: Some(OidcConfig::new(
            jwt::ISSUER,
            jwt::AUDIENCE,
            JwksSource::File(jwks),
        )),
        // The health service stands in for an API here: it must authenticate.
        public_paths: vec![],
        ..AuthConfig::default()
    };
    let index = IdentityIndex::from_departments(&[department(
        "health",
        vec![
            cert_identity("ci.health", Role::Operator),
            subject_identity("alice", Role::Viewer),
        ],
    )]);
    let auth = Authenticator::new(&config, index.clone())
        .await
        .expect("authenticator");

    let server = ca.server();
    let tls = server_tls_config(
        Identity::from_pem(&server.cert_pem, &server.key_pem),
        config.mtls.as_ref(),
    )
    .expect("tls config");
    let (_, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Server::builder()
        .tls_config(tls)
        .expect("tls")
        .layer(auth.layer())
        .layer(tower_layer::layer_fn(ShowPrincipal))
        .add_service(health);
    let task = tokio::spawn(async move {
        let _ = router
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    TestServer {
        addr,
        ca,
        auth,
        index,
        ec,
        task,
        _dir: dir,
    }
}

/// A channel trusting the server's CA, optionally with a client identity.
async fn connect(
    server: &TestServer,
    client: Option<&common::pki::CertKey>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&server.ca.cert_pem))
        .domain_name("localhost");
    if let Some(c) = client {
        tls = tls.identity(Identity::from_pem(&c.cert_pem, &c.key_pem));
    }
    Channel::from_shared(format!("https://{}", server.addr))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}

/// One health check; the principal the server saw, or the status.
async fn check(channel: Channel, bearer: Option<&str>) -> Result<Option<String>, tonic::Status> {
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(t) = bearer {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("ascii"),
        );
    }
    let resp = HealthClient::new(channel).check(req).await?;
    Ok(resp
        .metadata()
        .get("x-test-principal")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

#[tokio::test]
async fn trusted_client_certificate_maps_to_its_department() {
    let server = start(true).await;
    let client = server.ca.client("ci.health");
    let channel = connect(&server, Some(&client)).await.expect("handshake");
    assert_eq!(
        check(channel.clone(), None).await.expect("ok"),
        Some("health/ci.health/Operator/mtls".into())
    );

    // Departments change while serving: the next request sees it.
    server.index.upsert(&department(
        "health",
        vec![cert_identity("ci.health", Role::Admin)],
    ));
    assert_eq!(
        check(channel.clone(), None).await.expect("ok"),
        Some("health/ci.health/Admin/mtls".into())
    );
    server.index.remove("health");
    let status = check(channel, None).await.expect_err("no department");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(server.auth.stats().rejected(RejectReason::NoDepartment), 1);
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_fails_the_handshake() {
    let server = start(false).await;
    let rogue = Ca::new("Rogue CA").client("ci.health");

    // Through tonic: the call fails at the transport, not in the auth layer.
    let outcome = match connect(&server, Some(&rogue)).await {
        Err(_) => None,
        Ok(channel) => Some(check(channel, None).await),
    };
    if let Some(result) = outcome {
        let status = result.expect_err("must fail");
        assert_ne!(
            status.code(),
            Code::Unauthenticated,
            "must fail in the handshake: {status:?}"
        );
    }
    // Raw rustls: the server answers the rogue certificate with an alert.
    let err = raw_handshake(&server, Some(&rogue))
        .await
        .expect_err("handshake refused");
    assert!(
        err.contains("UnknownCA") || err.contains("BadCertificate"),
        "{err}"
    );
    raw_handshake(&server, Some(&server.ca.client("ci.health")))
        .await
        .expect("trusted cert is fine");
    let stats = server.auth.stats();
    assert_eq!(
        stats.rejected.iter().map(|(_, n)| n).sum::<u64>(),
        0,
        "the layer never saw it"
    );
}

#[tokio::test]
async fn required_client_certificate_refuses_connections_without_one() {
    let server = start(true).await;
    let err = raw_handshake(&server, None)
        .await
        .expect_err("cert required");
    assert!(
        err.contains("CertificateRequired") || err.contains("HandshakeFailure"),
        "{err}"
    );
}

#[tokio::test]
async fn tokens_work_over_tls_without_a_client_certificate_when_optional() {
    let server = start(false).await;
    let channel = connect(&server, None)
        .await
        .expect("handshake without cert");
    let api = mint_api_token_with_id("ci-deploy").expect("mint");
    server.index.upsert(&department(
        "health",
        vec![
            api.identity(Role::Operator),
            subject_identity("alice", Role::Viewer),
        ],
    ));
    assert_eq!(
        check(channel.clone(), Some(api.token.expose()))
            .await
            .expect("api token"),
        Some("health/ci-deploy/Operator/api_token".into())
    );
    let token = jwt::es256("ec-1", &server.ec, &jwt::claims("alice"));
    assert_eq!(
        check(channel.clone(), Some(&token)).await.expect("oidc"),
        Some("health/alice/Viewer/oidc".into())
    );

    let status = check(channel.clone(), None)
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), RejectReason::MissingCredentials.message());
    let status = check(channel, Some("ysk_ci-deploy_wrong"))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("wrong"));
}

#[tokio::test]
async fn a_bad_bearer_token_is_refused_even_with_a_good_certificate() {
    let server = start(false).await;
    let channel = connect(&server, Some(&server.ca.client("ci.health")))
        .await
        .expect("handshake");
    let expired = jwt::with(
        jwt::claims("alice"),
        "exp",
        serde_json::json!(jwt::now() - 3600),
    );
    let status = check(channel, Some(&jwt::es256("ec-1", &server.ec, &expired)))
        .await
        .expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), RejectReason::Expired.message());
}

/// A bare TLS 1.3 handshake plus one round trip, so a client-certificate
/// alert (sent after the client's Finished) is seen.
async fn raw_handshake(
    server: &TestServer,
    client: Option<&common::pki::CertKey>,
) -> Result<(), String> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.ca.cert_pem.as_bytes()).expect("ca"))
        .expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("{e:?}"))?;
    // The HTTP/2 preface; the server answers with its SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 9];
    tls.read_exact(&mut buf)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}
