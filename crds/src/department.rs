//! Department: a tenant, its identities and quotas (cluster-scoped).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use yunshu_core::model as core;

use crate::{
    Condition,
    condition::convert as conditions,
    convert::{self, ConversionError},
    schema,
};

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read and change the department's resources.
    Operator,
    /// Everything, including the admin service.
    Admin,
}

/// How a caller is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum IdentityType {
    /// An OIDC subject (`sub` claim), in `subject`.
    OidcSubject,
    /// Members of an OIDC group (`groups` claim), in `group`.
    OidcGroup,
    /// A client certificate's subject CN, in `subject`.
    CertificateSubject,
    /// A static API token: its public `id` and the `sha256` of the whole token.
    ApiToken,
}

/// One way a caller is recognised as a member; which fields apply depends on `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.type == 'oidcSubject' || self.type == 'certificateSubject') == has(self.subject)",
        "message": "subject is required for oidcSubject and certificateSubject, and only for them"
    },
    {
        "rule": "(self.type == 'oidcGroup') == has(self.group)",
        "message": "group is required for oidcGroup, and only for it"
    },
    {
        "rule": "(self.type == 'apiToken') == (has(self.id) && has(self.sha256))",
        "message": "id and sha256 are required for apiToken, and only for it"
    },
    {
        "rule": "self.type == 'apiToken' || !has(self.revoked)",
        "message": "revoked applies to apiToken only"
    }
]))]
pub struct Identity {
    /// How the caller is recognised.
    #[serde(rename = "type")]
    pub type_: IdentityType,
    /// The role granted.
    pub role: Role,
    /// The OIDC `sub` claim or certificate subject CN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub subject: Option<String>,
    /// The OIDC group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub group: Option<String>,
    /// The API token's public id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9]+$"))]
    pub id: Option<String>,
    /// Hex SHA-256 of the whole token (`ysk_<id>_<secret>`); the token itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    /// A revoked token is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
}

/// The department's quotas per resource class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Limits across all foundations; an absent class is unlimited.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::class_amounts")]
    pub hard: BTreeMap<String, u64>,
    /// Limits on single foundations, by foundation name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::per_foundation_limits")]
    pub per_foundation: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A tenant of the city's clouds.
// Each printcolumn(...) repeats `name`/`type_`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "yunshu.io",
    version = "v1alpha1",
    kind = "Department",
    shortname = "dept",
    category = "yunshu",
    status = "DepartmentStatus",
    derive = "PartialEq",
    doc = "A tenant: the identities that map to it, its quotas and the foundations it may use.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(
        name = "vCPU Used",
        type_ = "integer",
        json_path = ".status.usage.vcpu"
    ),
    printcolumn(
        name = "vCPU Limit",
        type_ = "integer",
        json_path = ".spec.quota.hard.vcpu"
    ),
    printcolumn(
        name = "Memory MiB Used",
        type_ = "integer",
        json_path = ".status.usage.memory_mib"
    ),
    printcolumn(
        name = "Memory MiB Limit",
        type_ = "integer",
        json_path = ".spec.quota.hard.memory_mib"
    ),
    printcolumn(
        name = "Volume GiB Used",
        type_ = "integer",
        priority = 1,
        json_path = ".status.usage.volume_gib"
    ),
    printcolumn(
        name = "Volume GiB Limit",
        type_ = "integer",
        priority = 1,
        json_path = ".spec.quota.hard.volume_gib"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.allowedFoundations) || !has(self.quota) || !has(self.quota.perFoundation) || self.quota.perFoundation.all(f, f in self.allowedFoundations)",
    "message": "quota.perFoundation may only name foundations in allowedFoundations"
}]))]
pub struct DepartmentSpec {
    /// A human name, e.g. "Health Commission".
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub display_name: String,
    /// Who belongs.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub identities: Vec<Identity>,
    /// Quotas.
    #[serde(default)]
    pub quota: Quota,
    /// Foundations it may use; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::name_set")]
    pub allowed_foundations: Vec<String>,
}

/// The department's tenant on one foundation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantMapping {
    /// OpenStack project id or S3 user id.
    pub tenant_id: String,
    /// The user Yunshu acts as there.
    #[serde(default)]
    pub user: String,
}

/// What the operator observed of the department.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentStatus {
    /// Charged usage across foundations, every resource class (zeros included).
    #[serde(default)]
    #[schemars(schema_with = "schema::class_amounts")]
    pub usage: BTreeMap<String, u64>,
    /// Tenants per foundation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, TenantMapping>,
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Ready, Synced.
    #[serde(default)]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl From<Role> for yunshu_core::model::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Viewer => Self::Viewer,
            Role::Operator => Self::Operator,
            Role::Admin => Self::Admin,
        }
    }
}

fn required(field: String, value: Option<String>) -> Result<String, ConversionError> {
    value.ok_or_else(|| ConversionError::new(field, "required for this identity type"))
}

impl Identity {
    fn into_core(self, field: &str) -> Result<core::Identity, ConversionError> {
        let role = self.role.into();
        let f = |name: &str| format!("{field}.{name}");
        Ok(match self.type_ {
            IdentityType::OidcSubject => core::Identity::OidcSubject {
                subject: required(f("subject"), self.subject)?,
                role,
            },
            IdentityType::OidcGroup => core::Identity::OidcGroup {
                group: required(f("group"), self.group)?,
                role,
            },
            IdentityType::CertificateSubject => core::Identity::CertificateSubject {
                subject: required(f("subject"), self.subject)?,
                role,
            },
            IdentityType::ApiToken => core::Identity::ApiToken {
                id: required(f("id"), self.id)?,
                sha256: required(f("sha256"), self.sha256)?,
                role,
                revoked: self.revoked.unwrap_or(false),
            },
        })
    }
}

impl TryFrom<DepartmentSpec> for core::DepartmentSpec {
    type Error = ConversionError;

    fn try_from(s: DepartmentSpec) -> Result<Self, Self::Error> {
        let identities = s
            .identities
            .into_iter()
            .enumerate()
            .map(|(i, id)| id.into_core(&format!("spec.identities[{i}]")))
            .collect::<Result<_, _>>()?;
        let per_foundation = s
            .quota
            .per_foundation
            .into_iter()
            .map(|(f, limits)| {
                let field = format!("spec.quota.perFoundation.{f}");
                Ok((f, convert::classes(&field, limits)?))
            })
            .collect::<Result<_, ConversionError>>()?;
        Ok(Self {
            display_name: s.display_name,
            identities,
            quota: core::Quota {
                hard: convert::classes("spec.quota.hard", s.quota.hard)?,
                per_foundation,
            },
            allowed_foundations: s.allowed_foundations,
        })
    }
}

impl DepartmentStatus {
    /// The CR status for a core status and the generation it describes.
    pub fn from_core(status: core::DepartmentStatus, generation: i64) -> Self {
        Self {
            usage: convert::amounts(&status.usage),
            tenants: status
                .tenants
                .into_iter()
                .map(|(f, t)| {
                    let mapping = TenantMapping {
                        tenant_id: t.tenant_id,
                        user: t.user,
                    };
                    (f, mapping)
                })
                .collect(),
            observed_generation: generation,
            conditions: conditions(status.conditions),
        }
    }
}
