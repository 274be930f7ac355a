//! `yunshu-adapter-conformance`: runs Yunshu's adapter conformance suite
//! against an adapter service (`yunshu.adapter.v1`) at an endpoint, through
//! the same client Yunshu uses for a Foundation with `adapter: remote`.
//!
//! ```text
//! yunshu-adapter-conformance --endpoint http://127.0.0.1:50061 \
//!     --instance vcpu=1,memory_mib=512,disk_gib=1,image=kylin-v10 \
//!     --volume size_gib=1
//! ```
//!
//! Exit status: 0 when every check passed; 1 when one failed (the failing
//! check, its reason and what was left behind are printed) or the adapter
//! cannot be reached; 2 for bad arguments.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use yunshu_adapter_remote::RemoteAdapter;
use yunshu_adapter_testkit::{Fixture, Sample, run_conformance};
use yunshu_core::{
    adapter::Credentials,
    model::{BucketSpec, InstanceSpec, VolumeSpec},
};

/// Runs the adapter conformance suite against an adapter service.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The adapter service's URL, `http://host:port` or `https://…`.
    #[arg(long, env = "YUNSHU_ADAPTER_ENDPOINT")]
    endpoint: String,
    /// A file holding the bearer token the service requires, if any.
    #[arg(long, env = "YUNSHU_ADAPTER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A PEM file of the CA that signed an https endpoint's certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Send the token over plain http to an endpoint beyond loopback (only
    /// behind a proxy or mesh that encrypts the traffic).
    #[arg(long)]
    allow_plaintext: bool,
    /// The department the suite creates resources for.
    #[arg(long, default_value = "tk-conformance")]
    department: String,
    /// An instance to try: `vcpu=N,memory_mib=N,disk_gib=N,image=NAME[,zone=Z]`.
    #[arg(long, value_parser = instance)]
    instance: Vec<InstanceSpec>,
    /// A volume to try: `size_gib=N[,zone=Z]`.
    #[arg(long, value_parser = volume)]
    volume: Vec<VolumeSpec>,
    /// A bucket to try: `quota_bytes=N[,quota_objects=N][,versioning=true]`.
    #[arg(long, value_parser = bucket)]
    bucket: Vec<BucketSpec>,
    /// How long a resource may take to become ready or to be gone, in
    /// seconds.
    #[arg(long, default_value_t = 180)]
    ready_timeout: u64,
}

fn fields(s: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        if !allowed.contains(&k) {
            return Err(format!("unknown key `{k}`; expected one of {allowed:?}"));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn number(f: &BTreeMap<String, String>, key: &str) -> Result<u64, String> {
    f.get(key)
        .ok_or_else(|| format!("`{key}` is required"))?
        .parse()
        .map_err(|_| format!("`{key}` must be a whole number"))
}

fn instance(s: &str) -> Result<InstanceSpec, String> {
    let f = fields(s, &["vcpu", "memory_mib", "disk_gib", "image", "zone"])?;
    let mut spec = InstanceSpec {
        vcpu: u32::try_from(number(&f, "vcpu")?).map_err(|_| "`vcpu` is too large")?,
        memory_mib: number(&f, "memory_mib")?,
        disk_gib: number(&f, "disk_gib")?,
        image: f.get("image").cloned().ok_or("`image` is required")?,
        constraints: Default::default(),
        group: None,
        power: Default::default(),
    };
    spec.constraints.zone = f.get("zone").cloned();
    Ok(spec)
}

fn volume(s: &str) -> Result<VolumeSpec, String> {
    let f = fields(s, &["size_gib", "zone"])?;
    let mut spec = VolumeSpec {
        size_gib: number(&f, "size_gib")?,
        attach_to: None,
        constraints: Default::default(),
    };
    spec.constraints.zone = f.get("zone").cloned();
    Ok(spec)
}

fn bucket(s: &str) -> Result<BucketSpec, String> {
    let f = fields(s, &["quota_bytes", "quota_objects", "versioning"])?;
    Ok(BucketSpec {
        quota_bytes: number(&f, "quota_bytes")?,
        quota_objects: f
            .contains_key("quota_objects")
            .then(|| number(&f, "quota_objects"))
            .transpose()?,
        versioning: f.get("versioning").is_some_and(|v| v == "true"),
        constraints: Default::default(),
    })
}

fn read(path: &PathBuf, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("YUNSHU_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(Failed::Usage(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failed::Check(message)) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<String, Failed> {
    let mut credentials = BTreeMap::new();
    if let Some(path) = &args.token_file {
        credentials.insert(
            "token".to_owned(),
            read(path, "token file").map_err(Failed::Usage)?,
        );
    }
    if let Some(path) = &args.ca_file {
        credentials.insert(
            "ca_pem".to_owned(),
            read(path, "CA file").map_err(Failed::Usage)?,
        );
    }
    let mut spec = yunshu_adapter_remote::foundation_spec(&args.endpoint);
    if args.allow_plaintext {
        spec.settings
            .insert("allow_plaintext".to_owned(), "true".to_owned());
    }
    let mut samples: Vec<Sample> = args.instance.into_iter().map(Sample::Instance).collect();
    samples.extend(args.volume.into_iter().map(Sample::Volume));
    samples.extend(args.bucket.into_iter().map(Sample::Bucket));
    if samples.is_empty() {
        return Err(Failed::Usage(
            "give at least one --instance, --volume or --bucket to try".into(),
        ));
    }
    let adapter = RemoteAdapter::connect("conformance", &spec, &Credentials(credentials))
        .map_err(|e| Failed::Usage(e.to_string()))?;
    adapter.refresh_capabilities().await.map_err(|e| {
        Failed::Check(format!(
            "cannot reach the adapter at {}: {e}",
            args.endpoint
        ))
    })?;
    let fixture = Fixture {
        department: args.department,
        samples,
        ready_timeout: Duration::from_secs(args.ready_timeout),
    };
    run_conformance(&adapter, &fixture)
        .await
        .map(|report| report.to_string())
        .map_err(|failure| Failed::Check(failure.to_string()))
}

/// Why the run did not pass: exit 2 for arguments, 1 for the adapter.
enum Failed {
    Usage(String),
    Check(String),
}
