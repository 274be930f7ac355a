//! `yunshu-placement`: the scheduling loop. It watches the store for
//! Pending instances, volumes and buckets, decides each with the pure
//! scheduler (`yunshu-scheduler`), and commits the decision against the
//! chosen foundation's inventory with group commit, as admission does for
//! department quotas.
//!
//! ```text
//! Scheduler::new(store, SchedulerConfig::default())
//!   .run(stop)                      the loop, until `stop` turns true
//!   .dry_run(department, request)   -> Report: where it would go now, and why
//!   .explain(kind, department, name) -> Option<Report>: the decision kept on an object
//!   .release(object_key)            return a deleted object's claim (the loop does this too)
//! ```
//!
//! **Store layout** ([`keys`]): capacity per class lives in each Foundation's
//! status (probes) or spec (declared, standalone mode; see [`inventory`]);
//! what placement committed lives in one hot key per foundation,
//! `/yunshu/allocations/{foundation}` ([`AllocationRecord`]: used per class
//! and per department), and one claim per scheduled object,
//! `/yunshu/claims/{kind}/{department}/{name}` ([`ClaimRecord`]). An object,
//! its claim and its foundation's allocation change in one transaction.
//!
//! **Commits** are guarded by the revisions of the foundation, its
//! allocation key, the departments involved and every object, so several
//! replicas may schedule against one store and no foundation's allocation
//! exceeds `(total - reserved) × allocation ratio` in any class.
//!
//! **Outcomes** on the object: phase `Scheduled` with the `Scheduled`
//! condition and the placement (foundation, one-line summary, one line per
//! foundation), or phase `Unschedulable` with the reasons per foundation,
//! decided again when foundations, departments, policies or allocations
//! change, and periodically.
//!
//! **Releases**: when the loop sees an object deleted, it deletes the
//! object's claim and returns its charge to the foundation in one guarded
//! transaction (exactly once, whichever replica gets there first); a
//! periodic sweep releases claims whose objects are gone. A finalizer that
//! wants to release before removing the object calls [`Scheduler::release`].
//!
//! **Instrumentation** ([`observe`]): the loop reports each answered
//! decision (outcome and latency) and why objects are unschedulable to a
//! [`PlacementObserver`] the runtime installs; it depends on no metrics
//! library itself.
//!
//! **Resizes**: a placed object's claim holds the largest, in each class, of
//! its spec's charge, what the cloud was last made to hold
//! (`status.provisioned`) and what a resize under way asked the cloud for
//! (`status.resizing_to`). The loop moves the claim and the foundation's
//! allocation there in one guarded transaction: growth only if it fits the
//! foundation and the department's quota on it (otherwise it waits, and is
//! tried again as room frees), shrinking once the cloud has shrunk. The
//! provisioner resizes in the cloud only when the claim covers the new size.

mod cache;
mod commit;
pub mod inventory;
pub mod keys;
mod list;
pub mod observe;
pub mod report;
mod scheduler;
mod worker;
pub mod workload;

pub use cache::adapter_kinds;
pub use inventory::{AllocationRecord, ClaimRecord, declared_inventory, foundation_deletion};
pub use observe::{PlacementObserver, PlacementOutcome};
pub use report::{Component, FoundationReport, Report, ScoreReport, VerdictReport};
pub use scheduler::{Scheduler, SchedulerConfig};
pub use workload::Workload;
pub use yunshu_scheduler::Request;
