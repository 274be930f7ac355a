//! Adapter configuration: tunables from the foundation's `settings`, the
//! Keystone auth method from its credentials, and a helper that reads the
//! e2e clouds (`e2e/openstack/up.sh`) into a spec and credentials.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use yunshu_core::{
    Error, Result,
    adapter::Credentials,
    model::{AdapterKind, FoundationSpec},
};

/// Tunables of one adapter. Every field has a default and can be set from the
/// foundation's `spec.settings` (keys in [`Config::from_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Whole-request timeout for every HTTP call (`request_timeout_secs`, 30).
    pub request_timeout: Duration,
    /// TCP connect timeout (`connect_timeout_secs`, 10).
    pub connect_timeout: Duration,
    /// Renew a token when less than this is left before it expires
    /// (`token_renew_before_secs`, 300).
    pub token_renew_before: Duration,
    /// Catalog interface to use (`interface`, `public`).
    pub interface: String,
    /// Role given to the department user on its project (`member_role`, `member`).
    pub member_role: String,
    /// Role the adapter's own user takes on department projects, so it can
    /// take project-scoped tokens that may do what Nova reserves to admins
    /// (zero-disk flavors) (`admin_role`, `admin`).
    pub admin_role: String,
    /// Keystone domain of department projects and users (`domain_id`, `default`).
    pub domain_id: String,
    /// How long a resize may take to reach `VERIFY_RESIZE` before the adapter
    /// gives up waiting to confirm it (`action_timeout_secs`, 120).
    pub action_timeout: Duration,
    /// Extra PEM CA certificate to trust (`ca_file`), for clouds behind a
    /// private CA; the system roots are always trusted.
    pub ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            token_renew_before: Duration::from_secs(300),
            interface: "public".to_owned(),
            member_role: "member".to_owned(),
            admin_role: "admin".to_owned(),
            domain_id: "default".to_owned(),
            action_timeout: Duration::from_secs(120),
            ca_file: None,
        }
    }
}

impl Config {
    /// Reads `request_timeout_secs`, `connect_timeout_secs`,
    /// `token_renew_before_secs`, `action_timeout_secs`, `interface`,
    /// `member_role`, `admin_role`, `domain_id` and `ca_file` from a foundation's settings;
    /// unknown keys are ignored (other components may use them).
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self> {
        let mut c = Self::default();
        let secs = |key: &str, into: &mut Duration| -> Result<()> {
            if let Some(v) = settings.get(key) {
                let n: u64 = v.trim().parse().map_err(|_| {
                    Error::invalid(
                        format!("spec.settings.{key}"),
                        "must be a whole number of seconds",
                    )
                })?;
                if n == 0 {
                    return Err(Error::invalid(
                        format!("spec.settings.{key}"),
                        "must be at least 1 second",
                    ));
                }
                *into = Duration::from_secs(n);
            }
            Ok(())
        };
        secs("request_timeout_secs", &mut c.request_timeout)?;
        secs("connect_timeout_secs", &mut c.connect_timeout)?;
        secs("token_renew_before_secs", &mut c.token_renew_before)?;
        secs("action_timeout_secs", &mut c.action_timeout)?;
        for (key, into) in [
            ("interface", &mut c.interface),
            ("member_role", &mut c.member_role),
            ("admin_role", &mut c.admin_role),
            ("domain_id", &mut c.domain_id),
        ] {
            if let Some(v) = settings.get(key).filter(|v| !v.trim().is_empty()) {
                v.trim().clone_into(into);
            }
        }
        c.ca_file = settings.get("ca_file").map(PathBuf::from);
        Ok(c)
    }
}

/// Which project a password login is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProjectRef {
    /// By id.
    Id(String),
    /// By name within a domain (by name).
    Name { name: String, domain_name: String },
}

/// How the adapter logs in to Keystone. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Keystone `password` method, scoped to the admin project.
    Password {
        username: String,
        password: String,
        user_domain_name: String,
        project: ProjectRef,
    },
    /// Keystone `application_credential` method (the scope is fixed by the
    /// credential itself, so it cannot re-scope to department projects).
    AppCredential { id: String, secret: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password {
                username, project, ..
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("project", project)
                .field("password", &"<redacted>")
                .finish(),
            Self::AppCredential { id, .. } => f
                .debug_struct("AppCredential")
                .field("id", id)
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

impl Auth {
    /// Reads the auth method from credentials: `application_credential_id` +
    /// `application_credential_secret`, or `username`, `password`,
    /// `project_name` (or `project_id`), `user_domain_name` and
    /// `project_domain_name` (both default `Default`).
    pub(crate) fn from_credentials(c: &Credentials) -> Result<Self> {
        if let Some(id) = c.get("application_credential_id") {
            let secret = c.require("application_credential_secret")?;
            return Ok(Self::AppCredential {
                id: id.to_owned(),
                secret: secret.to_owned(),
            });
        }
        let username = c.require("username")?.to_owned();
        let password = c.require("password")?.to_owned();
        let project = match c.get("project_id") {
            Some(id) => ProjectRef::Id(id.to_owned()),
            None => ProjectRef::Name {
                name: c.require("project_name")?.to_owned(),
                domain_name: c.get("project_domain_name").unwrap_or("Default").to_owned(),
            },
        };
        Ok(Self::Password {
            username,
            password,
            user_domain_name: c.get("user_domain_name").unwrap_or("Default").to_owned(),
            project,
        })
    }

    /// The user, for messages.
    pub(crate) fn principal(&self) -> String {
        match self {
            Self::Password { username, .. } => format!("user `{username}`"),
            Self::AppCredential { id, .. } => format!("application credential `{id}`"),
        }
    }
}

/// One cloud started by `e2e/openstack/up.sh`, ready to build an adapter.
#[derive(Debug, Clone)]
pub struct E2eCloud {
    /// The cloud's name (`x86-cloud`, `kunpeng-cloud`).
    pub name: String,
    /// A foundation spec pointing at its Keystone and region.
    pub spec: FoundationSpec,
    /// Its admin credentials.
    pub credentials: Credentials,
    /// Its compute architecture (`x86_64`, `aarch64`).
    pub arch: String,
}

/// Reads cloud `cloud` from `STATE/clouds.json`, the file `e2e/openstack/up.sh`
/// writes (admin auth data, region and arch of each cloud).
pub fn e2e_cloud(state_dir: &Path, cloud: &str) -> Result<E2eCloud> {
    let path = state_dir.join("clouds.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::invalid(
            "YUNSHU_OPENSTACK_STATE",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let all: BTreeMap<String, BTreeMap<String, serde_json::Value>> = serde_json::from_str(&text)
        .map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("is not clouds.json: {e}"),
            )
        })?;
    let entry = all.get(cloud).ok_or_else(|| {
        Error::invalid(
            path.display().to_string(),
            format!(
                "has no cloud `{cloud}` (has: {})",
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let field = |k: &str| -> Result<String> {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::invalid(format!("{}: {cloud}.{k}", path.display()), "is required")
            })
    };
    let arch = field("arch")?;
    let spec: FoundationSpec = serde_json::from_value(serde_json::json!({
        "adapter": AdapterKind::Openstack,
        "endpoint": field("auth_url")?,
        "region": field("region_name")?,
        "traits": [format!("arch:{arch}")],
    }))
    .map_err(|e| Error::internal(format!("building the spec of {cloud}: {e}")))?;
    let mut creds = BTreeMap::new();
    for k in [
        "username",
        "password",
        "project_name",
        "user_domain_name",
        "project_domain_name",
    ] {
        creds.insert(k.to_owned(), field(k)?);
    }
    Ok(E2eCloud {
        name: cloud.to_owned(),
        spec,
        credentials: Credentials(creds),
        arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(pairs: &[(&str, &str)]) -> Credentials {
        Credentials(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn password_auth_defaults_domains() {
        let a = Auth::from_credentials(&creds(&[
            ("username", "admin"),
            ("password", "pw"),
            ("project_name", "admin"),
        ]))
        .expect("valid");
        assert_eq!(
            a,
            Auth::Password {
                username: "admin".into(),
                password: "pw".into(),
                user_domain_name: "Default".into(),
                project: ProjectRef::Name {
                    name: "admin".into(),
                    domain_name: "Default".into()
                },
            }
        );
        assert!(!format!("{a:?}").contains("pw\""));
    }

    #[test]
    fn missing_keys_are_named() {
        let e = Auth::from_credentials(&creds(&[("username", "admin")])).expect_err("no password");
        assert!(e.to_string().contains("credentials.password"), "{e}");
        let e = Auth::from_credentials(&creds(&[("application_credential_id", "x")]))
            .expect_err("no secret");
        assert!(
            e.to_string()
                .contains("credentials.application_credential_secret"),
            "{e}"
        );
    }

    #[test]
    fn app_credential_wins_and_is_redacted() {
        let a = Auth::from_credentials(&creds(&[
            ("application_credential_id", "id1"),
            ("application_credential_secret", "topsecret"),
        ]))
        .expect("valid");
        assert!(matches!(a, Auth::AppCredential { .. }));
        assert!(!format!("{a:?}").contains("topsecret"));
    }

    #[test]
    fn settings_parse_and_reject_bad_numbers() {
        let s: BTreeMap<String, String> = [
            ("request_timeout_secs".to_owned(), "5".to_owned()),
            ("interface".to_owned(), "internal".to_owned()),
        ]
        .into();
        let c = Config::from_settings(&s).expect("valid");
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(c.interface, "internal");
        let bad: BTreeMap<String, String> =
            [("request_timeout_secs".to_owned(), "5s".to_owned())].into();
        let e = Config::from_settings(&bad).expect_err("not a number");
        assert!(
            e.to_string().contains("spec.settings.request_timeout_secs"),
            "{e}"
        );
    }
}
