//! Department: a tenant, its identities and quotas.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    meta::{Condition, Kind, Object, Spec},
    resources::{Limits, Resources},
};

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read and change the department's resources.
    Operator,
    /// Everything, including the admin service.
    Admin,
}

/// One way a caller is recognised as a member of a department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Identity {
    /// An OIDC subject (`sub` claim).
    OidcSubject {
        /// The `sub` claim.
        subject: String,
        /// The role granted.
        role: Role,
    },
    /// Members of an OIDC group (`groups` claim).
    OidcGroup {
        /// The group name.
        group: String,
        /// The role granted.
        role: Role,
    },
    /// A client certificate's subject common name.
    CertificateSubject {
        /// The certificate subject CN.
        subject: String,
        /// The role granted.
        role: Role,
    },
    /// A static API token, stored only as its SHA-256 hash.
    ApiToken {
        /// The token's public id ([`is_api_token_id`]).
        id: String,
        /// Hex SHA-256 of the whole token (`ysk_<id>_<secret>`).
        sha256: String,
        /// The role granted.
        role: Role,
        /// Revoked tokens are refused.
        #[serde(default)]
        revoked: bool,
    },
}

/// A department's quotas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Limits across all foundations.
    #[serde(default)]
    pub hard: Limits,
    /// Limits on single foundations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_foundation: BTreeMap<String, Limits>,
}

/// A department's declared specification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentSpec {
    /// A human name, e.g. "Health Commission".
    #[serde(default)]
    pub display_name: String,
    /// Who belongs.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// Quotas.
    #[serde(default)]
    pub quota: Quota,
    /// Foundations it may use; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_foundations: Vec<String>,
}

/// The department's tenant on one foundation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantMapping {
    /// OpenStack project id or S3 user id.
    pub tenant_id: String,
    /// The user Yunshu acts as there.
    #[serde(default)]
    pub user: String,
}

/// A department's observed state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentStatus {
    /// Charged usage across foundations.
    #[serde(default)]
    pub usage: Resources,
    /// Tenants per foundation.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantMapping>,
    /// Ready, Synced.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl Spec for DepartmentSpec {
    const KIND: Kind = Kind::Department;
    type Status = DepartmentStatus;
}

/// A department object.
pub type Department = Object<DepartmentSpec>;

/// Whether `id` may be an API token's public id: 1-64 ASCII letters,
/// digits or `-` (the token, `ysk_<id>_<secret>`, is split at the `_`
/// after the id, so an id may hold none).
pub fn is_api_token_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
