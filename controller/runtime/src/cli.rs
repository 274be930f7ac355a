//! The `yunshu` command line: `serve` and `version`. Every flag has an
//! environment variable fallback, shown in `--help`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Yunshu (云枢): one control plane over a city's government clouds.
#[derive(Debug, Parser)]
#[command(name = "yunshu", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Serve(Box<ServeArgs>),
    /// Print the version and build information.
    Version,
    /// Write the CRD YAML (crds/yunshu.io_crds.yaml and the chart's copy)
    /// from the Rust types.
    Crdgen(CrdgenArgs),
    /// Mint a department API token: prints the token once and the identity
    /// (id and SHA-256) to add to the department's `spec.identities`.
    Token(TokenArgs),
}

/// Flags of `yunshu crdgen`.
#[derive(Debug, Clone, Args)]
pub struct CrdgenArgs {
    /// The repository root the files are written under.
    #[arg(long, env = "YUNSHU_CRDGEN_ROOT", default_value = ".")]
    pub root: PathBuf,
}

/// Flags of `yunshu token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The token's public id, e.g. `ci` or a person's login.
    #[arg(long, env = "YUNSHU_TOKEN_ID")]
    pub id: String,
    /// The role the identity grants: viewer, operator or admin.
    #[arg(long, env = "YUNSHU_TOKEN_ROLE", default_value = "operator", value_parser = ["viewer", "operator", "admin"])]
    pub role: String,
    /// Also write the token (only the token) to this file, mode 0600.
    /// (Not `YUNSHU_TOKEN_FILE`: that names the token `yunshuctl` reads.)
    #[arg(long, env = "YUNSHU_TOKEN_OUT")]
    pub out: Option<PathBuf>,
}

/// Which store backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// A redb file under --data-dir (single replica, zero setup).
    Embedded,
    /// An in-memory store that forgets everything on exit (demos and tests).
    Memory,
    /// An etcd cluster at --etcd-endpoints (several replicas may share it).
    Etcd,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `yunshu serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Store backend.
    #[arg(long, env = "YUNSHU_STORE", value_enum, default_value = "embedded")]
    pub store: StoreKind,
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "YUNSHU_DATA_DIR", default_value = "./yunshu-data")]
    pub data_dir: PathBuf,
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(
        long,
        env = "YUNSHU_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_endpoints: Vec<String>,
    /// The etcd server's --max-txn-ops; bounds admission batches.
    #[arg(long, env = "YUNSHU_ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub etcd_max_txn_ops: usize,
    /// Deadline of each etcd request, e.g. `5s`, `500ms`.
    #[arg(long, env = "YUNSHU_ETCD_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub etcd_timeout: Duration,
    /// Address of the gRPC API (departments and admins).
    #[arg(long, env = "YUNSHU_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Server certificate (PEM) for TLS on the gRPC API; plaintext without it.
    #[arg(long, env = "YUNSHU_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for --tls-cert.
    #[arg(long, env = "YUNSHU_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the gRPC API without TLS on an address other than loopback,
    /// where tokens would cross the network in clear text: only behind a
    /// proxy or mesh that encrypts the traffic.
    #[arg(long, env = "YUNSHU_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
    /// Standalone configuration file: catalog, departments, foundations, policies, auth.
    #[arg(long, env = "YUNSHU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the admin HTTP server (/healthz, /readyz, /version, /metrics).
    #[arg(long, env = "YUNSHU_ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
    /// Most requests admission folds into one store transaction.
    #[arg(long, env = "YUNSHU_ADMISSION_MAX_BATCH", default_value_t = 64)]
    pub admission_max_batch: usize,
    /// How long shutdown waits for in-flight work after SIGTERM/SIGINT.
    #[arg(long, env = "YUNSHU_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How often each driven foundation is probed for health and inventory.
    #[arg(long, env = "YUNSHU_PROBE_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub probe_interval: Duration,
    /// How long a foundation may fail its probes before it counts as Down (Degraded until then).
    #[arg(long, env = "YUNSHU_DOWN_AFTER", default_value = "5m", value_parser = parse_duration)]
    pub down_after: Duration,
    /// How often tagged cloud resources are compared with the store (orphans and drift are reported, never deleted).
    #[arg(long, env = "YUNSHU_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// How long a client request id is remembered: within it, a retried create, delete, start,
    /// stop, reboot, resize, attach, detach, credential issue or admin update gets the first call's
    /// answer and is not carried out again; after it, the id is forgotten and a retry is a new request (a create finds
    /// the name taken, ALREADY_EXISTS, or makes a new object if the first was deleted; a delete finds
    /// nothing, NOT_FOUND, or deletes an object made again under the name). Swept at least every
    /// 10 minutes (every eighth of it when shorter); a reboot or credential issue still under way
    /// is kept at least 5 minutes whatever this says, until a retry may take it over anyway.
    #[arg(long, env = "YUNSHU_REQUEST_RETENTION", default_value = "24h", value_parser = parse_period)]
    pub request_retention: Duration,
    /// How often what each department holds on each foundation is metered into its monthly bill.
    #[arg(long, env = "YUNSHU_METER_INTERVAL", default_value = "60s", value_parser = parse_period)]
    pub meter_interval: Duration,
    /// The ISO 4217 code of the currency foundation tariffs are in; bills are in it.
    #[arg(long, env = "YUNSHU_CURRENCY", default_value = "CNY", value_parser = parse_currency)]
    pub currency: String,
    /// Objects the provisioner works on at once.
    #[arg(long, env = "YUNSHU_PROVISION_WORKERS", default_value_t = 16)]
    pub provision_workers: usize,
    /// Deadline of one adapter call attempt (the call stack retries throttled and unavailable answers).
    #[arg(long, env = "YUNSHU_ADAPTER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub adapter_timeout: Duration,
    /// Directory of master keys that seal secrets at rest (one file per key, base64 of 32 bytes, plus a
    /// `primary` file naming the active one; a mounted Kubernetes Secret has this shape). Defaults to
    /// `<data-dir>/master-keys`, created with a fresh key when missing; with `--store memory`, a key
    /// that lives only as long as the process.
    #[arg(long, env = "YUNSHU_MASTER_KEYS")]
    pub master_keys: Option<PathBuf>,
    /// Run the Kubernetes operator too: sync the CRs into the store, write their status back,
    /// read foundation credentials from the Secrets they name (in-cluster or kubeconfig credentials).
    #[arg(long, env = "YUNSHU_KUBERNETES")]
    pub kubernetes: bool,
    /// The namespace of the operator's Lease and, by default, of foundation Secrets.
    #[arg(long, env = "YUNSHU_NAMESPACE", default_value = "yunshu-system")]
    pub namespace: String,
    /// Namespaces whose Secrets foundations name for their credentials, comma-separated: the
    /// operator watches Secrets there only (so a namespaced Role suffices) and notices a created or
    /// rotated Secret at once. Empty: every namespace, which needs cluster-wide read access.
    #[arg(long, env = "YUNSHU_SECRET_NAMESPACES", value_delimiter = ',')]
    pub secret_namespaces: Vec<String>,
    /// This replica's identity in the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME", default_value = "yunshu")]
    pub identity: String,
    /// Log filter in `tracing` syntax, e.g. `info` or `yunshu=debug,info`.
    #[arg(long, env = "YUNSHU_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, env = "YUNSHU_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 5s, 2m or 24h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("`{s}`: unit must be ms, s, m or h")),
    }
}

/// An ISO 4217 currency code.
pub fn parse_currency(s: &str) -> Result<String, String> {
    yunshu_core::billing::check_currency(s).map(|()| s.to_owned())
}

/// A period of at least a second: a request retention (a shorter one would
/// forget request ids before a client could retry) or a meter interval.
pub fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}`: must be at least 1s"));
    }
    Ok(d)
}

/// Entry point of the `yunshu` binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("yunshu {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Token(args) => crate::token::mint(&args),
        Command::Crdgen(args) => {
            for path in
                yunshu_crds::write(&args.root).map_err(|e| anyhow::anyhow!("crdgen: {e}"))?
            {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Serve(args) => {
            crate::telemetry::init(&args.log, args.log_format)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::serve::run(*args))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed_and_every_flag_is_documented() {
        Cli::command().debug_assert();
        let serve = Cli::command()
            .find_subcommand("serve")
            .cloned()
            .expect("serve");
        for arg in serve.get_arguments().filter(|a| a.get_long().is_some()) {
            assert!(
                arg.get_help().is_some(),
                "--{} has no help",
                arg.get_long().unwrap_or_default()
            );
            if !matches!(arg.get_long(), Some("help" | "version")) {
                assert!(
                    arg.get_env().is_some(),
                    "--{} has no env fallback",
                    arg.get_long().unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_period("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_period("500ms").is_err_and(|e| e.contains("at least 1s")));
        assert_eq!(parse_currency("EUR"), Ok("EUR".to_owned()));
        assert!(parse_currency("yuan").is_err_and(|e| e.contains("ISO 4217")));
    }
}
