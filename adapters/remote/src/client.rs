//! [`RemoteAdapter`]: the `Adapter` trait answered by another process over
//! `yunshu.adapter.v1`.

use std::{sync::RwLock, time::Duration};

use async_trait::async_trait;
use futures::TryStreamExt;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};
use yunshu_core::{
    Error, Result,
    adapter::{
        Adapter, Capabilities, CloudResource, Credentials, DeleteOptions, InstanceAction,
        IssuedCredentials, Owner, Probe,
    },
    meta::Kind,
    model::{AdapterKind, BucketSpec, FoundationSpec, InstanceSpec, TenantMapping, VolumeSpec},
};
use yunshu_proto::adapter::v1::{self as pb, adapter_service_client::AdapterServiceClient};

use crate::{convert, status::from_status};

/// How long one call may take unless `settings.timeout_seconds` says
/// otherwise; the runtime's own per-attempt deadline applies on top.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An adapter in another process. Built by [`RemoteAdapter::connect`],
/// which asks the service for its capabilities; every probe asks again, so
/// an adapter upgraded in place is seen without restarting Yunshu.
pub struct RemoteAdapter {
    foundation: String,
    client: AdapterServiceClient<Channel>,
    token: Option<MetadataValue<Ascii>>,
    capabilities: RwLock<Capabilities>,
}

impl std::fmt::Debug for RemoteAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs.
        f.debug_struct("RemoteAdapter")
            .field("foundation", &self.foundation)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("capabilities", &self.capabilities())
            .finish_non_exhaustive()
    }
}

impl RemoteAdapter {
    /// The client of the adapter service at `spec.endpoint` (`http://` or
    /// `https://`) for `foundation`; nothing is sent until the first call.
    /// Credentials (all optional): `token`, sent as `authorization: Bearer
    /// <token>` on every call (refused over `http://` to anything but
    /// loopback unless `settings.allow_plaintext` is `"true"`); `ca_pem`,
    /// the PEM of the CA that signed an `https` endpoint's certificate (the
    /// system's roots are trusted too). `settings.timeout_seconds` bounds
    /// each call (60 by default).
    pub fn connect(
        foundation: &str,
        spec: &FoundationSpec,
        credentials: &Credentials,
    ) -> Result<Self> {
        let url = spec.endpoint.trim();
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            return Err(Error::invalid(
                "spec.endpoint",
                "must be the adapter service's http:// or https:// URL",
            ));
        }
        let timeout = match spec.settings.get("timeout_seconds") {
            None => DEFAULT_TIMEOUT,
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    Error::invalid(
                        "spec.settings.timeout_seconds",
                        "must be a positive integer",
                    )
                })?,
        };
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| Error::invalid("spec.endpoint", format!("is not a valid URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .tcp_nodelay(true);
        if https {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(pem) = credentials.get("ca_pem") {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                Error::invalid("credentials.ca_pem", format!("cannot be used for TLS: {e}"))
            })?;
        }
        let token = credentials
            .get("token")
            .map(|t| {
                format!("Bearer {t}").parse().map_err(|_| {
                    Error::invalid(
                        "credentials.token",
                        "must be printable ASCII without line breaks",
                    )
                })
            })
            .transpose()?;
        if token.is_some() && !https && !loopback(url) && !plaintext_allowed(spec)? {
            return Err(Error::invalid(
                "spec.endpoint",
                "the token would cross the network in clear text: use an https:// endpoint, \
                 or set settings.allow_plaintext: \"true\" behind a proxy or mesh that encrypts",
            ));
        }
        Ok(Self {
            foundation: foundation.to_owned(),
            client: AdapterServiceClient::new(endpoint.connect_lazy()),
            token,
            capabilities: RwLock::new(Capabilities::default()),
        })
    }

    /// Asks the service what it supports and remembers the answer; every
    /// probe does this first. Until then the adapter reports no kinds, so
    /// building one never waits on the network.
    pub async fn refresh_capabilities(&self) -> Result<Capabilities> {
        let answer = self
            .client
            .clone()
            .get_capabilities(self.request(pb::GetCapabilitiesRequest {}))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        let capabilities = convert::capabilities_from(&answer);
        let mut known = self
            .capabilities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *known != capabilities {
            tracing::info!(
                foundation = %self.foundation, adapter = %answer.name, version = %answer.version,
                kinds = ?capabilities.kinds, issues_credentials = capabilities.issues_credentials,
                "remote adapter capabilities"
            );
            *known = capabilities.clone();
        }
        Ok(capabilities)
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }

    fn error(&self, status: &Status) -> Error {
        from_status(&self.foundation, status)
    }

    fn client(&self) -> AdapterServiceClient<Channel> {
        self.client.clone()
    }
}

#[async_trait]
impl Adapter for RemoteAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Remote
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn probe(&self) -> Result<Probe> {
        self.refresh_capabilities().await?;
        let answer = self
            .client()
            .probe(self.request(pb::ProbeRequest {}))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        convert::probe_from(answer)
    }

    async fn ensure_tenant(&self, department: &str) -> Result<TenantMapping> {
        let answer = self
            .client()
            .ensure_tenant(self.request(pb::EnsureTenantRequest {
                department: department.to_owned(),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        Ok(TenantMapping {
            tenant_id: answer.tenant_id,
            user: answer.user,
        })
    }

    async fn create_instance(&self, owner: &Owner, spec: &InstanceSpec) -> Result<CloudResource> {
        let answer = self
            .client()
            .create_instance(self.request(pb::CreateInstanceRequest {
                owner: Some(convert::owner(owner)),
                spec: Some(convert::instance_spec(spec)),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        convert::resource_from(answer.resource)
    }

    async fn create_volume(&self, owner: &Owner, spec: &VolumeSpec) -> Result<CloudResource> {
        let answer = self
            .client()
            .create_volume(self.request(pb::CreateVolumeRequest {
                owner: Some(convert::owner(owner)),
                spec: Some(convert::volume_spec(spec)),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        convert::resource_from(answer.resource)
    }

    async fn create_bucket(&self, owner: &Owner, spec: &BucketSpec) -> Result<CloudResource> {
        let answer = self
            .client()
            .create_bucket(self.request(pb::CreateBucketRequest {
                owner: Some(convert::owner(owner)),
                spec: Some(convert::bucket_spec(spec)),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        convert::resource_from(answer.resource)
    }

    async fn get(&self, kind: Kind, owner: &Owner) -> Result<CloudResource> {
        let answer = self
            .client()
            .get_resource(self.request(pb::GetResourceRequest {
                kind: convert::kind(kind)?.into(),
                owner: Some(convert::owner(owner)),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        convert::resource_from(answer.resource)
    }

    async fn delete(&self, kind: Kind, owner: &Owner, opts: DeleteOptions) -> Result<()> {
        self.client()
            .delete_resource(self.request(pb::DeleteResourceRequest {
                kind: convert::kind(kind)?.into(),
                owner: Some(convert::owner(owner)),
                purge: opts.purge,
            }))
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn attach_volume(&self, volume: &Owner, instance: &Owner) -> Result<()> {
        self.client()
            .attach_volume(self.request(pb::AttachVolumeRequest {
                volume: Some(convert::owner(volume)),
                instance: Some(convert::owner(instance)),
            }))
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn detach_volume(&self, volume: &Owner) -> Result<()> {
        self.client()
            .detach_volume(self.request(pb::DetachVolumeRequest {
                volume: Some(convert::owner(volume)),
            }))
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn instance_action(&self, owner: &Owner, action: InstanceAction) -> Result<()> {
        self.client()
            .instance_action(self.request(pb::InstanceActionRequest {
                owner: Some(convert::owner(owner)),
                action: Some(convert::action(action)),
            }))
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn list_owned(&self, kind: Kind) -> Result<Vec<CloudResource>> {
        let stream = self
            .client()
            .list_owned_resources(self.request(pb::ListOwnedResourcesRequest {
                kind: convert::kind(kind)?.into(),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        let items: Vec<pb::ListOwnedResourcesResponse> =
            stream.try_collect().await.map_err(|s| self.error(&s))?;
        items
            .into_iter()
            .map(|i| convert::resource_from(i.resource))
            .collect()
    }

    async fn issue_credentials(&self, owner: &Owner, ttl: Duration) -> Result<IssuedCredentials> {
        let answer = self
            .client()
            .issue_credentials(self.request(pb::IssueCredentialsRequest {
                owner: Some(convert::owner(owner)),
                ttl: convert::ttl(ttl),
            }))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        convert::issued_from(answer)
    }

    async fn revoke_credentials(&self, owner: &Owner, access_key: &str) -> Result<()> {
        self.client()
            .revoke_credentials(self.request(pb::RevokeCredentialsRequest {
                owner: Some(convert::owner(owner)),
                access_key_id: access_key.to_owned(),
            }))
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn revoke_expired_credentials(&self) -> Result<usize> {
        if !self.capabilities().issues_credentials {
            return Ok(0);
        }
        let answer = self
            .client()
            .revoke_expired_credentials(self.request(pb::RevokeExpiredCredentialsRequest {}))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        Ok(answer.revoked as usize)
    }
}

/// Whether `url`'s host is a loopback address or `localhost`. A URL with
/// user information (`http://localhost@elsewhere/`) is never taken for
/// loopback.
fn loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<tonic::codegen::http::Uri>() else {
        return false;
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return false;
    }
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn plaintext_allowed(spec: &FoundationSpec) -> Result<bool> {
    match spec.settings.get("allow_plaintext").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Error::invalid(
            "spec.settings.allow_plaintext",
            "must be \"true\" or \"false\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart() {
        for url in [
            "http://127.0.0.1:50061",
            "http://localhost:1",
            "http://[::1]:9",
            "http://127.0.0.2",
        ] {
            assert!(loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:50061",
            "http://adapter.gov.example:80",
            "http://localhost:1@10.0.0.5/",
            "http://[::1]@evil.example",
        ] {
            assert!(!loopback(url), "{url}");
        }
    }

    #[tokio::test]
    async fn a_token_is_not_sent_in_clear_text_over_the_network() {
        let mut spec = crate::foundation_spec("http://10.0.0.5:50061");
        let token = Credentials([("token".to_owned(), "t".to_owned())].into());
        let e = RemoteAdapter::connect("f", &spec, &token).expect_err("clear text");
        assert!(e.to_string().contains("clear text"), "{e}");
        assert!(RemoteAdapter::connect("f", &spec, &Credentials::default()).is_ok());
        spec.settings
            .insert("allow_plaintext".into(), "true".into());
        assert!(RemoteAdapter::connect("f", &spec, &token).is_ok());
    }
}
