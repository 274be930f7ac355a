//! The configuration file and the settings in effect.
//!
//! The file is YAML, at `--config`, `$YUNSHUCTL_CONFIG`, or by default
//! `$XDG_CONFIG_HOME/yunshu/config.yaml` (`~/.config/yunshu/config.yaml`).
//! Keys are camelCase like the server's configuration; the snake_case
//! spellings (`token_file`, …) are accepted too. Unknown keys are refused so
//! a typo cannot silently drop a setting. Relative paths are relative to the
//! file's directory, and `~/` is the home directory.
//!
//! ```yaml
//! endpoint: https://yunshu.city.example:8443   # or http:// for a local server
//! department: health
//! tokenFile: ~/.config/yunshu/token   # an API token (ysk_…) or OIDC JWT, one line
//! # token: ysk_…                      # inline instead of tokenFile
//! caFile: /etc/yunshu/ca.pem          # the server's CA; system roots otherwise
//! # clientCertFile: health-ci.pem     # mutual TLS instead of (or besides) a token
//! # clientKeyFile: health-ci-key.pem
//! ```
//!
//! Precedence, highest first: flags, environment variables, the file. For
//! the token: `--token`/`YUNSHU_TOKEN`, then `--token-file`/
//! `YUNSHU_TOKEN_FILE`, then the file's `token`, then its `tokenFile`.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    cli::GlobalArgs,
    error::{Error, Result},
};

/// The configuration file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// The API endpoint, `https://host:port` or `http://host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The department to act for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// A bearer token, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "token_file")]
    pub token_file: Option<PathBuf>,
    /// The CA bundle (PEM) that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "ca_file")]
    pub ca_file: Option<PathBuf>,
    /// The client certificate (PEM) for mutual TLS.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "client_cert_file"
    )]
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "client_key_file"
    )]
    pub client_key_file: Option<PathBuf>,
}

/// A secret string: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given inline (flag, environment or file).
    Inline(Secret),
    /// Read from a file on every run.
    File(PathBuf),
}

/// Everything a command needs to reach the API, resolved from flags,
/// environment and file. Build one directly to run commands in-process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The endpoint, `http://…` or `https://…`.
    pub endpoint: String,
    /// The department to act for; department commands need it.
    pub department: Option<String>,
    /// The bearer token, if any.
    pub token: Option<TokenSource>,
    /// The server's CA bundle (https only); system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS (https only).
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// The deadline of each unary call.
    pub request_timeout: Duration,
}

impl Settings {
    /// Settings for `endpoint` with no credentials and a 30 s deadline.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            department: None,
            token: None,
            ca_file: None,
            client_identity: None,
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Resolves the settings from the flags and the file they name.
    pub fn resolve(global: &GlobalArgs) -> Result<Self> {
        let (path, explicit) = config_path(global)?;
        let file = match load(&path) {
            Ok(file) => file,
            Err(Error::ReadFile { source, .. })
                if !explicit && source.kind() == std::io::ErrorKind::NotFound =>
            {
                ConfigFile::default()
            }
            Err(e) => return Err(e),
        };
        Self::merge(global, &file, &path)
    }

    /// Merges flags over a file read from `path`.
    pub fn merge(global: &GlobalArgs, file: &ConfigFile, path: &Path) -> Result<Self> {
        // Which one wins would be a guess, and a stale inline token beside a
        // refreshed token file fails every call.
        if file.token.is_some() && file.token_file.is_some() {
            return Err(Error::Usage(format!(
                "{} sets both token and tokenFile; keep one",
                path.display()
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let in_file = |p: &Option<PathBuf>| p.as_deref().map(|p| resolve_path(base, p));
        let endpoint = global
            .endpoint
            .clone()
            .or_else(|| file.endpoint.clone())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no endpoint: pass --endpoint, set YUNSHU_ENDPOINT, or run \
                     `yunshuctl config init --endpoint URL` (looked in {})",
                    path.display()
                ))
            })?;
        let token = if let Some(t) = &global.token {
            Some(TokenSource::Inline(Secret::new(t.clone())))
        } else if let Some(f) = &global.token_file {
            Some(TokenSource::File(expand_home(f)))
        } else if let Some(t) = &file.token {
            Some(TokenSource::Inline(t.clone()))
        } else {
            in_file(&file.token_file).map(TokenSource::File)
        };
        let cert = global
            .client_cert
            .as_deref()
            .map(expand_home)
            .or_else(|| in_file(&file.client_cert_file));
        let key = global
            .client_key
            .as_deref()
            .map(expand_home)
            .or_else(|| in_file(&file.client_key_file));
        let client_identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(Error::Usage(
                    "a client certificate needs its key and the other way round \
                     (clientCertFile and clientKeyFile)"
                        .into(),
                ));
            }
        };
        let settings = Self {
            endpoint,
            department: global
                .department
                .clone()
                .or_else(|| file.department.clone()),
            token,
            ca_file: global
                .ca_file
                .as_deref()
                .map(expand_home)
                .or_else(|| in_file(&file.ca_file)),
            client_identity,
            request_timeout: global.request_timeout,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the endpoint's scheme and that TLS files come with https.
    pub fn validate(&self) -> Result<()> {
        let tls = if self.endpoint.starts_with("https://") {
            true
        } else if self.endpoint.starts_with("http://") {
            false
        } else {
            return Err(Error::Usage(format!(
                "endpoint `{}` must start with https:// or http://",
                self.endpoint
            )));
        };
        if !tls && (self.ca_file.is_some() || self.client_identity.is_some()) {
            return Err(Error::Usage(format!(
                "a CA file or client certificate needs an https:// endpoint, not `{}`",
                self.endpoint
            )));
        }
        Ok(())
    }

    /// Whether the endpoint uses TLS.
    pub fn is_tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// `departments/{department}`, or a usage error saying how to set it.
    pub fn parent(&self) -> Result<String> {
        match &self.department {
            Some(d) if !d.is_empty() => Ok(format!("departments/{d}")),
            _ => Err(Error::Usage(
                "no department: pass --department, set YUNSHU_DEPARTMENT, or add \
                 `department:` to the configuration file"
                    .into(),
            )),
        }
    }

    /// The token to send, read from its file if need be.
    pub fn read_token(&self) -> Result<Option<Secret>> {
        match &self.token {
            None => Ok(None),
            Some(TokenSource::Inline(t)) => Ok(Some(t.clone())),
            Some(TokenSource::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                    what: "token file",
                    path: path.clone(),
                    source,
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(Error::Usage(format!(
                        "the token file {} is empty",
                        path.display()
                    )));
                }
                Ok(Some(Secret::new(token)))
            }
        }
    }
}

/// The configuration file's path, and whether the user named it.
pub fn config_path(global: &GlobalArgs) -> Result<(PathBuf, bool)> {
    if let Some(p) = &global.config {
        return Ok((expand_home(p), true));
    }
    default_path().map(|p| (p, false)).ok_or_else(|| {
        Error::Usage("neither XDG_CONFIG_HOME nor HOME is set; pass --config".into())
    })
}

/// `$XDG_CONFIG_HOME/yunshu/config.yaml`, else `$HOME/.config/yunshu/config.yaml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("yunshu").join("config.yaml"))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads a configuration file.
pub fn load(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        what: "configuration file",
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_yaml::from_str(&text).map_err(|source| Error::ParseConfig {
        path: path.to_owned(),
        source,
    })
}

/// `~/x` → `$HOME/x`; anything else unchanged.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), home()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => p.to_owned(),
    }
}

/// A path from the file: `~/` expanded, relative ones under `base`.
fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    let p = expand_home(p);
    if p.is_absolute() { p } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn global(args: &[&str]) -> GlobalArgs {
        Cli::try_parse_from(
            ["yunshuctl"]
                .into_iter()
                .chain(args.iter().copied())
                .chain(["quota"]),
        )
        .expect("parses")
        .global
    }

    fn file(yaml: &str) -> ConfigFile {
        serde_yaml::from_str(yaml).expect("valid")
    }

    #[test]
    fn the_file_fills_what_flags_leave_out() {
        let f = file(
            "endpoint: https://yunshu.example:8443\ndepartment: health\n\
             tokenFile: token\ncaFile: /etc/yunshu/ca.pem\n",
        );
        let s = Settings::merge(
            &global(&[]),
            &f,
            Path::new("/home/u/.config/yunshu/config.yaml"),
        )
        .expect("valid");
        assert_eq!(s.endpoint, "https://yunshu.example:8443");
        assert_eq!(s.parent().expect("department"), "departments/health");
        assert_eq!(
            s.token,
            Some(TokenSource::File("/home/u/.config/yunshu/token".into()))
        );
        assert_eq!(s.ca_file, Some("/etc/yunshu/ca.pem".into()));
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = file("endpoint: https://a.example\ndepartment: health\ntoken: from-file\n");
        let s = Settings::merge(
            &global(&[
                "--endpoint",
                "http://127.0.0.1:50051",
                "-d",
                "transport",
                "--token",
                "t",
            ]),
            &f,
            Path::new("c.yaml"),
        )
        .expect("valid");
        assert_eq!(s.endpoint, "http://127.0.0.1:50051");
        assert_eq!(s.department.as_deref(), Some("transport"));
        assert_eq!(s.token, Some(TokenSource::Inline(Secret::new("t"))));
    }

    #[test]
    fn snake_case_keys_are_accepted_and_typos_refused() {
        let f = file(
            "endpoint: http://x:1\ntoken_file: /t\nclient_cert_file: /c\nclient_key_file: /k\n",
        );
        assert_eq!(f.token_file, Some("/t".into()));
        assert_eq!(f.client_key_file, Some("/k".into()));
        let err = serde_yaml::from_str::<ConfigFile>("endpont: http://x:1\n").expect_err("typo");
        assert!(err.to_string().contains("endpont"), "{err}");
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        let no_endpoint = Settings::merge(&global(&[]), &ConfigFile::default(), Path::new("c"));
        assert!(matches!(no_endpoint, Err(Error::Usage(m)) if m.contains("config init")));
        let scheme = Settings::merge(
            &global(&["--endpoint", "yunshu:443"]),
            &ConfigFile::default(),
            Path::new("c"),
        );
        assert!(matches!(scheme, Err(Error::Usage(m)) if m.contains("https://")));
        let ca_on_http = Settings::merge(
            &global(&["--endpoint", "http://x:1", "--ca-file", "/ca.pem"]),
            &ConfigFile::default(),
            Path::new("c"),
        );
        assert!(matches!(ca_on_http, Err(Error::Usage(_))));
        let half_identity = Settings::merge(
            &global(&["--endpoint", "https://x:1", "--client-cert", "/c.pem"]),
            &ConfigFile::default(),
            Path::new("c"),
        );
        assert!(matches!(half_identity, Err(Error::Usage(m)) if m.contains("key")));
        let no_department = Settings::new("http://x:1").parent();
        assert!(matches!(no_department, Err(Error::Usage(m)) if m.contains("--department")));
    }

    #[test]
    fn tokens_never_print() {
        let s = Secret::new("ysk_abc_supersecret");
        assert!(!format!("{s:?} {s}").contains("supersecret"));
        let settings = Settings {
            token: Some(TokenSource::Inline(s)),
            ..Settings::new("http://x:1")
        };
        assert!(!format!("{settings:?}").contains("supersecret"));
    }

    #[test]
    fn token_files_are_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "ysk_id_secret\n").expect("write");
        let mut s = Settings::new("http://x:1");
        s.token = Some(TokenSource::File(path.clone()));
        assert_eq!(
            s.read_token().expect("reads"),
            Some(Secret::new("ysk_id_secret"))
        );
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(s.read_token(), Err(Error::Usage(_))));
        s.token = Some(TokenSource::File(dir.path().join("missing")));
        assert!(matches!(s.read_token(), Err(Error::ReadFile { .. })));
    }
}
