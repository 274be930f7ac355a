//! `yunshu token mint`: a department API token for the configuration file.
//! The token is printed once; only its SHA-256 goes into the department.

use std::io::Write;

use crate::cli::TokenArgs;

/// Mints a token and prints it with the identity to declare.
pub fn mint(args: &TokenArgs) -> anyhow::Result<()> {
    let id_ok = !args.id.is_empty()
        && args.id.len() <= 64
        && args
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    anyhow::ensure!(
        id_ok,
        "--id `{}`: must be 1-64 characters of letters, digits, '-' and '.'",
        args.id
    );
    let minted = yunshu_auth::mint_api_token_with_id(&args.id)
        .map_err(|e| anyhow::anyhow!("failed to mint a token: {e}"))?;
    if let Some(path) = &args.out {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            anyhow::anyhow!("--out {}: {e} (it is never overwritten)", path.display())
        })?;
        writeln!(file, "{}", minted.token.expose())?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "token (shown once; hand it to its owner): {}",
        minted.token.expose()
    )?;
    writeln!(
        out,
        "identity (add under the department's spec.identities):"
    )?;
    writeln!(
        out,
        "  - {{ type: apiToken, id: {}, sha256: \"{}\", role: {} }}",
        minted.id, minted.sha256, args.role
    )?;
    Ok(())
}
