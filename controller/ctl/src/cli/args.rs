//! The flags of each command.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::{
    resource::Kind,
    units::{parse_bytes, parse_duration, parse_gib, parse_mib},
};

/// Flags of `config init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `create` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CreateCommand {
    /// Request a virtual machine.
    Instance(CreateInstanceArgs),
    /// Request a block volume.
    Volume(CreateVolumeArgs),
    /// Request an object-storage bucket.
    Bucket(CreateBucketArgs),
}

/// `dry-run` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DryRunCommand {
    /// Place an instance spec.
    Instance(InstanceSpecArgs),
    /// Place a volume spec.
    Volume(VolumeSpecArgs),
    /// Place a bucket spec.
    Bucket(BucketSpecArgs),
}

/// The spec of an instance.
#[derive(Debug, Clone, Args)]
pub struct InstanceSpecArgs {
    /// Virtual CPUs; with --memory, one of the catalog's sizes.
    #[arg(long)]
    pub vcpu: u32,
    /// Memory: MiB, or a quantity such as `8Gi`.
    #[arg(long, value_parser = parse_mib, value_name = "SIZE")]
    pub memory: u64,
    /// Root disk: GiB, or a quantity such as `100Gi`.
    #[arg(long, value_parser = parse_gib, default_value = "40", value_name = "SIZE")]
    pub disk: u64,
    /// A logical image from the catalog, e.g. `kylin-v10`.
    #[arg(long)]
    pub image: String,
    /// Where it may go.
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// The spec of a volume.
#[derive(Debug, Clone, Args)]
pub struct VolumeSpecArgs {
    /// Size: GiB, or a quantity such as `1Ti`.
    #[arg(long, value_parser = parse_gib, value_name = "SIZE")]
    pub size: u64,
    /// The instance to attach it to (its name); detached when absent.
    #[arg(long, value_name = "INSTANCE")]
    pub attach_to: Option<String>,
    /// Where it may go.
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// The spec of a bucket.
#[derive(Debug, Clone, Args)]
pub struct BucketSpecArgs {
    /// Capacity: bytes, or a quantity such as `10Gi`.
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    pub quota_bytes: u64,
    /// The most objects it may hold [default: no limit].
    #[arg(long, value_name = "COUNT")]
    pub quota_objects: Option<u64>,
    /// Keep object versions.
    #[arg(long)]
    pub versioning: bool,
    /// Where it may go.
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// Placement constraints.
#[derive(Debug, Clone, Default, Args)]
pub struct PlacementArgs {
    /// A trait the foundation must have, e.g. `xinchuang` or
    /// `arch:aarch64`; repeat for several.
    #[arg(long = "require", value_name = "TRAIT")]
    pub required_traits: Vec<String>,
    /// A trait the foundation must not have; repeat for several.
    #[arg(long = "forbid", value_name = "TRAIT")]
    pub forbidden_traits: Vec<String>,
    /// The availability zone [default: any].
    #[arg(long)]
    pub zone: Option<String>,
}

/// What every create takes besides the spec.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The new resource's name: 1-63 of a-z, 0-9 and `-`.
    pub name: String,
    /// A label `key=value`; repeat for several.
    #[arg(long = "label", short = 'l', value_parser = parse_label, value_name = "KEY=VALUE")]
    pub labels: Vec<(String, String)>,
    /// Make retries safe: reuse the id of a request whose outcome is
    /// unknown [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// How long to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--wait` and `--timeout`.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Show each phase until the resource is Ready (exit 0) or Failed (exit
    /// 8), and a volume created with --attach-to until it is attached; for
    /// delete, until it is gone.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 7).
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION", requires = "wait")]
    pub timeout: Duration,
}

/// Flags of `create instance`.
#[derive(Debug, Clone, Args)]
pub struct CreateInstanceArgs {
    /// Name, labels, request id, waiting.
    #[command(flatten)]
    pub common: CreateArgs,
    /// The instance.
    #[command(flatten)]
    pub spec: InstanceSpecArgs,
}

/// Flags of `create volume`.
#[derive(Debug, Clone, Args)]
pub struct CreateVolumeArgs {
    /// Name, labels, request id, waiting.
    #[command(flatten)]
    pub common: CreateArgs,
    /// The volume.
    #[command(flatten)]
    pub spec: VolumeSpecArgs,
}

/// Flags of `create bucket`.
#[derive(Debug, Clone, Args)]
pub struct CreateBucketArgs {
    /// Name, labels, request id, waiting.
    #[command(flatten)]
    pub common: CreateArgs,
    /// The bucket.
    #[command(flatten)]
    pub spec: BucketSpecArgs,
}

/// Flags of `get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// `instance`, `volume` or `bucket`.
    pub kind: Kind,
    /// Its name (or full resource name `departments/…`).
    pub name: String,
}

/// The phases `list --phase` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    /// Admitted, waiting for a foundation.
    Pending,
    /// No foundation can take it now.
    Unschedulable,
    /// A foundation was chosen.
    Scheduled,
    /// The cloud is creating it.
    Provisioning,
    /// Usable.
    Ready,
    /// The cloud failed it.
    Failed,
    /// Being deleted.
    Deleting,
}

/// Flags of `list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// `instances`, `volumes` or `buckets`.
    pub kind: Kind,
    /// Only these phases; repeat for several.
    #[arg(long)]
    pub phase: Vec<PhaseArg>,
    /// Only resources with this label `key=value`; repeat for several.
    #[arg(long = "label", short = 'l', value_parser = parse_label, value_name = "KEY=VALUE")]
    pub labels: Vec<(String, String)>,
    /// Only resources on this foundation.
    #[arg(long)]
    pub foundation: Option<String>,
    /// Return at most this many [default: all, fetched page by page].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Flags of `delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// `instance`, `volume` or `bucket`.
    pub kind: Kind,
    /// Its name (or full resource name `departments/…`).
    pub name: String,
    /// Make retries safe [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Buckets only: delete the bucket's objects too. Without it, a bucket
    /// that holds objects is refused (exit 6) and nothing is deleted.
    #[arg(long)]
    pub purge: bool,
    /// How long to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Flags of `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// `instances`, `volumes` or `buckets`.
    pub kind: Kind,
    /// Start at this revision instead of now: a list's revision + 1, or, to
    /// resume a watch that broke, the revision of the last event it showed
    /// (one revision may hold several changes; those already shown appear
    /// again).
    #[arg(long, value_name = "REVISION")]
    pub since: Option<i64>,
    /// Stop after this many events [default: run until interrupted].
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

/// Flags of `explain`.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// `instance`, `volume` or `bucket`.
    pub kind: Kind,
    /// Its name (or full resource name `departments/…`).
    pub name: String,
}

/// Flags of `bill`.
#[derive(Debug, Clone, Args)]
pub struct BillArgs {
    /// The month, `YYYY-MM` in UTC; this month when absent.
    #[arg(long, value_parser = parse_month)]
    pub month: Option<String>,
}

/// Checks a `YYYY-MM` month before it is sent.
pub fn parse_month(s: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 7)
        .map(|_| s.to_owned())
        .ok_or_else(|| format!("`{s}` is not a month like 2026-11"))
}

/// Parses `key=value`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("`{s}` is not a label; write key=value")),
    }
}
