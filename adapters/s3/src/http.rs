//! A small SigV4-signed HTTP client for the admin APIs (RGW Admin Ops, IAM),
//! which aws-sdk-s3 does not cover.
//!
//! It runs on hyper with rustls and the *ring* provider — the stack the SDK
//! client is built on here too, so the adapter carries one TLS stack and no
//! second crypto library. Signing uses `aws-sigv4`. RGW authenticates admin
//! requests like S3 ones: it wants the `x-amz-content-sha256` header, and a
//! JSON body signed as `UNSIGNED-PAYLOAD` (with the body's hash it answers
//! 501); IAM requests sign the form body's hash.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use yunshu_core::{Error, Result};

use crate::config::KeyPair;

/// What RFC 3986 leaves unreserved stays; everything else is escaped, as
/// SigV4's canonical query string wants.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A request body.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A body of the given content type.
    Bytes {
        /// Its content type.
        content_type: &'static str,
        /// The bytes.
        bytes: Bytes,
    },
}

/// A server's answer.
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Retry-After` header, if any.
    pub fn retry_after(&self) -> Option<&str> {
        self.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
    }
}

/// A signing HTTP client for one endpoint, identity and service name.
pub(crate) struct SignedHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: String,
    region: String,
    identity: Identity,
    access_key: String,
    service: &'static str,
    timeout: Duration,
}

impl fmt::Debug for SignedHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHttp")
            .field("endpoint", &self.endpoint)
            .field("service", &self.service)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl SignedHttp {
    /// A client signing as `key` for `service` in `region`.
    pub fn new(
        endpoint: &str,
        region: &str,
        key: &KeyPair,
        service: &'static str,
        timeout: Duration,
    ) -> Result<Self> {
        let identity: Identity = AwsCredentials::new(
            key.access_key.clone(),
            key.secret_key.expose().to_owned(),
            None,
            None,
            "yunshu-foundation",
        )
        .into();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector()),
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            identity,
            access_key: key.access_key.clone(),
            service,
            timeout,
        })
    }

    /// Sends a signed request to `path` with `query`; `what` names the
    /// action for errors. Any answer comes back as a [`Reply`]; only
    /// transport failures and timeouts are errors (`Unavailable`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
        what: &str,
    ) -> Result<Reply> {
        let mut url = format!("{}{path}", self.endpoint);
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, QUERY),
                        utf8_percent_encode(v, QUERY)
                    )
                })
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let (content_type, bytes) = match body {
            Body::Empty => (None, Bytes::new()),
            Body::Bytes {
                content_type,
                bytes,
            } => (Some(content_type), bytes),
        };
        // S3-style services (RGW Admin Ops) want `x-amz-content-sha256`, and
        // `UNSIGNED-PAYLOAD` for bodies; paths are encoded once, unnormalised.
        let s3_style = self.service == "s3";
        let signable = if s3_style {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(&bytes)
        };
        let mut builder = Request::builder().method(method.clone()).uri(&url);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
            headers.push(("content-type", ct));
        }
        let mut request = builder
            .body(Full::new(bytes.clone()))
            .map_err(|e| Error::Internal {
                message: format!("{what}: the request could not be built"),
                source: Some(Box::new(e)),
            })?;

        let mut settings = SigningSettings::default();
        if s3_style {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Error::Internal {
                message: format!("{what}: signing parameters are incomplete"),
                source: Some(Box::new(e)),
            })?
            .into();
        let signable =
            SignableRequest::new(method.as_str(), url.as_str(), headers.into_iter(), signable)
                .map_err(|e| Error::Internal {
                    message: format!("{what}: the request could not be signed"),
                    source: Some(Box::new(e)),
                })?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Error::Internal {
                message: format!("{what}: the request could not be signed"),
                source: Some(Box::new(e)),
            })?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);

        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                Error::unavailable(format!("{what}: the server could not be reached"), e)
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| Error::unavailable(format!("{what}: the answer broke off"), e))?
                .to_bytes();
            Ok::<_, Error>(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(Error::Unavailable {
                message: format!("{what}: timed out after {:?}", self.timeout),
                source: None,
            }),
        }
    }
}

/// An HTTP(S) connector on rustls with *ring*, trusting the system's roots.
/// Without any system root an https endpoint fails at connect time with a
/// certificate error, and plain http still works.
fn connector() -> HttpsConnector<HttpConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(Arc::clone(&provider)) {
        Ok(b) => b,
        Err(error) => {
            tracing::warn!(%error, "no system CA certificates found; https endpoints will fail verification");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports rustls' default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    builder.https_or_http().enable_http1().build()
}
