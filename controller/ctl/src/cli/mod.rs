//! The command line, as clap derive types: the global flags and the
//! command tree here, each command's flags in `args` (re-exported). Every
//! flag's doc comment is its `--help` text.

mod actions;
mod args;

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use self::{actions::*, args::*};
use crate::{error::EXIT_CODES_HELP, units::parse_duration};

/// yunshuctl: request and watch instances, volumes and buckets on Yunshu (云枢).
///
/// Reads the endpoint, department and credentials from the configuration
/// file (`yunshuctl config init` writes one); flags and environment
/// variables override it.
#[derive(Debug, Clone, Parser)]
#[command(name = "yunshuctl", version, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Where to connect, as whom, and how to print.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts. Each overrides the configuration file.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The configuration file [default: $XDG_CONFIG_HOME/yunshu/config.yaml,
    /// else ~/.config/yunshu/config.yaml].
    #[arg(long, global = true, env = "YUNSHUCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The API endpoint, `https://host:port` (or `http://` for a local
    /// server without TLS).
    #[arg(long, global = true, env = "YUNSHU_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// The department to act for, e.g. `health`.
    #[arg(short, long, global = true, env = "YUNSHU_DEPARTMENT")]
    pub department: Option<String>,
    /// A bearer token: an API token (`ysk_…`) or an OIDC JWT. Prefer
    /// YUNSHU_TOKEN or --token-file: other users can see command lines.
    #[arg(long, global = true, env = "YUNSHU_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token, read on every run (so a refreshed
    /// OIDC token is picked up).
    #[arg(long, global = true, env = "YUNSHU_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM bundle of the CA that signed the server's certificate [default:
    /// the system's roots].
    #[arg(long, global = true, env = "YUNSHU_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --client-key.
    #[arg(long, global = true, env = "YUNSHU_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, global = true, env = "YUNSHU_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Output format.
    #[arg(
        short,
        long,
        global = true,
        env = "YUNSHUCTL_OUTPUT",
        value_enum,
        default_value_t = Format::Table
    )]
    pub output: Format,
    /// Deadline of each API call, e.g. `30s` (not of --wait or watch).
    #[arg(
        long,
        global = true,
        env = "YUNSHUCTL_REQUEST_TIMEOUT",
        default_value = "30s",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub request_timeout: Duration,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON with the API's field names (one object per line for `watch`).
    Json,
    /// YAML with the API's field names (one document per event for `watch`).
    Yaml,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write or show the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Request a new instance, volume or bucket.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Show one instance, volume or bucket.
    Get(GetArgs),
    /// List the department's instances, volumes or buckets.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Delete an instance, volume or bucket.
    #[command(alias = "rm")]
    Delete(DeleteArgs),
    /// Stream changes to the department's instances, volumes or buckets.
    Watch(WatchArgs),
    /// Power an instance on.
    #[command(subcommand)]
    Start(StartCommand),
    /// Power an instance off.
    #[command(subcommand)]
    Stop(StopCommand),
    /// Reboot a running instance.
    #[command(subcommand)]
    Reboot(RebootCommand),
    /// Change an instance's vCPUs and memory.
    #[command(subcommand)]
    Resize(ResizeCommand),
    /// Issue or revoke a bucket's S3 credentials.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Attach a volume to an instance.
    #[command(subcommand)]
    Attach(AttachCommand),
    /// Detach a volume from its instance.
    #[command(subcommand)]
    Detach(DetachCommand),
    /// Show the department's quota and usage.
    Quota,
    /// Show what the department may request: sizes, images, zones, foundations.
    Catalog,
    /// Show the department's bill for a month: use per foundation and resource, and its cost.
    Bill(BillArgs),
    /// Explain where a resource was placed, or why it could not be.
    Explain(ExplainArgs),
    /// Show where a request would be placed, without creating anything.
    #[command(subcommand, name = "dry-run")]
    DryRun(DryRunCommand),
}

/// `config` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Write a configuration file from the global flags (--endpoint,
    /// --department, --token-file, …).
    Init(InitArgs),
    /// Print the configuration in effect, with the token redacted.
    Show,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, error::ErrorKind};

    use super::*;
    use crate::resource::Kind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("yunshuctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create_instance_takes_sizes_traits_and_labels() {
        let cli = parse(&[
            "create",
            "instance",
            "web-1",
            "--vcpu",
            "4",
            "--memory",
            "8Gi",
            "--image",
            "kylin-v10",
            "--require",
            "xinchuang",
            "--require",
            "arch:aarch64",
            "--forbid",
            "legacy",
            "--zone",
            "az1",
            "-l",
            "app=web",
            "--label",
            "tier=front",
            "--wait",
            "--timeout",
            "5m",
            "-o",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, Format::Json);
        let Command::Create(CreateCommand::Instance(a)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(a.common.name, "web-1");
        assert_eq!((a.spec.vcpu, a.spec.memory, a.spec.disk), (4, 8192, 40));
        assert_eq!(
            a.spec.placement.required_traits,
            ["xinchuang", "arch:aarch64"]
        );
        assert_eq!(a.spec.placement.forbidden_traits, ["legacy"]);
        assert_eq!(a.spec.placement.zone.as_deref(), Some("az1"));
        assert_eq!(
            a.common.labels,
            [
                ("app".into(), "web".into()),
                ("tier".into(), "front".into())
            ]
        );
        assert!(a.common.wait.wait);
        assert_eq!(a.common.wait.timeout, Duration::from_secs(300));
        assert_eq!(a.common.request_id, None);
    }

    #[test]
    fn bucket_quotas_accept_quantities() {
        let cli = parse(&[
            "create",
            "bucket",
            "scans",
            "--quota-bytes",
            "10Gi",
            "--versioning",
            "--request-id",
            "r-1",
        ])
        .expect("parses");
        let Command::Create(CreateCommand::Bucket(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.spec.quota_bytes, 10 << 30);
        assert!(a.spec.versioning);
        assert_eq!(a.common.request_id.as_deref(), Some("r-1"));
        assert!(!a.common.wait.wait);
    }

    #[test]
    fn bad_sizes_are_usage_errors_naming_the_flag() {
        let err = parse(&[
            "create", "instance", "x", "--vcpu", "1", "--memory", "8G", "--image", "i",
        ])
        .expect_err("8G is ambiguous");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("--memory") && text.contains("did you mean Gi?"),
            "{text}"
        );
    }

    #[test]
    fn kinds_take_singular_and_plural() {
        for (word, kind) in [
            ("instance", Kind::Instance),
            ("instances", Kind::Instance),
            ("volumes", Kind::Volume),
            ("bucket", Kind::Bucket),
        ] {
            let cli = parse(&["list", word]).expect("parses");
            let Command::List(a) = cli.command else {
                panic!("wrong command");
            };
            assert_eq!(a.kind, kind);
        }
        assert!(parse(&["list", "foundations"]).is_err());
    }

    #[test]
    fn list_filters() {
        let cli = parse(&[
            "list",
            "instances",
            "--phase",
            "ready",
            "--phase",
            "failed",
            "-l",
            "app=web",
            "--limit",
            "5",
        ])
        .expect("parses");
        let Command::List(a) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.phase, [PhaseArg::Ready, PhaseArg::Failed]);
        assert_eq!(a.labels, [("app".into(), "web".into())]);
        assert_eq!(a.limit, Some(5));
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "get",
            "instance",
            "web-1",
            "--endpoint",
            "https://yunshu.example:8443",
            "-d",
            "health",
            "--config",
            "/tmp/c.yaml",
        ])
        .expect("parses");
        assert_eq!(
            cli.global.endpoint.as_deref(),
            Some("https://yunshu.example:8443")
        );
        assert_eq!(cli.global.department.as_deref(), Some("health"));
        assert_eq!(cli.global.config, Some(PathBuf::from("/tmp/c.yaml")));
    }

    #[test]
    fn missing_required_flags_are_usage_errors() {
        let err = parse(&["create", "instance", "web-1", "--vcpu", "4"]).expect_err("no memory");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(err.exit_code(), 2);
        assert!(parse(&["create", "volume", "v"]).is_err());
        assert!(parse(&["get", "instance"]).is_err());
    }

    #[test]
    fn labels_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_label("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_label("a="), Ok(("a".into(), String::new())));
        assert!(parse_label("a").is_err());
        assert!(parse_label("=b").is_err());
    }

    #[test]
    fn dry_run_and_config_parse() {
        let cli = parse(&[
            "dry-run", "instance", "--vcpu", "2", "--memory", "4096", "--image", "x",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::DryRun(DryRunCommand::Instance(_))
        ));
        let cli = parse(&[
            "config",
            "init",
            "--endpoint",
            "http://127.0.0.1:50051",
            "--force",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Config(ConfigCommand::Init(InitArgs { force: true }))
        ));
    }

    #[test]
    fn instance_actions_take_a_name_a_request_id_and_wait() {
        let cli =
            parse(&["stop", "instance", "web-1", "--wait", "--timeout", "2m"]).expect("parses");
        let Command::Stop(StopCommand::Instance(a)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(a.name, "web-1");
        assert!(a.wait.wait);
        assert_eq!(a.wait.timeout, Duration::from_secs(120));
        assert_eq!(a.request_id, None);

        let cli = parse(&["start", "instance", "web-1", "--request-id", "r-9"]).expect("parses");
        let Command::Start(StartCommand::Instance(a)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(a.request_id.as_deref(), Some("r-9"));
        assert!(!a.wait.wait);
        assert_eq!(a.wait.timeout, Duration::from_secs(900));

        let cli = parse(&["reboot", "instance", "web-1", "--wait"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Reboot(RebootCommand::Instance(RebootArgs { wait: true, .. }))
        ));
        // Reboot has nothing to wait for, so no timeout either.
        assert!(parse(&["reboot", "instance", "web-1", "--timeout", "1m"]).is_err());
        // Only instances have a power state.
        let err = parse(&["stop", "bucket", "scans"]).expect_err("not an instance");
        assert_eq!(err.kind(), ErrorKind::InvalidSubcommand);
        assert!(parse(&["start", "instance"]).is_err());
    }

    #[test]
    fn resize_takes_vcpu_and_memory_quantities() {
        let cli = parse(&[
            "resize", "instance", "web-1", "--vcpu", "8", "--memory", "16Gi", "--wait",
        ])
        .expect("parses");
        let Command::Resize(ResizeCommand::Instance(a)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!((a.name.as_str(), a.vcpu, a.memory), ("web-1", 8, 16384));
        assert!(a.wait.wait);
        let err = parse(&["resize", "instance", "web-1", "--vcpu", "8"]).expect_err("no memory");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&[
            "resize", "instance", "web-1", "--vcpu", "8", "--memory", "16G",
        ])
        .expect_err("ambiguous unit");
        assert!(err.to_string().contains("did you mean Gi?"), "{err}");
    }

    #[test]
    fn credentials_issue_and_revoke_parse() {
        let cli = parse(&[
            "credentials",
            "issue",
            "bucket",
            "scans",
            "--ttl",
            "1h",
            "-o",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, Format::Json);
        let Command::Credentials(CredentialsCommand::Issue(IssueCredentialsCommand::Bucket(a))) =
            cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(a.name, "scans");
        assert_eq!(a.ttl, Some(Duration::from_secs(3600)));
        let cli = parse(&["credentials", "issue", "bucket", "scans"]).expect("parses");
        let Command::Credentials(CredentialsCommand::Issue(IssueCredentialsCommand::Bucket(a))) =
            cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(a.ttl, None, "the server's default");
        let err = parse(&["credentials", "issue", "bucket", "scans", "--ttl", "0s"])
            .expect_err("zero ttl");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("--ttl"), "{err}");

        let cli = parse(&["credentials", "revoke", "bucket", "scans", "AKIA0001"]).expect("parses");
        let Command::Credentials(CredentialsCommand::Revoke(RevokeCredentialsCommand::Bucket(a))) =
            cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.name.as_str(), a.access_key_id.as_str()),
            ("scans", "AKIA0001")
        );
        let err = parse(&["credentials", "revoke", "bucket", "scans"]).expect_err("no key");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(parse(&["credentials", "issue", "instance", "web-1"]).is_err());
    }

    #[test]
    fn delete_purge_is_a_flag() {
        let cli = parse(&["delete", "bucket", "scans", "--purge"]).expect("parses");
        let Command::Delete(a) = cli.command else {
            panic!("wrong command");
        };
        assert!(a.purge);
        assert_eq!(a.kind, Kind::Bucket);
        let cli = parse(&["delete", "bucket", "scans"]).expect("parses");
        let Command::Delete(a) = cli.command else {
            panic!("wrong command");
        };
        assert!(!a.purge);
    }

    #[test]
    fn ttls_must_be_positive() {
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("5  quota exceeded"), "{help}");
        assert!(
            help.contains("8  the resource went Failed while waiting"),
            "{help}"
        );
    }
}
