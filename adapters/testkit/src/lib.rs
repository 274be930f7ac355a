//! `yunshu-adapter-testkit`: the conformance suite every Yunshu adapter must
//! pass, run against a real cloud.
//!
//! An adapter's test builds a [`Fixture`] (a department, one [`Sample`] per
//! resource to try, a readiness timeout) and calls [`run_conformance`]. The
//! suite checks the contract of [`Adapter`] as the runtime relies on it:
//!
//! 1. every sample's kind is in `capabilities()`, and the kinds that are not
//!    are refused with `Invalid`;
//! 2. `probe` answers `Ready` with a non-empty inventory;
//! 3. `ensure_tenant` twice gives the same mapping;
//! 4. for an owner never created, `get` is `NotFound` and `delete` is `Ok`;
//! 5. per sample, with a fresh owner (random uid, name `tk-<8 hex>`): two
//!    concurrent creates and then a repeated one all return the same cloud
//!    id; `get` reaches `ready` (not `failed`) within `ready_timeout` and
//!    carries the owner uid; `list_owned` shows exactly one resource with
//!    that uid;
//! 6. with a volume and an instance sample: attach (twice), the volume's
//!    status changes and it stays ready; detach (twice), the status comes back;
//! 7. with a bucket sample on an adapter that issues credentials: issue, then
//!    revoke twice;
//! 8. delete twice is `Ok`, then `get` turns `NotFound` and `list_owned` drops
//!    the uid within `ready_timeout`.
//!
//! The suite stops at the first failed check and returns a [`Failure`]
//! naming it, with the reason and what passed before. Whatever it created is
//! deleted at the end in every case (volumes detached first); cleanup errors
//! are reported, never hidden. Calls that fail with a retryable kind
//! (`Conflict`, `Throttled`, `Unavailable`) while the suite waits for a state
//! are tried again until the deadline, as the runtime would; everywhere else
//! an error is a failure.

mod checks;
mod run;

use std::{fmt, time::Duration};

use yunshu_core::{
    adapter::Adapter,
    meta::Kind,
    model::{BucketSpec, InstanceSpec, VolumeSpec},
};

use crate::run::Run;

/// One resource the suite creates, checks and deletes.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// An instance.
    Instance(InstanceSpec),
    /// A volume.
    Volume(VolumeSpec),
    /// A bucket.
    Bucket(BucketSpec),
}

impl Sample {
    /// The sample's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Instance(_) => Kind::Instance,
            Self::Volume(_) => Kind::Volume,
            Self::Bucket(_) => Kind::Bucket,
        }
    }
}

/// What to run the suite with.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The department the resources are made for (its tenant is ensured).
    pub department: String,
    /// The resources to try, in order.
    pub samples: Vec<Sample>,
    /// How long a resource may take to become ready, or to be gone after a
    /// delete.
    pub ready_timeout: Duration,
}

/// One check that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `instance#0 ready`.
    pub name: String,
    /// How long it took.
    pub elapsed: Duration,
    /// What was seen.
    pub detail: String,
}

/// Every check that passed, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// The check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} conformance checks passed", self.checks.len())?;
        for c in &self.checks {
            writeln!(
                f,
                "  ok  {:<40} {:>9.3}s  {}",
                c.name,
                c.elapsed.as_secs_f64(),
                c.detail
            )?;
        }
        Ok(())
    }
}

/// The first check that failed, with context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check that failed.
    pub check: String,
    /// Why.
    pub reason: String,
    /// The checks that passed before it.
    pub passed: Vec<Check>,
    /// Resources the cleanup could not delete, and why.
    pub cleanup_errors: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check `{}` failed: {} (after {} passed checks",
            self.check,
            self.reason,
            self.passed.len()
        )?;
        if let Some(last) = self.passed.last() {
            write!(f, ", the last `{}`", last.name)?;
        }
        write!(f, ")")?;
        if !self.cleanup_errors.is_empty() {
            write!(
                f,
                "; cleanup left behind: {}",
                self.cleanup_errors.join("; ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Runs every check; returns a report of what passed, or the first failure
/// with context.
pub async fn run_conformance(adapter: &dyn Adapter, fixture: &Fixture) -> Result<Report, Failure> {
    let mut run = Run {
        adapter,
        fixture,
        report: Report::default(),
        created: Vec::new(),
    };
    let outcome = run.all().await;
    let cleanup_errors = run.cleanup().await;
    match outcome {
        Err((check, reason)) => Err(Failure {
            check,
            reason,
            passed: run.report.checks,
            cleanup_errors,
        }),
        Ok(()) if !cleanup_errors.is_empty() => Err(Failure {
            check: "cleanup".to_owned(),
            reason: "resources created by the suite could not be deleted".to_owned(),
            passed: run.report.checks,
            cleanup_errors,
        }),
        Ok(()) => Ok(run.report),
    }
}
