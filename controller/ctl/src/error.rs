//! What can go wrong, how it is told, and the exit code scripts see.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success |
//! | 1 | any other error (I/O, internal server error, not implemented yet) |
//! | 2 | usage: bad flags or configuration (including a token, CA or certificate file that cannot be read, and a TLS handshake the settings make fail), or the server refused an argument (`INVALID_ARGUMENT`) |
//! | 3 | not found (`NOT_FOUND`; also a resource deleted while waiting for it) |
//! | 4 | not allowed (`UNAUTHENTICATED`, `PERMISSION_DENIED`) |
//! | 5 | quota exceeded or rate limited (`RESOURCE_EXHAUSTED`) |
//! | 6 | conflict or refused (`ALREADY_EXISTS`, `ABORTED`, `OUT_OF_RANGE` (a watch's compacted revision); `FAILED_PRECONDITION`, e.g. deleting a bucket that holds objects without `--purge`, rebooting an instance that is not running, credentials for a bucket that is not Ready; `config init` over an existing file) |
//! | 7 | unavailable or timed out (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, a server that cannot be reached, `--timeout`): retrying may help |
//! | 8 | the resource went `Failed` while `--wait` watched it |
//!
//! Errors print to stderr as `error: <message>`, then one line per field
//! violation (`  instance.spec.vcpu: must be at least 1`) or quota
//! violation, then hints.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::units::format_duration;

/// The exit codes of `yunshuctl`; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Any other error.
    Error = 1,
    /// Bad usage, configuration or argument.
    Usage = 2,
    /// No such resource.
    NotFound = 3,
    /// Unauthenticated or permission denied.
    Denied = 4,
    /// Quota exceeded or rate limited.
    Exhausted = 5,
    /// Already exists, aborted, or refused by a failed precondition (the
    /// server's message says which).
    Conflict = 6,
    /// Unavailable or timed out.
    Unavailable = 7,
    /// The resource went `Failed` while waiting for it.
    Failed = 8,
}

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other error
  2  usage: bad flags or configuration (a file it names cannot be read, the
     TLS handshake fails with its settings), or an invalid argument
  3  not found
  4  unauthenticated or permission denied
  5  quota exceeded or rate limited
  6  already exists, conflict or aborted, or refused: the resource is not
     in a state that allows it (e.g. a bucket with objects without --purge),
     or a watch's --since revision was compacted (list again, then watch)
  7  unavailable or timed out: retrying may help
  8  the resource went Failed while waiting";

impl Exit {
    /// The numeric code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The exit code for a gRPC status code.
    pub const fn for_code(code: Code) -> Self {
        match code {
            Code::Ok => Self::Ok,
            Code::InvalidArgument => Self::Usage,
            Code::NotFound => Self::NotFound,
            Code::Unauthenticated | Code::PermissionDenied => Self::Denied,
            Code::ResourceExhausted => Self::Exhausted,
            // OUT_OF_RANGE: a watch asked for compacted history; not a
            // usage error, the caller must list again.
            Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition | Code::OutOfRange => {
                Self::Conflict
            }
            Code::Unavailable | Code::DeadlineExceeded => Self::Unavailable,
            Code::Cancelled
            | Code::Unknown
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss => Self::Error,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// Every failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The flags or the configuration ask for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A file named by the configuration could not be read.
    #[error("failed to read {what} {}: {source}", path.display())]
    ReadFile {
        /// What the file is, e.g. "token file".
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configuration file is not valid YAML of the expected shape.
    #[error("failed to parse the configuration file {}: {source}", path.display())]
    ParseConfig {
        /// Where.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// A file could not be written.
    #[error("failed to write {}: {source}", path.display())]
    WriteFile {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `config init` would overwrite a file.
    #[error("{} already exists; pass --force to replace it", path.display())]
    ConfigExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The endpoint could not be reached or the TLS settings are unusable.
    #[error("failed to connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why, with every cause.
        reason: String,
        /// The TLS settings or handshake failed: the configuration must
        /// change, retrying will not help (exit 2, not 7).
        tls: bool,
    },
    /// The server answered with an error status.
    #[error("{}", status_message(.0))]
    Rpc(Box<Status>),
    /// `--timeout` (or the per-call deadline) passed.
    #[error("timed out after {} {waiting}", format_duration(*after))]
    Timeout {
        /// How long was waited.
        after: Duration,
        /// What for, e.g. "waiting for instance web-1 (still Pending)".
        waiting: String,
    },
    /// The resource went `Failed` while waiting for it.
    #[error("{kind} {name} failed: {message}")]
    Failed {
        /// `instance`, `volume` or `bucket`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The status message.
        message: String,
    },
    /// The resource disappeared (or began deletion) while waiting for it.
    #[error("{kind} {name} was deleted while waiting for it")]
    Vanished {
        /// `instance`, `volume` or `bucket`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Output could not be written.
    #[error("failed to write output: {0}")]
    Output(#[source] io::Error),
    /// Output could not be encoded as JSON or YAML.
    #[error("failed to encode output: {0}")]
    Encode(String),
    /// Another error, with advice on what to do next (e.g. the request id
    /// to retry a mutation whose outcome is unknown).
    #[error("{source}")]
    WithHint {
        /// What went wrong.
        source: Box<Error>,
        /// What to do, one line.
        hint: String,
    },
}

/// The flag (or argument) that sets an API field, so a person sees what to
/// change: `instance.spec.memory_mib` → `--memory`.
fn flag_for(field: &str) -> Option<&'static str> {
    let last = field.rsplit('.').next().unwrap_or(field);
    let last = last.split('[').next().unwrap_or(last);
    Some(match last {
        "instance_id" | "volume_id" | "bucket_id" => "the NAME argument",
        "vcpu" => "--vcpu",
        "memory_mib" => "--memory",
        "disk_gib" => "--disk",
        "image" => "--image",
        "size_gib" => "--size",
        "attach_to" => "--attach-to",
        "quota_bytes" => "--quota-bytes",
        "quota_objects" => "--quota-objects",
        "required_traits" => "--require",
        "forbidden_traits" => "--forbid",
        "zone" => "--zone",
        "labels" => "--label",
        "request_id" => "--request-id",
        "ttl" => "--ttl",
        _ => return None,
    })
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Self::Rpc(Box::new(status))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}

impl Error {
    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage(_)
            | Self::ParseConfig { .. }
            | Self::ReadFile { .. }
            | Self::Connect { tls: true, .. } => Exit::Usage,
            Self::WriteFile { .. } | Self::Output(_) | Self::Encode(_) => Exit::Error,
            Self::ConfigExists { .. } => Exit::Conflict,
            Self::Connect { .. } | Self::Timeout { .. } => Exit::Unavailable,
            Self::Rpc(status) if is_transport_failure(status) => Exit::Unavailable,
            Self::Rpc(status) => Exit::for_code(status.code()),
            Self::Failed { .. } => Exit::Failed,
            Self::Vanished { .. } => Exit::NotFound,
            Self::WithHint { source, .. } => source.exit(),
        }
    }

    /// The gRPC status, when the server answered with one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Self::Rpc(status) => Some(status),
            Self::WithHint { source, .. } => source.status(),
            _ => None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        Self::WithHint {
            source: Box::new(self),
            hint: hint.into(),
        }
    }

    /// For a mutation: when the outcome is unknown (the server may have
    /// applied it before the connection broke or the deadline passed), says
    /// how to retry safely.
    pub fn for_mutation(self, request_id: &str) -> Self {
        if self.exit() == Exit::Unavailable {
            self.with_hint(format!(
                "the request may or may not have been applied; \
                 retry safely with --request-id {request_id}"
            ))
        } else {
            self
        }
    }

    /// Whether this is a closed stdout (e.g. `yunshuctl list | head -1`),
    /// which is not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// Writes the error for a person: `error: …`, details, hints.
    pub fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "error: {self}")?;
        for line in self.details() {
            writeln!(w, "  {line}")?;
        }
        if let Some(hint) = self.hint() {
            writeln!(w, "hint: {hint}")?;
        }
        Ok(())
    }

    /// The lines under the headline: field violations, quota violations.
    pub fn details(&self) -> Vec<String> {
        let Some(status) = self.status() else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        if let Some(bad) = status.get_details_bad_request() {
            lines.extend(
                bad.field_violations
                    .iter()
                    .map(|v| match flag_for(&v.field) {
                        Some(flag) => format!("{}: {} ({flag})", v.field, v.description),
                        None => format!("{}: {}", v.field, v.description),
                    }),
            );
        }
        if let Some(quota) = status.get_details_quota_failure() {
            // The message names them already as the server words it; list
            // only what it leaves out.
            lines.extend(
                quota
                    .violations
                    .iter()
                    .filter(|v| !status.message().contains(&v.description))
                    .map(|v| v.description.clone()),
            );
        }
        lines
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::WithHint { hint, .. } => Some(hint.clone()),
            Self::Connect { tls: true, .. } => Some(
                "caFile (--ca-file) must hold the CA that signed the server's certificate, \
                 and clientCertFile a certificate of a CA the server trusts"
                    .to_owned(),
            ),
            Self::Rpc(status) if is_transport_failure(status) => Some(
                "the connection broke before the server answered; if you present a client \
                 certificate (clientCertFile), the server may not trust the CA that signed it"
                    .to_owned(),
            ),
            Self::Rpc(status) => {
                if let Some(retry) = status.get_details_retry_info()
                    && let Some(delay) = retry.retry_delay
                {
                    return Some(format!("retry after {}", format_duration(delay)));
                }
                (status.code() == Code::Unauthenticated).then(|| {
                    "check the token or certificate in the configuration \
                     (`yunshuctl config show`)"
                        .to_owned()
                })
            }
            _ => None,
        }
    }
}

/// A status the client made up because the connection failed, e.g. when
/// the server refused the client certificate after the TLS 1.3 handshake:
/// tonic reports those as `UNKNOWN` "transport error", or as `CANCELLED`
/// when the connection drops under a pending call (yunshuctl never cancels
/// its own calls).
fn is_transport_failure(status: &Status) -> bool {
    matches!(
        (status.code(), status.message()),
        (Code::Unknown, "transport error") | (Code::Cancelled, "operation was canceled")
    )
}

/// The headline of a status: its message, without the field violations the
/// server folded into it when they are listed below anyway.
fn status_message(status: &Status) -> String {
    let message = status.message();
    if message.is_empty() {
        return format!("{} (no message from the server)", code_name(status.code()));
    }
    if let Some(bad) = status.get_details_bad_request() {
        let joined = bad
            .field_violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        if !joined.is_empty()
            && let Some(head) = message.strip_suffix(&joined)
        {
            let head = head.trim_end().trim_end_matches(':');
            if !head.is_empty() {
                return head.to_owned();
            }
        }
    }
    message.to_owned()
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
