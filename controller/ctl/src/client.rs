//! The connection to the API: TLS, credentials on every call, deadlines.

use std::{net::IpAddr, time::Duration};

use tonic::{
    Request, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use yunshu_proto::api::v1::{
    bucket_service_client::BucketServiceClient, department_service_client::DepartmentServiceClient,
    instance_service_client::InstanceServiceClient,
    placement_service_client::PlacementServiceClient, volume_service_client::VolumeServiceClient,
};

use crate::{
    config::Settings,
    error::{Error, Result},
};

/// The header naming the department when an identity belongs to several.
pub const DEPARTMENT_HEADER: &str = "x-yunshu-department";

/// The transport every client shares: a channel whose calls carry the
/// credentials.
pub type Transport = InterceptedService<Channel, Credentials>;

/// Adds `authorization: Bearer …` and `x-yunshu-department` to every call.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
    department: Option<AsciiMetadataValue>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("department", &self.department)
            .finish()
    }
}

impl Credentials {
    /// Credentials from the settings (reads the token file).
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let authorization = match settings.read_token()? {
            None => None,
            Some(token) => {
                let mut value: AsciiMetadataValue = MetadataValue::try_from(format!(
                    "Bearer {}",
                    token.expose()
                ))
                .map_err(|_| {
                    Error::Usage("the token contains characters a header cannot carry".into())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let department = match &settings.department {
            None => None,
            Some(d) => Some(MetadataValue::try_from(d.as_str()).map_err(|_| {
                Error::Usage(format!(
                    "department `{d}` contains characters a header cannot carry"
                ))
            })?),
        };
        Ok(Self {
            authorization,
            department,
        })
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(a) = &self.authorization {
            request.metadata_mut().insert("authorization", a.clone());
        }
        if let Some(d) = &self.department {
            request.metadata_mut().insert(DEPARTMENT_HEADER, d.clone());
        }
        Ok(request)
    }
}

/// Clients of every department service, sharing one connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) instances: InstanceServiceClient<Transport>,
    pub(crate) volumes: VolumeServiceClient<Transport>,
    pub(crate) buckets: BucketServiceClient<Transport>,
    pub(crate) departments: DepartmentServiceClient<Transport>,
    pub(crate) placement: PlacementServiceClient<Transport>,
    timeout: Duration,
}

impl Client {
    /// Connects to the settings' endpoint. A token sent over plain http to
    /// another machine is warned about on `warnings`.
    pub async fn connect(settings: &Settings, warnings: &mut dyn std::io::Write) -> Result<Self> {
        settings.validate()?;
        let credentials = Credentials::from_settings(settings)?;
        let connect_error = |reason: String, tls: bool| Error::Connect {
            endpoint: settings.endpoint.clone(),
            reason,
            tls,
        };
        let mut endpoint = Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|e| Error::Usage(format!("endpoint `{}`: {}", settings.endpoint, chain(&e))))?
            .connect_timeout(settings.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if settings.is_tls() {
            let mut tls = ClientTlsConfig::new();
            tls = match &settings.ca_file {
                Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca, "CA file")?)),
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = &settings.client_identity {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "client certificate")?,
                    read(key, "client key")?,
                ));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| connect_error(chain(&e), true))?;
        } else if credentials.authorization.is_some() && !is_loopback(endpoint.uri().host()) {
            let _ = writeln!(
                warnings,
                "warning: sending a token over plain http to {}; use https",
                settings.endpoint
            );
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| connect_error(chain(&e), is_tls_failure(&e)))?;
        Ok(Self::from_channel(
            channel,
            credentials,
            settings.request_timeout,
        ))
    }

    /// Clients over an existing channel.
    pub fn from_channel(channel: Channel, credentials: Credentials, timeout: Duration) -> Self {
        let t = InterceptedService::new(channel, credentials);
        Self {
            instances: InstanceServiceClient::new(t.clone()),
            volumes: VolumeServiceClient::new(t.clone()),
            buckets: BucketServiceClient::new(t.clone()),
            departments: DepartmentServiceClient::new(t.clone()),
            placement: PlacementServiceClient::new(t),
            timeout,
        }
    }

    /// Runs a unary call under the per-call deadline.
    pub(crate) async fn unary<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?.into_inner()),
            Err(_) => Err(Error::Timeout {
                after: self.timeout,
                waiting: "for the server to answer (--request-timeout)".into(),
            }),
        }
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn read(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn is_loopback(host: Option<&str>) -> bool {
    match host {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Whether a connection failed in its TLS handshake (rustls reports its
/// errors as `InvalidData` I/O errors), not in reaching the server.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// An error and its causes, `: `-separated: tonic's transport errors say
/// little at the top ("transport error") and the reason underneath.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "[::1]", "127.8.9.10"] {
            assert!(is_loopback(Some(h)), "{h}");
        }
        for h in ["yunshu.example", "10.0.0.1", "[2001:db8::1]"] {
            assert!(!is_loopback(Some(h)), "{h}");
        }
        assert!(!is_loopback(None));
    }

    #[test]
    fn credentials_ride_on_every_call_and_stay_out_of_debug() {
        let mut settings = Settings::new("http://127.0.0.1:1");
        settings.token = Some(crate::config::TokenSource::Inline(
            crate::config::Secret::new("ysk_id_s3cret"),
        ));
        settings.department = Some("health".into());
        let mut creds = Credentials::from_settings(&settings).expect("valid");
        assert!(!format!("{creds:?}").contains("s3cret"));
        let req = creds.call(Request::new(())).expect("adds headers");
        assert_eq!(
            req.metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer ysk_id_s3cret")
        );
        assert_eq!(
            req.metadata()
                .get(DEPARTMENT_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("health")
        );
    }

    #[test]
    fn tokens_that_cannot_be_headers_are_refused() {
        let mut settings = Settings::new("http://127.0.0.1:1");
        settings.token = Some(crate::config::TokenSource::Inline(
            crate::config::Secret::new("bad\ntoken"),
        ));
        assert!(matches!(
            Credentials::from_settings(&settings),
            Err(Error::Usage(_))
        ));
    }
}
