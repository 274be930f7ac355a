//! JWKS fetched over HTTP(S) from a tiny server on 127.0.0.1: key rotation
//! picked up on an unknown `kid`, refetches rate-limited and shared by
//! concurrent requests, an unreachable provider answered as UNAVAILABLE,
//! and https with a configured CA bundle.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{department, jwt, pki::Ca, subject_identity};
use http::{Extensions, HeaderMap};
use ring::signature::EcdsaKeyPair;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};
use tonic::Code;
use yunshu_auth::{
    AuthConfig, Authenticator, IdentityIndex, JwksSource, OidcConfig, Principal, RejectReason,
};
use yunshu_core::model::Role;

/// Serves `body` (or a 500 when `None`) to every request and counts them.
#[derive(Clone, Default)]
struct JwksServer {
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn set(&self, body: Option<String>) {
        *self.body.lock().expect("lock") = body;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Listens on 127.0.0.1; with `tls`, wraps each connection in it.
    async fn start(&self, tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (this, tls) = (this.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                this.answer(stream).await;
                            }
                        }
                        None => this.answer(tcp).await,
                    }
                });
            }
        });
        port
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        let body = self.body.lock().expect("lock").clone();
        let response = match body {
            Some(b) => format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            ),
            None => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
        };
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

async fn authenticator(
    url: String,
    refresh_secs: u64,
    ca_file: Option<std::path::PathBuf>,
) -> Authenticator {
    let mut oidc = OidcConfig::new(jwt::ISSUER, jwt::AUDIENCE, JwksSource::Url(url));
    oidc.jwks_refresh_interval_secs = refresh_secs;
    oidc.jwks_ca_file = ca_file;
    let config = AuthConfig {
        oidc: Some(oidc),
        ..AuthConfig::default()
    };
    let index = IdentityIndex::from_departments(&[department(
        "health",
        vec![subject_identity("alice", Role::Viewer)],
    )]);
    Authenticator::new(&config, index)
        .await
        .expect("authenticator")
}

async fn present(
    auth: &Authenticator,
    kid: &str,
    key: &EcdsaKeyPair,
) -> Result<Principal, RejectReason> {
    present_token(auth, &jwt::es256(kid, key, &jwt::claims("alice"))).await
}

async fn present_token(auth: &Authenticator, token: &str) -> Result<Principal, RejectReason> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    auth.authenticate(&headers, &Extensions::new()).await
}

#[tokio::test]
async fn rotated_key_is_fetched_on_unknown_kid() {
    let (old, new) = (jwt::ec_key(), jwt::ec_key());
    let server = JwksServer::default();
    server.set(Some(jwt::jwks(&[jwt::ec_jwk("k1", &old)])));
    let port = server.start(None).await;
    let auth = authenticator(format!("http://127.0.0.1:{port}/jwks"), 1, None).await;
    assert_eq!(server.hits(), 1, "loaded at start-up");
    assert_eq!(
        present(&auth, "k1", &old).await.map(|p| p.subject),
        Ok("alice".into())
    );
    assert_eq!(server.hits(), 1, "known kid: served from the cache");

    server.set(Some(jwt::jwks(&[
        jwt::ec_jwk("k1", &old),
        jwt::ec_jwk("k2", &new),
    ])));
    // Refetches are at least a second apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        present(&auth, "k2", &new).await.map(|p| p.department),
        Ok("health".into())
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetches_are_rate_limited_and_shared() {
    let key = jwt::ec_key();
    let server = JwksServer::default();
    server.set(Some(jwt::jwks(&[])));
    let port = server.start(None).await;
    let auth = authenticator(format!("http://127.0.0.1:{port}/jwks"), 2, None).await;
    assert_eq!(server.hits(), 1);
    // Within the interval an unknown kid does not refetch.
    assert_eq!(
        present(&auth, "k1", &key).await,
        Err(RejectReason::UnknownKeyId)
    );
    assert_eq!(server.hits(), 1);

    server.set(Some(jwt::jwks(&[jwt::ec_jwk("k1", &key)])));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let tries: Vec<_> = (0..16)
        .map(|_| {
            let (auth, token) = (auth.clone(), jwt::es256("k1", &key, &jwt::claims("alice")));
            tokio::spawn(async move { present_token(&auth, &token).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tries {
        outcomes.push(t.await.expect("join"));
    }
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        server.hits(),
        2,
        "one fetch for sixteen concurrent requests"
    );
}

#[tokio::test]
async fn unreachable_provider_is_unavailable_not_unauthenticated() {
    let key = jwt::ec_key();
    let server = JwksServer::default();
    let port = server.start(None).await;
    // Start-up tolerates a provider that is down (mTLS users must not wait).
    let auth = authenticator(format!("http://127.0.0.1:{port}/jwks"), 1, None).await;
    let refused = present(&auth, "k1", &key).await.expect_err("no keys");
    assert_eq!(refused, RejectReason::KeysUnavailable);
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(auth.stats().rejected(RejectReason::KeysUnavailable), 1);
    server.set(Some(jwt::jwks(&[jwt::ec_jwk("k1", &key)])));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        present(&auth, "k1", &key).await.is_ok(),
        "recovers on the next fetch"
    );
}

#[tokio::test]
async fn https_jwks_with_a_configured_ca() {
    let key = jwt::ec_key();
    let ca = Ca::new("IdP CA");
    let cert = ca.server();
    let server_config = {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key"),
        )
        .expect("server config")
    };
    let server = JwksServer::default();
    server.set(Some(jwt::jwks(&[jwt::ec_jwk("k1", &key)])));
    let port = server
        .start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            server_config,
        ))))
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("idp-ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).expect("write");
    let auth = authenticator(format!("https://localhost:{port}/jwks"), 1, Some(ca_file)).await;
    assert!(present(&auth, "k1", &key).await.is_ok());

    // The same server is not trusted with another CA bundle.
    let other = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(other.path(), Ca::new("Other CA").cert_pem).expect("write");
    let auth = authenticator(
        format!("https://localhost:{port}/jwks"),
        1,
        Some(other.path().to_owned()),
    )
    .await;
    assert_eq!(
        present(&auth, "k1", &key).await.map(|_| ()),
        Err(RejectReason::KeysUnavailable)
    );
}
