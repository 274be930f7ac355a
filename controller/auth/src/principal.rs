//! The authenticated caller, as the auth layer hands it to services in the
//! request's extensions.

use std::fmt;

use yunshu_core::model::Role;

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A client certificate from a trusted CA (mutual TLS).
    Mtls,
    /// An OIDC bearer JWT.
    Oidc,
    /// A static API token (`ysk_…`).
    ApiToken,
}

impl AuthMethod {
    /// Every method, in a fixed order.
    pub const ALL: [Self; 3] = [Self::Mtls, Self::Oidc, Self::ApiToken];

    /// A short, stable, lower-case name for metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mtls => "mtls",
            Self::Oidc => "oidc",
            Self::ApiToken => "api_token",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling: put into `http::Request::extensions` by
/// [`AuthService`](crate::AuthService) for every authenticated request.
///
/// Read it in a tonic handler with `request.extensions().get::<Principal>()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The department the caller acts for (the Department object's name).
    pub department: String,
    /// Who the caller is: the certificate's subject CN, the token's `sub`,
    /// or the API token's id. Never a secret.
    pub subject: String,
    /// What the caller may do in that department.
    pub role: Role,
    /// How the caller authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// The caller as `yunshu-core` knows it (no authentication method), for
    /// services that are generic over core.
    pub fn to_core(&self) -> yunshu_core::principal::Principal {
        yunshu_core::principal::Principal {
            department: self.department.clone(),
            subject: self.subject.clone(),
            role: self.role,
        }
    }

    /// Whether the caller's role is at least `role`
    /// (viewer < operator < admin).
    pub fn has_role(&self, role: Role) -> bool {
        self.role >= role
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} in {} via {}",
            self.subject, self.role, self.department, self.method
        )
    }
}
