//! `yunshu-grpc`: the department and admin API, `yunshu.api.v1`, over tonic.
//!
//! The services are generic over the core traits: they read and watch the
//! `Store`, create and change objects through group-committed `Admission`,
//! and never see Kubernetes or a cloud SDK. Every request carries a
//! [`Principal`](yunshu_core::principal::Principal) in its extensions, put
//! there by the authentication layer in front; [`authz`] decides what it may
//! do. Bad input is refused with field violations before anything is written,
//! and core errors become `tonic::Status` in exactly one place, [`status`].
//!
//! Placement explanations come from `yunshu-placement`'s scheduler, a
//! domain crate with no Kubernetes or cloud SDK in it.

pub mod actions;
pub mod admin;
pub mod authz;
mod changes;
pub mod convert;
mod deletes;
pub mod department;
pub mod names;
pub mod placement;
pub mod resource;
pub mod server;
pub mod services;
pub mod status;
pub mod validate;

use std::sync::Arc;

use yunshu_core::{admission::Admission, catalog::Catalog, store::Store};

/// What every service shares.
#[derive(Debug, Clone)]
pub struct Api {
    /// The store objects are read and watched from.
    pub store: Arc<dyn Store>,
    /// Group-committed admission for creates, resizes and deletes.
    pub admission: Admission,
    /// Sizes and images departments may request.
    pub catalog: Arc<Catalog>,
    /// The scheduler, for placement explanations and dry runs; those calls
    /// answer `UNIMPLEMENTED` without one.
    pub placement: Option<yunshu_placement::Scheduler>,
    /// Reboots and bucket credentials; those calls answer
    /// `FAILED_PRECONDITION` without it.
    pub actions: Option<Arc<dyn actions::Actions>>,
    /// Kubernetes mode: the CRDs are the source of truth for foundations,
    /// departments and placement policies, so the admin service refuses
    /// writes (the operator would overwrite them) and serves reads only.
    pub crds_own_config: bool,
    /// The currency bills are metered in (`--currency`): a bill of a
    /// department not metered yet is in it.
    pub currency: String,
}
