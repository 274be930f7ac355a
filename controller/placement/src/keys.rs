//! The keys placement adds to the store's layout (see `yunshu_core::keys`).
//!
//! ```text
//! /yunshu/allocations/{foundation}              what is committed against the foundation: the hot key
//! /yunshu/claims/{kind}/{department}/{name}     one object's committed charge: foundation, uid, amounts
//! ```
//!
//! A claim mirrors its object's key, so the claim of a deleted object is
//! found from the object's key alone, and the allocation key always equals
//! the sum of its foundation's claims (both change in one transaction).

use yunshu_core::{keys::ROOT, meta::Kind};

/// The allocation key of a foundation.
pub fn allocation(foundation: &str) -> String {
    format!("{ROOT}allocations/{foundation}")
}

/// The prefix of every allocation key.
pub fn allocations() -> String {
    format!("{ROOT}allocations/")
}

/// The prefix of every claim.
pub fn claims() -> String {
    format!("{ROOT}claims/")
}

/// The claim of the object at `object_key`, if that is a department
/// resource's key.
pub fn claim_for(object_key: &str) -> Option<String> {
    let rest = object_key.strip_prefix(ROOT)?.strip_prefix("objects/")?;
    workload_kind(object_key)?;
    Some(format!("{ROOT}claims/{rest}"))
}

/// The object a claim belongs to.
pub fn object_for(claim_key: &str) -> Option<String> {
    let rest = claim_key.strip_prefix(ROOT)?.strip_prefix("claims/")?;
    let object = format!("{ROOT}objects/{rest}");
    workload_kind(&object).map(|_| object)
}

/// The kind of the department resource at `object_key` (instances, volumes
/// or buckets), if it is one.
pub fn workload_kind(object_key: &str) -> Option<Kind> {
    let rest = object_key.strip_prefix(ROOT)?.strip_prefix("objects/")?;
    let mut parts = rest.split('/');
    let kind = match parts.next()? {
        "instances" => Kind::Instance,
        "volumes" => Kind::Volume,
        "buckets" => Kind::Bucket,
        _ => return None,
    };
    let (department, name) = (parts.next()?, parts.next()?);
    let well_formed = !department.is_empty() && !name.is_empty() && parts.next().is_none();
    well_formed.then_some(kind)
}

/// The name of the cluster-scoped object of `kind` at `key`.
pub fn admin_name(kind: Kind, key: &str) -> Option<&str> {
    let name = key.strip_prefix(&yunshu_core::keys::objects(kind, None))?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use yunshu_core::keys;

    use super::*;

    #[test]
    fn layout_is_stable() {
        assert_eq!(allocation("kunpeng-1"), "/yunshu/allocations/kunpeng-1");
        let object = keys::object(Kind::Instance, Some("health"), "web");
        let claim = claim_for(&object).expect("a workload key");
        assert_eq!(claim, "/yunshu/claims/instances/health/web");
        assert!(claim.starts_with(&claims()));
        assert_eq!(object_for(&claim), Some(object));
    }

    #[test]
    fn only_department_resources_have_claims() {
        assert_eq!(claim_for(&keys::department("health")), None);
        assert_eq!(claim_for("/yunshu/objects/instances/health"), None);
        assert_eq!(claim_for("/yunshu/objects/instances/health/a/b"), None);
        assert_eq!(object_for("/yunshu/claims/foundations/_/x"), None);
        assert_eq!(
            workload_kind(&keys::object(Kind::Bucket, Some("d"), "b")),
            Some(Kind::Bucket)
        );
    }

    #[test]
    fn admin_names_come_from_cluster_scoped_keys() {
        let key = keys::object(Kind::Foundation, None, "pk-1");
        assert_eq!(admin_name(Kind::Foundation, &key), Some("pk-1"));
        assert_eq!(admin_name(Kind::Department, &key), None);
    }
}
