//! Which department and role each identity has, built from the Department
//! objects and swapped atomically when they change.
//!
//! Lookups are exact and case-sensitive. When an identity is granted in
//! several places the rules are:
//!
//! - Within one department the *most specific* grant wins: a grant of the
//!   OIDC subject decides that department's role, even if a group grant
//!   there is higher (so one person can be demoted below their group).
//!   Otherwise the highest role among the matching groups applies, and
//!   repeated grants of one certificate subject take the highest role.
//! - Across departments, a caller may name the department it acts for in
//!   the `x-yunshu-department` header; it must hold a grant there, unless it
//!   is an admin: admins act in every department, so an admin may name one
//!   it holds no grant in and acts there by its admin grant. Without
//!   the header, departments granting the OIDC subject itself are preferred
//!   over departments granting only a group; if more than one department is
//!   left, the request is refused as ambiguous (`PERMISSION_DENIED`).
//! - An API token belongs to the department that stores its hash.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, PoisonError, RwLock},
};

use subtle::ConstantTimeEq;
use yunshu_core::model::{Department, Identity, Role};

use crate::{reject::RejectReason, token};

/// A department and the role held in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The department's name.
    pub department: String,
    /// The role held there.
    pub role: Role,
}

/// The identities of every department, cheap to clone and share; updates
/// are seen by every clone at once.
#[derive(Debug, Clone, Default)]
pub struct IdentityIndex {
    shared: Arc<RwLock<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    departments: BTreeMap<String, Vec<Identity>>,
    lookup: Arc<Lookup>,
}

#[derive(Debug, Default)]
struct Lookup {
    certs: HashMap<String, Vec<Grant>>,
    subjects: HashMap<String, Vec<Grant>>,
    groups: HashMap<String, Vec<Grant>>,
    tokens: HashMap<String, Vec<TokenGrant>>,
}

#[derive(Debug)]
struct Grant {
    department: Arc<str>,
    role: Role,
}

#[derive(Debug)]
struct TokenGrant {
    department: Arc<str>,
    digest: [u8; 32],
    role: Role,
    revoked: bool,
}

impl IdentityIndex {
    /// An empty index: every identity maps to no department.
    pub fn new() -> Self {
        Self::default()
    }

    /// An index of these departments.
    pub fn from_departments<'a>(departments: impl IntoIterator<Item = &'a Department>) -> Self {
        let index = Self::new();
        index.replace_all(departments);
        index
    }

    /// Replaces every department (after a relist).
    pub fn replace_all<'a>(&self, departments: impl IntoIterator<Item = &'a Department>) {
        self.update(|map| {
            map.clear();
            for d in departments {
                map.insert(d.meta.name.clone(), d.spec.identities.clone());
            }
        });
    }

    /// Adds or replaces one department (after a watch event).
    pub fn upsert(&self, department: &Department) {
        self.update(|map| {
            map.insert(
                department.meta.name.clone(),
                department.spec.identities.clone(),
            );
        });
    }

    /// Removes a department; returns whether it was there.
    pub fn remove(&self, department: &str) -> bool {
        let mut removed = false;
        self.update(|map| removed = map.remove(department).is_some());
        removed
    }

    /// The names of the indexed departments.
    pub fn departments(&self) -> Vec<String> {
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        shared.departments.keys().cloned().collect()
    }

    /// The department of a client certificate's subject CN.
    pub fn resolve_certificate(
        &self,
        common_name: &str,
        requested: Option<&str>,
    ) -> Result<Membership, RejectReason> {
        let lookup = self.lookup();
        let grants = best_per_department(lookup.certs.get(common_name));
        select(&grants, &BTreeMap::new(), requested)
    }

    /// The department of an OIDC subject and its groups.
    pub fn resolve_oidc(
        &self,
        subject: &str,
        groups: &[String],
        requested: Option<&str>,
    ) -> Result<Membership, RejectReason> {
        let lookup = self.lookup();
        let direct = best_per_department(lookup.subjects.get(subject));
        let mut via_groups: BTreeMap<Arc<str>, Role> = BTreeMap::new();
        for g in groups.iter().filter_map(|g| lookup.groups.get(g.as_str())) {
            for grant in g.iter().filter(|g| !direct.contains_key(&g.department)) {
                let role = via_groups
                    .entry(grant.department.clone())
                    .or_insert(grant.role);
                *role = (*role).max(grant.role);
            }
        }
        select(&direct, &via_groups, requested)
    }

    /// The department of a whole API token (`ysk_<id>_<secret>`). A token
    /// whose id is unknown and one whose secret is wrong are refused alike.
    pub fn resolve_api_token(
        &self,
        token: &str,
        requested: Option<&str>,
    ) -> Result<Membership, RejectReason> {
        let id = token::parse_id(token).ok_or(RejectReason::MalformedCredentials)?;
        let digest = token::digest_token(token);
        let lookup = self.lookup();
        let mut found = None;
        for grant in lookup.tokens.get(id).into_iter().flatten() {
            if bool::from(grant.digest.ct_eq(&digest)) {
                found = Some(grant);
            }
        }
        let grant = found.ok_or(RejectReason::InvalidApiToken)?;
        if grant.revoked {
            return Err(RejectReason::RevokedApiToken);
        }
        // An admin acts in every department, so may name any; it stays of
        // the department holding its token.
        if requested.is_some_and(|r| r != &*grant.department) && grant.role != Role::Admin {
            return Err(RejectReason::NoDepartment);
        }
        Ok(Membership {
            department: grant.department.to_string(),
            role: grant.role,
        })
    }

    fn lookup(&self) -> Arc<Lookup> {
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        shared.lookup.clone()
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Vec<Identity>>)) {
        let mut shared = self.shared.write().unwrap_or_else(PoisonError::into_inner);
        change(&mut shared.departments);
        shared.lookup = Arc::new(build(&shared.departments));
    }
}

fn build(departments: &BTreeMap<String, Vec<Identity>>) -> Lookup {
    let mut l = Lookup::default();
    for (name, identities) in departments {
        let department: Arc<str> = Arc::from(name.as_str());
        let grant = |role| Grant {
            department: department.clone(),
            role,
        };
        for identity in identities {
            match identity {
                Identity::CertificateSubject { subject, role } => {
                    l.certs
                        .entry(subject.clone())
                        .or_default()
                        .push(grant(*role));
                }
                Identity::OidcSubject { subject, role } => {
                    l.subjects
                        .entry(subject.clone())
                        .or_default()
                        .push(grant(*role));
                }
                Identity::OidcGroup { group, role } => {
                    l.groups
                        .entry(group.clone())
                        .or_default()
                        .push(grant(*role));
                }
                Identity::ApiToken {
                    id,
                    sha256,
                    role,
                    revoked,
                } => match token::decode_digest(sha256) {
                    Some(digest) => l.tokens.entry(id.clone()).or_default().push(TokenGrant {
                        department: department.clone(),
                        digest,
                        role: *role,
                        revoked: *revoked,
                    }),
                    None => tracing::warn!(
                        department = %name,
                        token_id = %id,
                        "api token ignored: sha256 is not 64 hex digits"
                    ),
                },
            }
        }
    }
    l
}

/// The highest role per department among `grants`.
fn best_per_department(grants: Option<&Vec<Grant>>) -> BTreeMap<Arc<str>, Role> {
    let mut out: BTreeMap<Arc<str>, Role> = BTreeMap::new();
    for g in grants.into_iter().flatten() {
        let role = out.entry(g.department.clone()).or_insert(g.role);
        *role = (*role).max(g.role);
    }
    out
}

/// Picks the department: the one requested if granted, else the only one
/// among the specific grants, else the only one among the others. An
/// admin (who acts in every department) may request one it holds no grant
/// in: it then acts by its admin grant, and stays of that grant's
/// department (what audit records name).
fn select(
    specific: &BTreeMap<Arc<str>, Role>,
    general: &BTreeMap<Arc<str>, Role>,
    requested: Option<&str>,
) -> Result<Membership, RejectReason> {
    let pick = |(d, r): (&Arc<str>, &Role)| Membership {
        department: d.to_string(),
        role: *r,
    };
    if let Some(wanted) = requested {
        return specific
            .get_key_value(wanted)
            .or_else(|| general.get_key_value(wanted))
            .or_else(|| {
                specific
                    .iter()
                    .chain(general.iter())
                    .find(|(_, r)| **r == Role::Admin)
            })
            .map(pick)
            .ok_or(RejectReason::NoDepartment);
    }
    for candidates in [specific, general] {
        match candidates.len() {
            0 => continue,
            1 => {
                return candidates
                    .iter()
                    .next()
                    .map(pick)
                    .ok_or(RejectReason::NoDepartment);
            }
            _ => return Err(RejectReason::AmbiguousDepartment),
        }
    }
    Err(RejectReason::NoDepartment)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
