//! The key layout of the store. Every Yunshu key lives under `/yunshu/`.
//!
//! ```text
//! /yunshu/objects/{kind}/{department|_}/{name}   an object (cluster-scoped kinds use `_`)
//! /yunshu/requests/{department|_}/{request_id}   what a client request id did: the object a
//!                                                create made, or a delete and the object's last state
//! /yunshu/usage/{department}                     the department's charged usage (the quota key)
//! /yunshu/bills/{department}/{YYYY-MM}           the department's metered use in a month
//! /yunshu/meters/{department}                    up to when the department was metered
//! /yunshu/leases/{name}                          leader election
//! ```

use crate::meta::Kind;

/// The root of every key.
pub const ROOT: &str = "/yunshu/";

/// The scope segment of cluster-scoped objects.
pub const CLUSTER: &str = "_";

/// The key of an object.
pub fn object(kind: Kind, department: Option<&str>, name: &str) -> String {
    format!(
        "{ROOT}objects/{}/{}/{name}",
        kind.plural(),
        department.unwrap_or(CLUSTER)
    )
}

/// The prefix of every object of a kind in a department (or cluster scope).
pub fn objects(kind: Kind, department: Option<&str>) -> String {
    format!(
        "{ROOT}objects/{}/{}/",
        kind.plural(),
        department.unwrap_or(CLUSTER)
    )
}

/// The prefix of every object of a kind.
pub fn objects_of_kind(kind: Kind) -> String {
    format!("{ROOT}objects/{}/", kind.plural())
}

/// The key of a department object.
pub fn department(name: &str) -> String {
    object(Kind::Department, None, name)
}

/// The key recording which object a request id created.
pub fn request(department: &str, request_id: &str) -> String {
    format!("{ROOT}requests/{department}/{request_id}")
}

/// The prefix of every request record.
pub fn all_requests() -> String {
    format!("{ROOT}requests/")
}

/// The prefix of a department's request records.
pub fn requests(department: &str) -> String {
    format!("{ROOT}requests/{department}/")
}

/// The department's usage key: the hot key admission guards.
pub fn usage(department: &str) -> String {
    format!("{ROOT}usage/{department}")
}

/// A department's metered use in a month (`YYYY-MM`).
pub fn bill(department: &str, month: &str) -> String {
    format!("{ROOT}bills/{department}/{month}")
}

/// The prefix of every department's meter.
pub fn meters() -> String {
    format!("{ROOT}meters/")
}

/// Up to when a department was metered.
pub fn meter(department: &str) -> String {
    format!("{ROOT}meters/{department}")
}

/// A leader-election lease key.
pub fn lease(name: &str) -> String {
    format!("{ROOT}leases/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        assert_eq!(
            object(Kind::Instance, Some("health"), "web"),
            "/yunshu/objects/instances/health/web"
        );
        assert_eq!(department("health"), "/yunshu/objects/departments/_/health");
        assert!(
            object(Kind::Instance, Some("health"), "web")
                .starts_with(&objects(Kind::Instance, Some("health")))
        );
        assert_eq!(usage("health"), "/yunshu/usage/health");
    }
}
