//! `config init` and `config show`.

use std::{fs, io::Write, path::Path};

use serde::Serialize;

use super::Io;
use crate::{
    cli::{ConfigCommand, GlobalArgs, InitArgs},
    config::{ConfigFile, Secret, Settings, TokenSource, config_path},
    error::{Error, Result},
    output::emit,
    table::Table,
};

/// Runs a `config` subcommand.
pub fn run(c: &ConfigCommand, global: &GlobalArgs, io: &mut Io<'_>) -> Result<()> {
    match c {
        ConfigCommand::Init(a) => init(a, global, io),
        ConfigCommand::Show => show(global, io),
    }
}

/// Absolute, so the file means the same wherever yunshuctl runs.
fn absolute(p: &Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// The file `config init` writes for these flags.
pub fn file_from_flags(global: &GlobalArgs) -> Result<ConfigFile> {
    let Some(endpoint) = global.endpoint.clone() else {
        return Err(Error::Usage(
            "config init needs --endpoint (e.g. https://yunshu.city.example:8443)".into(),
        ));
    };
    if global.token.is_some() && global.token_file.is_some() {
        return Err(Error::Usage(
            "config init got both a token (--token, or YUNSHU_TOKEN in the environment) and \
             --token-file; keep one (unset YUNSHU_TOKEN to save only the file)"
                .into(),
        ));
    }
    Ok(ConfigFile {
        endpoint: Some(endpoint),
        department: global.department.clone(),
        token: global.token.clone().map(Secret::new),
        token_file: global.token_file.as_deref().map(absolute),
        ca_file: global.ca_file.as_deref().map(absolute),
        client_cert_file: global.client_cert.as_deref().map(absolute),
        client_key_file: global.client_key.as_deref().map(absolute),
    })
}

fn init(a: &InitArgs, global: &GlobalArgs, io: &mut Io<'_>) -> Result<()> {
    let (path, _) = config_path(global)?;
    if path.exists() && !a.force {
        return Err(Error::ConfigExists { path });
    }
    let file = file_from_flags(global)?;
    // Refuse what could not be used: no scheme, half a client identity, …
    Settings::merge(&GlobalArgs::default(), &file, &path)?;
    let yaml = serde_yaml::to_string(&file).map_err(|e| Error::Encode(e.to_string()))?;
    let text = format!(
        "# yunshuctl configuration, written by `yunshuctl config init`.\n\
         # Keys: endpoint, department, token | tokenFile, caFile,\n\
         # clientCertFile + clientKeyFile. Flags and YUNSHU_* variables override it.\n\
         {yaml}"
    );
    write_private(&path, text.as_bytes())?;
    writeln!(io.out, "wrote {}", path.display())?;
    if file.department.is_none() {
        writeln!(
            io.err,
            "note: no department set; add `department:` or pass --department to each command"
        )?;
    }
    Ok(())
}

/// Writes `bytes` to `path`, readable only by the owner (it may hold a
/// token), creating the directory.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |source| Error::WriteFile {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut f = options.open(path).map_err(failed)?;
        // An existing file keeps its mode on open; tighten it.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
        f.write_all(bytes).map_err(failed)?;
    }
    #[cfg(not(unix))]
    {
        let mut f = options.open(path).map_err(failed)?;
        f.write_all(bytes).map_err(failed)?;
    }
    Ok(())
}

/// The settings in effect, as `config show` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct ShownConfig {
    /// The configuration file consulted.
    pub config_file: String,
    /// Whether it exists.
    pub config_file_found: bool,
    /// The endpoint.
    pub endpoint: String,
    /// The department.
    pub department: Option<String>,
    /// How the token is given, never the token: `file:/path`,
    /// `api-token:<id>`, `inline`, or null.
    pub token: Option<String>,
    /// The CA bundle.
    pub ca_file: Option<String>,
    /// The client certificate.
    pub client_cert_file: Option<String>,
    /// Its key.
    pub client_key_file: Option<String>,
}

/// Describes a token without revealing it: API tokens by their public id.
fn describe_token(t: &TokenSource) -> String {
    match t {
        TokenSource::File(p) => format!("file:{}", p.display()),
        TokenSource::Inline(s) => match api_token_id(s) {
            Some(id) => format!("api-token:{id}"),
            None => "inline".to_owned(),
        },
    }
}

fn api_token_id(s: &Secret) -> Option<&str> {
    let rest = s.expose().strip_prefix("ysk_")?;
    rest.split_once('_').map(|(id, _)| id)
}

fn show(global: &GlobalArgs, io: &mut Io<'_>) -> Result<()> {
    let (path, _) = config_path(global)?;
    let s = Settings::resolve(global)?;
    let shown = ShownConfig {
        config_file: path.display().to_string(),
        config_file_found: path.exists(),
        endpoint: s.endpoint.clone(),
        department: s.department.clone(),
        token: s.token.as_ref().map(describe_token),
        ca_file: s.ca_file.as_ref().map(|p| p.display().to_string()),
        client_cert_file: s
            .client_identity
            .as_ref()
            .map(|(c, _)| c.display().to_string()),
        client_key_file: s
            .client_identity
            .as_ref()
            .map(|(_, k)| k.display().to_string()),
    };
    let format = global.output;
    emit(format, &shown, io.out, |w| {
        let mut t = Table::headless();
        let found = if shown.config_file_found {
            ""
        } else {
            " (not found)"
        };
        t.row([
            "Config file:".to_owned(),
            format!("{}{found}", shown.config_file),
        ]);
        t.row(["Endpoint:", shown.endpoint.as_str()]);
        t.row([
            "Department:".to_owned(),
            shown.department.clone().unwrap_or_default(),
        ]);
        t.row(["Token:".to_owned(), shown.token.clone().unwrap_or_default()]);
        t.row([
            "CA file:".to_owned(),
            shown.ca_file.clone().unwrap_or_default(),
        ]);
        t.row([
            "Client certificate:".to_owned(),
            shown.client_cert_file.clone().unwrap_or_default(),
        ]);
        t.row([
            "Client key:".to_owned(),
            shown.client_key_file.clone().unwrap_or_default(),
        ]);
        t.render(w)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_are_shown_by_id_only() {
        let t = TokenSource::Inline(Secret::new("ysk_ci-deploy_0123456789abcdef"));
        assert_eq!(describe_token(&t), "api-token:ci-deploy");
        let jwt = TokenSource::Inline(Secret::new("eyJhbGciOiJSUzI1NiJ9.e30.sig"));
        assert_eq!(describe_token(&jwt), "inline");
    }
}
