//! `yunshu-adapter-openstack`: Yunshu's adapter for OpenStack clouds
//! (Keystone v3, Nova, Cinder, Glance, Neutron, Placement).
//!
//! # Why a thin typed client and not the `openstack` crate
//!
//! The `openstack` crate (0.6, on `osauth`) builds with rustls and can pick a
//! region, but it does not cover what this adapter needs most: Placement
//! (inventories, usages, traits) and Keystone administration (projects, users,
//! role assignments) are absent; its Glance `Image` drops custom properties,
//! so `os_distro`/`hw_architecture` (how a logical image resolves per CPU
//! architecture) cannot be read; Nova volume attachments and server tags are
//! missing; and its errors keep the status but not `Retry-After` nor the
//! service's message, so `Throttled{retry_after}` and `QuotaExceeded` could
//! not be told apart from other 413/403s. It also drags in a second stack
//! (serde_yaml, json-patch, gzip, HTTP/2, waiters). With half the calls needing
//! a hand-written client anyway, one small client for everything keeps one
//! error mapping and one token cache. It is reqwest with rustls (ring, system
//! roots plus an optional `ca_file`) and no default features; each service
//! module declares only the fields it reads.
//!
//! # Design
//!
//! - The session keeps one Keystone token per scope (the admin project, and
//!   each department project), renews it `token_renew_before` its expiry, finds
//!   endpoints in the token's catalog by service type, interface and region,
//!   and re-authenticates once on 401. It never retries otherwise: the
//!   runtime's tower stack owns timeouts, retries and circuit breaking; the
//!   HTTP client only enforces `request_timeout`.
//! - Tenancy: `ensure_tenant` makes project and user `yunshu-<department>`,
//!   gives that user the member role there and the adapter's admin user the
//!   admin role (Nova lets only admins boot zero-disk flavors); the adapter
//!   then creates servers and volumes with a project-scoped admin token, so
//!   resources (and Nova/Cinder quotas) belong to the department's project. Reads, deletes, actions and sweeps use the admin token with
//!   `all_tenants`. Application-credential auth works for everything except
//!   creating in department projects (a credential cannot change scope).
//! - Idempotency: every resource carries metadata `yunshu-uid`,
//!   `yunshu-department` and `yunshu-name` (servers also the tag `yunshu`), and
//!   creates look the uid up first. Concurrent creates of one uid in this
//!   process serialize on a per-uid lock; after a create the adapter lists the
//!   uid again and deletes all but the oldest, so a race with another process
//!   still converges on one resource.
//! - Not applied at create: `spec.power` (the runtime stops an instance with
//!   `instance_action`), `spec.group` (server groups are not mapped yet) and
//!   `VolumeSpec::attach_to` (the runtime calls `attach_volume`).
//! - Errors map in one pure function ([`error::map_status`]); messages carry
//!   the operation and the service's own message, never a token or password.
//!
//! Tests run against two real clouds (`e2e/openstack/up.sh`); see
//! `tests/` and [`e2e_cloud`].

mod adapter;
mod cinder;
pub mod config;
pub mod error;
mod glance;
mod keystone;
mod nova;
mod placement;
mod session;

pub use adapter::OpenStackAdapter;
pub use config::{Config, E2eCloud, e2e_cloud};

/// The pure rules the adapter applies, exposed for tests and tools.
pub mod rules {
    pub use crate::{
        cinder::{Attachment, Volume, volume_resource},
        glance::{Image, select_image},
        nova::{
            DEPARTMENT_KEY, EmbeddedFlavor, Flavor, NAME_KEY, Server, TAG, UID_KEY,
            exact_name_regex, flavor_name, pick_flavor, server_resource,
        },
        placement::{Provider, ProviderInventory, aggregate, class_of, trait_of},
    };
}
