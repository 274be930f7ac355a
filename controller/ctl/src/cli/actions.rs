//! The flags of the commands that act on an existing resource rather than
//! create or delete it: `start`, `stop`, `reboot` and `resize` an
//! instance; `attach` and `detach` a volume; `credentials issue` and
//! `credentials revoke` for a bucket.
//!
//! Each verb takes the kind as a subcommand (`start instance NAME`), as
//! `create` does, so its `--help` lists what it applies to and another
//! kind can be added without changing how the existing one is typed.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::units::{parse_duration, parse_mib};

/// `start` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StartCommand {
    /// Set the instance's desired power state to Running and power it on.
    Instance(PowerArgs),
}

/// `stop` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StopCommand {
    /// Set the instance's desired power state to Stopped and power it off;
    /// it keeps its allocation and quota charge.
    Instance(PowerArgs),
}

/// `reboot` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RebootCommand {
    /// Reboot a running instance; its spec does not change.
    Instance(RebootArgs),
}

/// `resize` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ResizeCommand {
    /// Change an instance's vCPUs and memory (one of the catalog's sizes);
    /// the difference is admitted against the quota first.
    Instance(ResizeArgs),
}

/// `attach` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AttachCommand {
    /// Attach a volume to an instance of the department (detaching it from
    /// any other first); both must be on one foundation.
    Volume(AttachArgs),
}

/// `detach` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DetachCommand {
    /// Detach a volume from its instance.
    Volume(DetachArgs),
}

/// `--wait` and `--timeout` of an attach or detach.
#[derive(Debug, Clone, Args)]
pub struct AttachWaitArgs {
    /// Wait until the cloud has done it (the volume's Attached condition
    /// says so), showing each change of it.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 7).
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION", requires = "wait")]
    pub timeout: Duration,
}

/// Flags of `attach volume`.
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The volume's name (or full resource name `departments/…`).
    pub name: String,
    /// The instance's name (or full resource name).
    #[arg(long = "to", value_name = "INSTANCE")]
    pub instance: String,
    /// Make retries safe [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// How long to wait.
    #[command(flatten)]
    pub wait: AttachWaitArgs,
}

/// Flags of `detach volume`.
#[derive(Debug, Clone, Args)]
pub struct DetachArgs {
    /// The volume's name (or full resource name `departments/…`).
    pub name: String,
    /// Make retries safe [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// How long to wait.
    #[command(flatten)]
    pub wait: AttachWaitArgs,
}

/// `--wait` and `--timeout` of a change to an existing instance.
#[derive(Debug, Clone, Args)]
pub struct ApplyWaitArgs {
    /// Wait until the instance is Ready with the change applied (its Ready
    /// condition has observed the new generation), showing each phase;
    /// exit 8 if it goes Failed.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 7).
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION", requires = "wait")]
    pub timeout: Duration,
}

/// Flags of `start instance` and `stop instance`.
#[derive(Debug, Clone, Args)]
pub struct PowerArgs {
    /// The instance's name (or full resource name `departments/…`).
    pub name: String,
    /// Make retries safe: reuse the id of a request whose outcome is
    /// unknown [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// How long to wait.
    #[command(flatten)]
    pub wait: ApplyWaitArgs,
}

/// Flags of `reboot instance`.
#[derive(Debug, Clone, Args)]
pub struct RebootArgs {
    /// The instance's name (or full resource name `departments/…`).
    pub name: String,
    /// Make retries safe: a repeated request does not reboot twice
    /// [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Accepted like start's and stop's, but a reboot changes no spec, so
    /// there is nothing to observe afterwards: the command returns once the
    /// server has asked the cloud to reboot, with or without it.
    #[arg(long)]
    pub wait: bool,
}

/// Flags of `resize instance`.
#[derive(Debug, Clone, Args)]
pub struct ResizeArgs {
    /// The instance's name (or full resource name `departments/…`).
    pub name: String,
    /// The new number of virtual CPUs; with --memory, one of the catalog's
    /// sizes.
    #[arg(long)]
    pub vcpu: u32,
    /// The new memory: MiB, or a quantity such as `8Gi`.
    #[arg(long, value_parser = parse_mib, value_name = "SIZE")]
    pub memory: u64,
    /// Make retries safe: reuse the id of a request whose outcome is
    /// unknown [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// How long to wait.
    #[command(flatten)]
    pub wait: ApplyWaitArgs,
}

/// `credentials` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CredentialsCommand {
    /// Issue scoped, expiring credentials; the secret is shown only once.
    #[command(subcommand)]
    Issue(IssueCredentialsCommand),
    /// Revoke credentials before they expire.
    #[command(subcommand)]
    Revoke(RevokeCredentialsCommand),
}

/// `credentials issue` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum IssueCredentialsCommand {
    /// S3 credentials for one Ready bucket.
    Bucket(IssueBucketCredentialsArgs),
}

/// `credentials revoke` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RevokeCredentialsCommand {
    /// S3 credentials issued for a bucket, by access key id.
    Bucket(RevokeBucketCredentialsArgs),
}

/// Flags of `credentials issue bucket`.
#[derive(Debug, Clone, Args)]
pub struct IssueBucketCredentialsArgs {
    /// The bucket's name (or full resource name `departments/…`).
    pub name: String,
    /// How long the credentials stay valid, e.g. `1h` [default: the
    /// server's]. The server may shorten it to its maximum; the expiry
    /// printed tells.
    #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
    pub ttl: Option<Duration>,
    /// Make retries safe: a repeated request returns the credentials the
    /// first one issued instead of issuing more [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

/// Flags of `credentials revoke bucket`.
#[derive(Debug, Clone, Args)]
pub struct RevokeBucketCredentialsArgs {
    /// The bucket's name (or full resource name `departments/…`).
    pub name: String,
    /// The access key id of the credentials to revoke, as `credentials
    /// issue` printed it.
    pub access_key_id: String,
    /// Make retries safe [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

/// Parses `--ttl`: a duration of at least one second.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = parse_duration(s)?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("`{s}` is too short; credentials live at least 1s"));
    }
    Ok(ttl)
}
