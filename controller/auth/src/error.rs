//! Errors of setting authentication up: bad configuration, unreadable files,
//! a CA bundle or JWKS that cannot be used. Rejections of requests are not
//! errors of this kind; they are [`RejectReason`](crate::RejectReason)s.

use std::path::PathBuf;

/// A `Result` with [`AuthError`].
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A configuration value breaks a rule.
    #[error("invalid auth configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field, e.g. `oidc.leewaySecs`.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// A file named by the configuration could not be read.
    #[error("failed to read {what} from {}", path.display())]
    ReadFile {
        /// What the file should hold, e.g. "client CA bundle".
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate.
    #[error("failed to parse {what} from {}: {reason}", path.display())]
    ParsePem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong, without file contents.
        reason: String,
    },
    /// The JWKS could not be loaded at start-up.
    #[error("failed to load the OIDC signing keys (JWKS): {reason}")]
    LoadJwks {
        /// What went wrong.
        reason: String,
    },
    /// Building a TLS configuration failed.
    #[error("failed to build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The system random number generator failed.
    #[error("failed to draw random bytes for a token")]
    Random,
}

impl AuthError {
    /// A short, stable, lower-case name for metric labels and logs.
    pub const fn category(&self) -> &'static str {
        match self {
            Self::InvalidConfig { .. } => "invalid_config",
            Self::ReadFile { .. } => "read_file",
            Self::ParsePem { .. } => "parse_pem",
            Self::LoadJwks { .. } => "load_jwks",
            Self::Tls(_) => "tls",
            Self::Random => "random",
        }
    }

    /// The `yunshu-core` kind this error is: `Invalid` for configuration
    /// the operator must fix, `Unavailable` for I/O, `Internal` otherwise.
    pub const fn kind(&self) -> yunshu_core::ErrorKind {
        match self {
            Self::InvalidConfig { .. } | Self::ParsePem { .. } => yunshu_core::ErrorKind::Invalid,
            Self::ReadFile { .. } | Self::LoadJwks { .. } => yunshu_core::ErrorKind::Unavailable,
            Self::Tls(_) | Self::Random => yunshu_core::ErrorKind::Internal,
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
