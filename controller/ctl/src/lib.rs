//! `yunshu-ctl`: `yunshuctl`, the command line for departments and admins
//! of Yunshu (云枢).
//!
//! It speaks the department API (`yunshu.api.v1`) over gRPC: create, get,
//! list, delete and watch instances, volumes and buckets; show the
//! department's quota and catalog; explain placements. Results print as
//! aligned tables, or as JSON or YAML with the API's field names
//! (`-o json|yaml`), and exit codes tell scripts what happened.
//!
//! # A first session
//!
//! An engineer of the health commission got an endpoint, the CA that signed
//! its certificate, and an API token (or an OIDC token from the city's
//! identity platform) from the platform team. She saves the token in a file
//! and writes the configuration once:
//!
//! ```text
//! $ yunshuctl config init --endpoint https://yunshu.city.example:8443 \
//!     --department health --token-file ~/.config/yunshu/token \
//!     --ca-file ~/.config/yunshu/ca.pem
//! wrote /home/lin/.config/yunshu/config.yaml
//! ```
//!
//! Then she asks what she may request:
//!
//! ```text
//! $ yunshuctl catalog
//! SIZES
//! NAME     VCPU   MEMORY   DESCRIPTION
//! c2m4     2      4Gi      2 vCPU, 4 GiB
//! c4m8     4      8Gi      4 vCPU, 8 GiB
//! …
//! IMAGES
//! NAME              ARCHITECTURES    DESCRIPTION
//! kylin-v10         x86_64,aarch64   Kylin Advanced Server V10
//! openeuler-22.03   x86_64,aarch64   openEuler 22.03 LTS
//! …
//! FOUNDATIONS
//! NAME        ARCH      HEALTH   KINDS             ZONES   TRAITS
//! kunpeng-1   aarch64   Ready    instance,volume   az1     arch:aarch64,cpu:kunpeng,xinchuang
//! ```
//!
//! Her application must run on domestic hardware, so she requires the
//! `xinchuang` trait and waits for the instance:
//!
//! ```text
//! $ yunshuctl create instance web-1 --vcpu 4 --memory 8Gi --image kylin-v10 \
//!     --require xinchuang --label app=web --wait
//! instance web-1 created; waiting until Ready or Failed (timeout 15m)
//!    0.0s  Pending
//!    1.2s  Scheduled      kunpeng-1: …
//!    1.9s  Provisioning   kunpeng-1: …
//!   41.0s  Ready          10.2.0.14
//! ```
//!
//! Each line is a phase change with the time since the request and the
//! placement summary (the addresses once Ready). `Failed` prints the
//! cloud's message and exits 8; `--timeout` (default 15m) exits 7.
//! Without `--wait` the command returns at once with the instance Pending.
//!
//! She checks what is left of her quota:
//!
//! ```text
//! $ yunshuctl quota
//! SCOPE   RESOURCE       USED   LIMIT       FREE
//! all     vcpu           4      48          44
//! all     memory         8Gi    96Gi        88Gi
//! all     disk           40Gi   unlimited   -
//! …
//! ```
//!
//! When a request would exceed it, the answer is immediate and exact, with
//! exit code 5:
//!
//! ```text
//! $ yunshuctl create instance batch-1 --vcpu 16 --memory 32Gi --image kylin-v10
//! error: quota exceeded: vcpu requested 16, used 44, limit 48
//! ```
//!
//! A rejected field names itself, one per line, with exit code 2:
//!
//! ```text
//! $ yunshuctl create instance Web_1 --vcpu 3 --memory 8Gi --image kylin-v11
//! error: invalid request
//!   instance_id: must be a DNS label: 1-63 characters of a-z, 0-9 and '-', …
//!   instance.spec.vcpu: no catalog size has 3 vCPU and 8192 MiB; sizes (vCPU/MiB): …
//!   instance.spec.image: unknown image `kylin-v11`; the catalog has: kylin-v10, …
//! ```
//!
//! Volumes and buckets follow the same pattern (`create volume data --size
//! 100Gi --attach-to web-1`, `create bucket scans --quota-bytes 10Gi
//! --versioning`), and `list`, `get`, `watch` and `delete` work on all three.
//!
//! Later she stops the instance for the weekend. A stop changes the spec,
//! so `--wait` waits until the `Ready` condition has observed the new
//! generation — the phase was Ready all along:
//!
//! ```text
//! $ yunshuctl stop instance web-1 --wait
//! instance web-1 stop requested; waiting until Ready at generation 2 or Failed (timeout 15m)
//!    0.0s  Ready          applying generation 2, observed 1
//!    6.3s  Ready          SHUTOFF on foundation kunpeng-1
//! instance web-1 stopped
//! ```
//!
//! `start` is the reverse, `resize instance web-1 --vcpu 8 --memory 16Gi`
//! is admitted against the quota like a create, and `reboot` is just the
//! call. For a script that uploads scans she issues S3 credentials for an
//! hour; the secret is printed once (`-o json` gives `bucket` — the name on
//! the object store —, `accessKeyId`, `secretAccessKey`, `expireTime`,
//! `endpoints`), and `credentials revoke bucket scans ACCESS_KEY_ID` ends
//! them early:
//!
//! ```text
//! $ yunshuctl credentials issue bucket scans --ttl 1h
//! Bucket:              scans
//! S3 bucket:           yunshu-health-scans
//! Access key id:       …
//! Expires:             2026-05-01T09:30:00Z (in 59m)
//! Endpoints:           http://s3.city.example:7480
//! Secret access key:   …
//! warning: the secret access key is shown only once; store it now, it cannot be retrieved again
//! ```
//!
//! A bucket that still holds objects is not deleted unless asked to: `delete
//! bucket scans` prints the server's refusal and exits 6; `delete bucket
//! scans --purge` deletes the objects with it. `list buckets` shows each
//! bucket's usage (USED).
//!
//! # Commands
//!
//! ```text
//! yunshuctl config init [--force]            write the configuration from the global flags
//! yunshuctl config show                      the configuration in effect (token redacted)
//! yunshuctl create instance NAME --vcpu N --memory SIZE --image IMAGE [--disk SIZE]
//!           [--require TRAIT]… [--forbid TRAIT]… [--zone Z] [-l k=v]… [--request-id ID]
//!           [--wait [--timeout D]]
//! yunshuctl create volume NAME --size SIZE [--attach-to INSTANCE] [placement, labels, wait]
//! yunshuctl create bucket NAME --quota-bytes SIZE [--quota-objects N] [--versioning] […]
//! yunshuctl get KIND NAME
//! yunshuctl list KIND [--phase P]… [-l k=v]… [--foundation F] [--limit N]
//! yunshuctl delete KIND NAME [--purge] [--request-id ID] [--wait [--timeout D]]
//! yunshuctl start|stop instance NAME [--request-id ID] [--wait [--timeout D]]
//! yunshuctl reboot instance NAME [--request-id ID]
//! yunshuctl resize instance NAME --vcpu N --memory SIZE [--request-id ID] [--wait [--timeout D]]
//! yunshuctl attach volume NAME --to INSTANCE [--request-id ID] [--wait [--timeout D]]
//! yunshuctl detach volume NAME [--request-id ID] [--wait [--timeout D]]
//! yunshuctl credentials issue bucket NAME [--ttl D] [--request-id ID]
//! yunshuctl credentials revoke bucket NAME ACCESS_KEY_ID [--request-id ID]
//! yunshuctl watch KIND [--since REVISION] [--count N]
//! yunshuctl quota
//! yunshuctl catalog
//! yunshuctl bill [--month YYYY-MM]
//! yunshuctl explain KIND NAME
//! yunshuctl dry-run instance|volume|bucket <spec flags>
//! ```
//!
//! KIND is `instance`, `volume` or `bucket` (plurals too). Global flags:
//! `--config`, `--endpoint`, `-d/--department`, `--token`, `--token-file`,
//! `--ca-file`, `--client-cert`, `--client-key`, `-o/--output
//! table|json|yaml`, `--request-timeout`; each has an environment variable
//! (`YUNSHUCTL_CONFIG`, `YUNSHU_ENDPOINT`, `YUNSHU_DEPARTMENT`,
//! `YUNSHU_TOKEN`, `YUNSHU_TOKEN_FILE`, `YUNSHU_CA_FILE`,
//! `YUNSHU_CLIENT_CERT`, `YUNSHU_CLIENT_KEY`, `YUNSHUCTL_OUTPUT`,
//! `YUNSHUCTL_REQUEST_TIMEOUT`). Sizes take binary units (`8Gi`, `512Mi`,
//! `1Ti`; see [`units`]). Every mutation sends a request id — a fresh UUID,
//! or `--request-id` to retry one whose outcome is unknown; when a
//! connection breaks mid-request the error says which id to retry with.
//!
//! The configuration file is described in [`config`]; the JSON and YAML
//! shapes in [`output`].
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success |
//! | 1 | any other error |
//! | 2 | usage: bad flags or configuration, or an invalid argument (`INVALID_ARGUMENT`) |
//! | 3 | not found |
//! | 4 | unauthenticated or permission denied |
//! | 5 | quota exceeded or rate limited (`RESOURCE_EXHAUSTED`) |
//! | 6 | already exists, conflict or aborted; or refused (`FAILED_PRECONDITION`): e.g. a bucket that holds objects, deleted without `--purge` |
//! | 7 | unavailable or timed out (including `--timeout`) |
//! | 8 | the resource went `Failed` while `--wait` watched it |
//!
//! [`error`] maps every gRPC code.
//!
//! # Using it as a library
//!
//! `main` is thin: it parses [`cli::Cli`], and [`commands::run_and_report`]
//! runs it against an [`commands::Io`] (two writers) and returns the
//! [`error::Exit`]. Tests call the same functions with buffers; with
//! [`commands::execute`] they can pass [`config::Settings`] directly.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod resource;
pub mod table;
pub mod units;
pub mod wait;

use std::{io, process::ExitCode};

use clap::Parser;

pub use crate::{
    cli::Cli,
    commands::{Io, execute, run, run_and_report},
    config::Settings,
    error::{Error, Exit},
};

/// The `yunshuctl` binary: parse, run, print, exit.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return Exit::Error.into();
        }
    };
    let (mut out, mut err) = (io::stdout(), io::stderr());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    runtime.block_on(run_and_report(&cli, &mut io)).into()
}
