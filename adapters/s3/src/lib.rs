//! `yunshu-adapter-s3`: Yunshu's adapter for S3-compatible object storage —
//! Ceph RGW and SeaweedFS today, any server with one of the two admin
//! dialects tomorrow.
//!
//! # Design
//!
//! - **Two planes.** Buckets, objects, tags, versioning and bucket policies
//!   go through aws-sdk-s3 (path-style, checksums only where required, the
//!   SDK's retries off because the runtime's adapter stack retries). Users,
//!   keys, quotas and usage — which S3 does not standardise — go through the
//!   server's admin dialect behind one internal trait, [`admin::AdminApi`]:
//!   RGW Admin Ops ([`admin::rgw`]) or the IAM query API ([`admin::iam`]),
//!   chosen by `spec.settings.dialect`. Both run on one rustls + *ring*
//!   HTTP stack.
//! - **Tenants.** One server user per department, `yunshu-<department>`. Its
//!   keys exist in exactly one place, the [`yunshu_core::adapter::SecretVault`]
//!   (entry `s3/<foundation>/<department>`); they never enter a
//!   `TenantMapping`, a status, a log line or an error. If the vault entry is
//!   lost, `ensure_tenant` makes a new key and deletes the ones nobody holds.
//! - **Buckets.** The name is derived from department and object name
//!   ([`naming`]), so retries find the same bucket; the object's uid is the
//!   `yunshu-uid` tag, which is both the ownership check (a bucket tagged for
//!   another uid is never adopted, changed or deleted) and what
//!   `list_owned` sweeps for. The department's user creates (and so owns) the
//!   bucket; a bucket policy grants it to that user only; quotas are set
//!   through the admin dialect.
//! - **Issued credentials.** One server user per issue, named after its
//!   department, bucket and expiry ([`naming::issued_user`]), confined to the
//!   one bucket: on RGW by a bucket-policy statement with an
//!   `aws:CurrentTime` condition, so the *server* refuses the key after
//!   `expires_at`; on SeaweedFS by an inline user policy (its policy engine
//!   refuses time conditions), so expiry there is enforced by revocation:
//!   `Adapter::revoke_expired_credentials`, which the runtime's credential
//!   sweep runs, finds expired users from their names alone — also those
//!   minted just before a crash, which no record of Yunshu's names.
//!
//! # Server differences (measured on RGW 16.2 and SeaweedFS 4.48)
//!
//! | | Ceph RGW | SeaweedFS |
//! |---|---|---|
//! | over-quota write | refused at once, `403 QuotaExceeded` → `QuotaExceeded` | size quotas only (whole MiB), set through `weed shell` (`spec.settings.seaweedfs.*`), enforced lazily: writes succeed until the server marks the bucket read-only, then fail with `500 InternalError` (→ `Unavailable`); the adapter applies quotas on every probe |
//! | object-count quota | yes | no (noted in the resource's message) |
//! | usage | exact bytes and objects from Admin Ops | counted by listing |
//! | expiry of issued keys | enforced by the server (policy condition) | enforced by revocation |
//! | non-empty bucket delete | refused by the server | a versioned bucket is deleted with its objects, so the adapter counts first and refuses itself |
//!
//! # Errors
//!
//! [`error::classify`] maps HTTP status and error code to Yunshu's kinds;
//! messages carry what was attempted and the server's error code, never a
//! key, a secret or the server's free text.

pub mod adapter;
pub mod admin;
pub mod config;
pub mod error;
mod http;
pub mod naming;
pub mod policy;
pub mod s3;

pub use adapter::{S3Adapter, TAG_DEPARTMENT, TAG_NAME, TAG_UID};
pub use config::{Dialect, S3Config};
