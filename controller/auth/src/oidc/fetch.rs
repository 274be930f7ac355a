//! A small HTTP/1.1 client that GETs the JWKS: `https` with rustls (ring)
//! and either a configured CA bundle or the system roots, or plain `http`
//! to a loopback address. One deadline covers the whole exchange and the
//! body is capped, so a slow or hostile endpoint cannot hold requests up
//! for long or exhaust memory.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{ClientConfig, RootCertStore, crypto::ring};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::{
    config::jwks_uri,
    error::{AuthError, Result},
    mtls::read_ca_bundle,
};

/// The largest JWKS document accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Fetches one JWKS URL.
pub(crate) struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    uri: http::Uri,
    timeout: Duration,
}

impl Fetcher {
    pub(crate) fn new(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Self> {
        let uri = jwks_uri(url)?;
        let provider = Arc::new(ring::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let builder = match ca_file {
            Some(path) => {
                let pem = read_ca_bundle(path)?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                    roots.add(cert)?;
                }
                builder.with_tls_config(
                    ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                )
            }
            None if uri.scheme_str() == Some("https") => builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| AuthError::LoadJwks {
                    reason: format!("no system CA roots for the https JWKS URL: {e}"),
                })?,
            // Plain http to loopback: TLS is never used.
            None => builder.with_tls_config(
                ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri,
            timeout,
        })
    }

    /// GETs the document; errors name what failed, never a body.
    pub(crate) async fn fetch(&self) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(self.timeout, self.fetch_inner()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "GET {} timed out after {:?}",
                self.uri, self.timeout
            )),
        }
    }

    async fn fetch_inner(&self) -> Result<Vec<u8>, String> {
        let request = http::Request::get(self.uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| format!("failed to build the request: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("GET {} failed: {e}", self.uri))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("GET {} answered {}", self.uri, response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("failed to read the body of {}: {e}", self.uri))?;
        Ok(body.to_bytes().to_vec())
    }
}
