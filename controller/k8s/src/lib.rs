//! `yunshu-k8s`: the Kubernetes operator. In Kubernetes mode the CRDs are
//! the source of truth for admin configuration, and department resources
//! may be declared as CRs (GitOps); this crate keeps Yunshu's store and the
//! CRs in step, and knows nothing of gRPC.
//!
//! # Entry point
//!
//! The runtime builds an [`OperatorContext`] — the kube `Client`, the store
//! (`Arc<dyn Store>`), the [`Admission`](yunshu_core::admission::Admission)
//! handle, a [`CredentialsHub`] and an [`OperatorConfig`] — and calls
//! [`run`]`(ctx, shutdown)`, which returns once `shutdown` resolved and the
//! Lease was released. The runtime subscribes to each foundation's
//! credentials with [`CredentialsHub::subscribe`]. The kube `Client` is the
//! runtime's to build (e.g. `Client::try_default()`, which needs one of
//! kube's TLS features enabled there).
//!
//! # What runs
//!
//! - **Foundation, Department, PlacementPolicy** ([`admin`]): each CR is
//!   converted with the crds `TryFrom` and written to the store when its
//!   spec changed (a revision-guarded transaction); its status — health,
//!   inventory, usage, tenant mappings, `Ready` and `Synced` with
//!   `observedGeneration` — is built from the store object and applied with
//!   server-side apply on the status subresource (field manager `yunshu`).
//!   A change in the store (a probe, a usage charge) triggers a reconcile
//!   of that kind. A Foundation also reads the Secret it references and
//!   publishes its [`Credentials`](yunshu_core::adapter::Credentials);
//!   Secrets are watched, so a rotation is published again at once.
//! - **Instance, Volume, Bucket** ([`workload`]): a CR in a namespace
//!   labelled `yunshu.io/department` is admitted as that department with
//!   request id `k8s-<uid>`; the store object's status is mirrored back.
//! - Every CR has the finalizer `yunshu.io/cleanup`: deletion is requested
//!   in the store and the finalizer removed only once the store object is
//!   gone. (Department and PlacementPolicy carry it too, so a deleted CR
//!   never leaves its store object behind; a Department is kept while it
//!   still holds resources.)
//!
//! # Design decisions
//!
//! - **Thin Kubernetes layer.** What to write to the store and what status
//!   to produce are pure functions ([`admin::sync`], [`admin::status`],
//!   [`workload::plan`], [`conditions`]) tested without Kubernetes; the
//!   reconcilers only read, call them and write.
//! - **Malformed CRs never stall a watch.** Every controller watches
//!   through [`DeserializeGuard`](kube::core::DeserializeGuard): an object
//!   that does not match its Rust type is logged and gets a Warning event
//!   `InvalidObject`, and the watch goes on with the others.
//! - **Status writes are idempotent and cheap.** The status is applied only
//!   when it differs from the CR's; condition transition times are kept
//!   while their status holds, so recomputing changes nothing. Conflicts,
//!   throttling and outages on the status write are retried with doubling
//!   waits ([`OperatorConfig::status_attempts`]).
//! - **Events on transitions only** (`BecameReady`, `Degraded`, `Down`,
//!   `Synced`, the failure reason of `Synced`), published with kube's
//!   `Recorder` under the controller name `yunshu-operator`.
//! - **One leader runs the reconcilers** ([`leader`]): a
//!   `coordination.k8s.io/v1` Lease, client-go's protocol; the loops stop
//!   when it is lost. The gRPC API is not tied to it.
//! - **Errors**: a refused spec is reported in the status and waits for a
//!   change; a transient failure (store or API outage, conflict) fails the
//!   reconcile, which is retried with a per-object backoff of 1 s doubling
//!   to 5 min.
//! - Store status changes of department resources are picked up by
//!   re-reading objects in a moving phase every
//!   [`OperatorConfig::poll_active`] (kube's per-object external trigger is
//!   still an unstable API).
//!
//! # RBAC the operator needs
//!
//! `yunshu.io` foundations, departments, placementpolicies, instances,
//! volumes, buckets: get, list, watch, patch, and patch on their `status`;
//! Secrets: get, list, watch (in [`OperatorConfig::secret_namespaces`], or
//! cluster-wide); Namespaces: get; `coordination.k8s.io` Leases in
//! [`OperatorConfig::namespace`]: get, create, update; `events.k8s.io`
//! Events: create, patch (cluster-scoped objects' events go to `default`,
//! as kube's `Recorder` does).

pub mod admin;
pub mod conditions;
pub mod context;
pub mod credentials;
pub mod error;
pub mod kubeapi;
pub mod leader;
pub mod names;
mod run;
pub mod workload;

pub use crate::{
    context::{OperatorConfig, OperatorContext},
    credentials::{CredentialsError, CredentialsHub, credentials_from_secret},
    error::{Error, Result},
    kubeapi::{DEPARTMENT_ANNOTATION, FIELD_MANAGER, FINALIZER},
    leader::{LeaderElector, while_leader},
    run::{controllers, run},
};
