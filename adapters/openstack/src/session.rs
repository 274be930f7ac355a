//! The authenticated HTTP session: Keystone v3 tokens per scope, service
//! catalog lookup, and one `send` that every API call goes through.
//!
//! Tokens are cached per [`Scope`] (the credentials' own scope, or a
//! department project) and reused until less than
//! [`Config::token_renew_before`] is left. A 401 drops the token that was used,
//! authenticates again and repeats the call once; a second 401 is
//! `Unauthorized`. Nothing else is retried here: the runtime's stack owns
//! timeouts, retries and circuit breaking.

use std::{collections::HashMap, fmt, sync::Arc, time::SystemTime};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode, header::HeaderValue};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::debug;
use yunshu_core::{Error, Result};

use crate::{
    config::{Auth, Config, ProjectRef},
    error::{map_status, transport},
};

/// Which token a call uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// The scope of the configured credentials (the admin project).
    Admin,
    /// A department project, by id (password auth only).
    Project(String),
}

/// The OpenStack services the adapter talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Identity,
    Compute,
    Placement,
    Image,
    Network,
    Volume,
}

/// Nova microversion: 2.52+ for server tags on create, 2.47+ for the flavor
/// embedded in a server, 2.37+ for explicit `networks`.
pub(crate) const NOVA_MICROVERSION: &str = "2.79";
/// Placement microversion: 1.6+ for resource provider traits.
pub(crate) const PLACEMENT_MICROVERSION: &str = "1.6";

impl Service {
    /// Catalog types that may name this service, preferred first.
    fn catalog_types(self) -> &'static [&'static str] {
        match self {
            Self::Identity => &["identity"],
            Self::Compute => &["compute"],
            Self::Placement => &["placement"],
            Self::Image => &["image"],
            Self::Network => &["network"],
            Self::Volume => &["block-storage", "volumev3"],
        }
    }

    /// The project's name of the service, for messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Identity => "keystone",
            Self::Compute => "nova",
            Self::Placement => "placement",
            Self::Image => "glance",
            Self::Network => "neutron",
            Self::Volume => "cinder",
        }
    }

    fn version_header(self) -> Option<String> {
        match self {
            Self::Compute => Some(format!("compute {NOVA_MICROVERSION}")),
            Self::Placement => Some(format!("placement {PLACEMENT_MICROVERSION}")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Deserialize)]
struct Endpoint {
    interface: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
    url: String,
}

/// A Keystone token with what came with it. `Debug` hides the token.
pub(crate) struct Token {
    secret: String,
    expires_at: DateTime<Utc>,
    /// The user the token was issued to.
    pub(crate) user_id: String,
    /// The project it is scoped to.
    pub(crate) project_id: Option<String>,
    catalog: Vec<CatalogEntry>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .finish()
    }
}

/// Finds the URL of `types` for `interface` in `region` (any region when
/// `None`). Pure, so the rules are unit-tested.
pub(crate) fn find_endpoint(
    catalog: &[CatalogEntry],
    types: &[&str],
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    types.iter().find_map(|t| {
        catalog
            .iter()
            .filter(|e| e.kind == *t)
            .flat_map(|e| &e.endpoints)
            .find(|ep| {
                ep.interface == interface
                    && region.is_none_or(|r| {
                        ep.region.as_deref() == Some(r) || ep.region_id.as_deref() == Some(r)
                    })
            })
            .map(|ep| ep.url.trim_end_matches('/').to_owned())
    })
}

/// An answer with a 2xx status.
#[derive(Debug)]
pub(crate) struct Reply {
    body: Vec<u8>,
}

impl Reply {
    /// Decodes the body; a body that does not decode is `Internal`.
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::internal(format!("{what}: unexpected answer from the cloud: {e}")))
    }
}

/// One API call, relative to a service's catalog endpoint.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) service: Service,
    /// Path below the endpoint, starting with `/`.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<Value>,
    /// The operation, for errors ("nova: create server").
    pub(crate) what: String,
}

impl Call {
    /// A call without query or body.
    pub(crate) fn new(
        method: Method,
        service: Service,
        path: impl Into<String>,
        what: &str,
    ) -> Self {
        Self {
            method,
            service,
            path: path.into(),
            query: Vec::new(),
            body: None,
            what: format!("{}: {what}", service.label()),
        }
    }

    /// Adds a query parameter.
    pub(crate) fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_owned(), v.into()));
        self
    }

    /// Sets the JSON body.
    pub(crate) fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// The Keystone session shared by every call of one adapter.
pub(crate) struct Session {
    http: reqwest::Client,
    auth_url: String,
    region: Option<String>,
    auth: Auth,
    config: Config,
    tokens: Mutex<HashMap<Scope, Arc<Token>>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("auth_url", &self.auth_url)
            .field("region", &self.region)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// `http://host:5000`, `http://host:5000/` and `http://host:5000/v3` all mean
/// the v3 API.
pub(crate) fn normalize_auth_url(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    if u.ends_with("/v3") {
        u.to_owned()
    } else {
        format!("{u}/v3")
    }
}

impl Session {
    pub(crate) fn new(
        endpoint: &str,
        region: Option<String>,
        auth: Auth,
        config: Config,
    ) -> Result<Self> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::invalid(
                "spec.endpoint",
                "must be the Keystone URL, starting with http:// or https://",
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!(
                "yunshu-adapter-openstack/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::invalid(
                    "spec.settings.ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                Error::invalid(
                    "spec.settings.ca_file",
                    format!("is not a PEM certificate: {e}"),
                )
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            auth_url: normalize_auth_url(endpoint),
            region,
            auth,
            config,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The adapter's configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// A valid token for `scope`, from the cache or freshly issued.
    pub(crate) async fn token(&self, scope: &Scope) -> Result<Arc<Token>> {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(scope)
            && fresh(t.expires_at, Utc::now(), self.config.token_renew_before)
        {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(self.authenticate(scope).await?);
        tokens.insert(scope.clone(), Arc::clone(&t));
        Ok(t)
    }

    async fn forget(&self, scope: &Scope, used: &Arc<Token>) {
        let mut tokens = self.tokens.lock().await;
        if tokens.get(scope).is_some_and(|t| Arc::ptr_eq(t, used)) {
            tokens.remove(scope);
        }
    }

    async fn authenticate(&self, scope: &Scope) -> Result<Token> {
        let identity_scope = match (&self.auth, scope) {
            (Auth::Password { project, .. }, Scope::Admin) => Some(match project {
                ProjectRef::Id(id) => json!({ "project": { "id": id } }),
                ProjectRef::Name { name, domain_name } => {
                    json!({ "project": { "name": name, "domain": { "name": domain_name } } })
                }
            }),
            (Auth::Password { .. }, Scope::Project(id)) => Some(json!({ "project": { "id": id } })),
            (Auth::AppCredential { .. }, Scope::Admin) => None,
            (Auth::AppCredential { .. }, Scope::Project(_)) => {
                return Err(Error::invalid(
                    "credentials.application_credential_id",
                    "an application credential is bound to its own project and cannot act in \
                     department projects; use username/password credentials to create resources",
                ));
            }
        };
        let identity = match &self.auth {
            Auth::Password {
                username,
                password,
                user_domain_name,
                ..
            } => json!({
                "methods": ["password"],
                "password": { "user": {
                    "name": username, "password": password, "domain": { "name": user_domain_name }
                } }
            }),
            Auth::AppCredential { id, secret } => json!({
                "methods": ["application_credential"],
                "application_credential": { "id": id, "secret": secret }
            }),
        };
        let mut auth = json!({ "identity": identity });
        if let Some(s) = identity_scope {
            auth["scope"] = s;
        }
        let what = format!("keystone: authenticate {}", self.auth.principal());
        let url = format!("{}/auth/tokens", self.auth_url);
        debug!(url = %url, scope = ?scope, "authenticating");
        let resp = self
            .http
            .post(&url)
            .json(&json!({ "auth": auth }))
            .send()
            .await
            .map_err(|e| transport(&what, e))?;
        let status = resp.status();
        let secret = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = header_str(resp.headers().get(reqwest::header::RETRY_AFTER));
        let body = resp.bytes().await.map_err(|e| transport(&what, e))?;
        if !status.is_success() {
            return Err(map_status(
                status.as_u16(),
                retry_after.as_deref(),
                &String::from_utf8_lossy(&body),
                &what,
                SystemTime::now(),
            ));
        }
        #[derive(Deserialize)]
        struct Root {
            token: Body,
        }
        #[derive(Deserialize)]
        struct Body {
            expires_at: DateTime<Utc>,
            user: IdOnly,
            #[serde(default)]
            project: Option<IdOnly>,
            #[serde(default)]
            catalog: Vec<CatalogEntry>,
        }
        #[derive(Deserialize)]
        struct IdOnly {
            id: String,
        }
        let root: Root = serde_json::from_slice(&body)
            .map_err(|e| Error::internal(format!("{what}: unexpected token body: {e}")))?;
        let secret = secret
            .ok_or_else(|| Error::internal(format!("{what}: Keystone sent no X-Subject-Token")))?;
        Ok(Token {
            secret,
            expires_at: root.token.expires_at,
            user_id: root.token.user.id,
            project_id: root.token.project.map(|p| p.id),
            catalog: root.token.catalog,
        })
    }

    /// The base URL of `service` in `token`'s catalog (Keystone: the
    /// configured URL).
    fn endpoint(&self, token: &Token, service: Service) -> Result<String> {
        if service == Service::Identity {
            return Ok(self.auth_url.clone());
        }
        find_endpoint(
            &token.catalog,
            service.catalog_types(),
            &self.config.interface,
            self.region.as_deref(),
        )
        .ok_or_else(|| {
            Error::invalid(
                "spec.region",
                format!(
                    "the service catalog has no {} endpoint of type `{}` in region `{}`",
                    self.config.interface,
                    service.catalog_types().join("` or `"),
                    self.region.as_deref().unwrap_or("<any>"),
                ),
            )
        })
    }

    /// [`Session::send`] for a call built in place.
    pub(crate) async fn run(&self, scope: &Scope, call: Call) -> Result<Reply> {
        self.send(scope, &call).await
    }

    /// Sends `call` with `scope`'s token; re-authenticates once on 401.
    pub(crate) async fn send(&self, scope: &Scope, call: &Call) -> Result<Reply> {
        let token = self.token(scope).await?;
        match self.send_once(&token, call).await? {
            Ok(reply) => Ok(reply),
            Err(status) if status == StatusCode::UNAUTHORIZED => {
                debug!(what = %call.what, "token rejected; authenticating again");
                self.forget(scope, &token).await;
                let token = self.token(scope).await?;
                match self.send_once(&token, call).await? {
                    Ok(reply) => Ok(reply),
                    Err(_) => Err(Error::Unauthorized {
                        message: format!("{}: the cloud rejected a fresh token", call.what),
                    }),
                }
            }
            Err(status) => Err(Error::internal(format!(
                "{}: unexpected status {status}",
                call.what
            ))),
        }
    }

    /// One attempt: `Ok(Err(401))` asks the caller to re-authenticate, every
    /// other failure is mapped here.
    async fn send_once(&self, token: &Token, call: &Call) -> Result<Result<Reply, StatusCode>> {
        let base = self.endpoint(token, call.service)?;
        let url = format!("{base}{}", call.path);
        let mut req = self
            .http
            .request(call.method.clone(), &url)
            .header("X-Auth-Token", &token.secret)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(v) = call.service.version_header() {
            req = req.header("OpenStack-API-Version", v);
            if call.service == Service::Compute {
                req = req.header("X-OpenStack-Nova-API-Version", NOVA_MICROVERSION);
            }
        }
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        debug!(method = %call.method, url = %url, "openstack call");
        let resp = req.send().await.map_err(|e| transport(&call.what, e))?;
        let status = resp.status();
        let retry_after = header_str(resp.headers().get(reqwest::header::RETRY_AFTER));
        let body = resp.bytes().await.map_err(|e| transport(&call.what, e))?;
        if status.is_success() {
            return Ok(Ok(Reply {
                body: body.to_vec(),
            }));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Err(status));
        }
        Err(map_status(
            status.as_u16(),
            retry_after.as_deref(),
            &String::from_utf8_lossy(&body),
            &call.what,
            SystemTime::now(),
        ))
    }
}

/// Whether a token expiring at `expires_at` may still be used at `now`: more
/// than `renew_before` must be left, so no call carries a token that expires
/// on the way.
pub(crate) fn fresh(
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    renew_before: std::time::Duration,
) -> bool {
    (expires_at - now)
        .to_std()
        .is_ok_and(|left| left > renew_before)
}

fn header_str(v: Option<&HeaderValue>) -> Option<String> {
    v.and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<CatalogEntry> {
        serde_json::from_value(json!([
            { "type": "compute", "endpoints": [
                { "interface": "admin", "region": "r1", "region_id": "r1", "url": "http://a/admin" },
                { "interface": "public", "region": "r2", "region_id": "r2", "url": "http://b/v2.1" },
                { "interface": "public", "region": "r1", "region_id": "r1", "url": "http://a/v2.1/" }
            ]},
            { "type": "volumev3", "endpoints": [
                { "interface": "public", "region_id": "r1", "url": "http://c/v3/p1" }
            ]}
        ]))
        .expect("catalog")
    }

    #[test]
    fn endpoint_by_type_interface_and_region() {
        let c = catalog();
        assert_eq!(
            find_endpoint(&c, &["compute"], "public", Some("r1")).as_deref(),
            Some("http://a/v2.1")
        );
        assert_eq!(
            find_endpoint(&c, &["compute"], "public", Some("r2")).as_deref(),
            Some("http://b/v2.1")
        );
        assert_eq!(
            find_endpoint(&c, &["compute"], "admin", Some("r1")).as_deref(),
            Some("http://a/admin")
        );
        assert_eq!(find_endpoint(&c, &["compute"], "public", Some("r3")), None);
        assert_eq!(
            find_endpoint(&c, &["block-storage", "volumev3"], "public", Some("r1")).as_deref(),
            Some("http://c/v3/p1")
        );
        assert_eq!(find_endpoint(&c, &["image"], "public", None), None);
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let now = Utc::now();
        let margin = std::time::Duration::from_secs(300);
        assert!(fresh(now + chrono::Duration::seconds(3600), now, margin));
        assert!(!fresh(now + chrono::Duration::seconds(299), now, margin));
        assert!(!fresh(now - chrono::Duration::seconds(1), now, margin));
    }

    #[test]
    fn auth_url_always_ends_in_v3() {
        assert_eq!(normalize_auth_url("http://k:5000"), "http://k:5000/v3");
        assert_eq!(normalize_auth_url("http://k:5000/v3/"), "http://k:5000/v3");
        assert_eq!(
            normalize_auth_url("http://k/identity/"),
            "http://k/identity/v3"
        );
    }
}
