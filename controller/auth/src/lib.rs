//! `yunshu-auth`: who is calling Yunshu's northbound gRPC API.
//!
//! A tower layer ([`AuthLayer`]) authenticates every request by one of three
//! methods, maps the identity to a department and role through the
//! [`IdentityIndex`] (built from the Department objects'
//! `spec.identities`), and puts a [`Principal`] into the request's
//! extensions. Refused requests are answered by the layer with
//! `UNAUTHENTICATED` (missing or bad credentials), `PERMISSION_DENIED` (a
//! valid identity that belongs to no department) or `UNAVAILABLE` (the
//! OIDC keys cannot be fetched), with a fixed message that never repeats a
//! credential, and are counted by [`RejectReason`] ([`Authenticator::stats`]).
//! Deciding what a principal may do is the services' business.
//!
//! # Configuring
//!
//! [`AuthConfig`] is read from the server's configuration (camelCase keys;
//! unknown keys are refused). A method whose section is absent is off.
//!
//! ```yaml
//! mtls:
//!   clientCaFile: /etc/yunshu/client-ca.pem   # PEM bundle of trusted client CAs
//!   requireClientCert: false                   # default: optional, so token users connect too
//! oidc:
//!   issuer: https://sso.city.example/realms/gov   # exact `iss`
//!   audience: yunshu                               # must be in `aud`
//!   jwks: {url: https://sso.city.example/realms/gov/protocol/openid-connect/certs}
//!   # or: jwks: {file: /etc/yunshu/jwks.json}
//!   jwksCaFile: /etc/yunshu/sso-ca.pem   # optional; system roots otherwise
//!   leewaySecs: 60                       # clock skew on exp/nbf, at most 300
//!   groupsClaim: groups                  # claim with the caller's groups
//!   jwksRefreshIntervalSecs: 30          # least time between JWKS fetches (≥ 1)
//!   jwksMaxAgeSecs: 900                  # refetched in the background after this
//!   jwksFetchTimeoutSecs: 5
//! apiTokens: true                        # default
//! publicPaths: ["/grpc.health.v1.Health/"]   # served without credentials
//! watchRecheckSecs: 30                   # open watches check their credentials again
//! ```
//!
//! ## Mutual TLS
//!
//! Build the server's TLS settings with [`server_tls_config`]: rustls then
//! verifies client certificates against `clientCaFile` during the
//! handshake, so a certificate from another CA (or an expired one) fails
//! the connection itself. With `requireClientCert: false` a client may
//! connect without a certificate and authenticate with a token instead.
//! The leaf certificate's subject CN (exactly one) is looked up among the
//! departments' `CertificateSubject` identities. To cut a certificate off,
//! remove its identity from the Department; the change applies to the next
//! request.
//!
//! ## OIDC bearer tokens
//!
//! Clients send `authorization: Bearer <JWT>`. Only RS256 and ES256 are
//! accepted (`none` and HS* are refused whatever key they name); `kid` is
//! required; the keys come from the JWKS file or URL, are cached, and are
//! refetched when a token names an unknown `kid` (at most once per
//! `jwksRefreshIntervalSecs`). `iss`, `aud`, `exp` and `nbf` are checked
//! (see [`oidc`] for the order). The `sub` claim is matched
//! against `OidcSubject` identities and the groups claim against
//! `OidcGroup` identities; a subject grant is more specific than a group
//! grant (see [`index`]). A JWKS URL must be `https`, or `http` to a
//! loopback address.
//!
//! ## API tokens
//!
//! Clients send `authorization: Bearer ysk_<id>_<secret>`. Mint one with
//! [`mint_api_token`], hand `token` to its owner once, and store
//! [`MintedToken::identity`] (the id and the SHA-256 of the whole token) in
//! the Department. Set `revoked: true` on the identity to refuse the token.
//!
//! ## Departments and the `x-yunshu-department` header
//!
//! An identity granted in several departments names the one it acts for in
//! the [`DEPARTMENT_HEADER`]; without it, the request is refused as
//! ambiguous unless the most specific grants point to one department. An
//! admin may also name a department it holds no grant in, and acts there
//! by its admin grant.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn serve(config: yunshu_auth::AuthConfig, departments: Vec<yunshu_core::model::Department>,
//! #     cert: Vec<u8>, key: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use tonic::transport::{Identity, Server};
//! use yunshu_auth::{Authenticator, IdentityIndex, server_tls_config};
//!
//! let index = IdentityIndex::from_departments(&departments); // update on watch events
//! let auth = Authenticator::new(&config, index.clone()).await?;
//! let tls = server_tls_config(Identity::from_pem(cert, key), config.mtls.as_ref())?;
//! # let (_, health) = tonic_health::server::health_reporter();
//! Server::builder()
//!     .tls_config(tls)?
//!     .layer(auth.layer())
//!     .add_service(health)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Handlers read the caller with `request.extensions().get::<Principal>()`.

pub mod authenticator;
pub mod config;
pub mod error;
pub mod index;
pub mod layer;
pub mod mtls;
pub mod oidc;
pub mod principal;
pub mod reject;
pub mod token;

pub use authenticator::{Authenticator, DEPARTMENT_HEADER};
pub use config::{AuthConfig, JwksSource, MtlsConfig, OidcConfig};
pub use error::{AuthError, Result};
pub use index::{IdentityIndex, Membership};
pub use layer::{AuthLayer, AuthService};
pub use mtls::server_tls_config;
pub use principal::{AuthMethod, Principal};
pub use reject::{AuthStats, RejectReason};
pub use token::{
    ApiTokenSecret, MintedToken, hash_api_token, mint_api_token, mint_api_token_with_id,
};
