//! Resource names: `departments/{department}/{collection}/{name}`,
//! `departments/{department}`, `foundations/{name}`,
//! `placementpolicies/{name}`.

use tonic::Status;

use crate::status::invalid_field;

/// Whether `s` is a DNS label: 1–63 of `a-z 0-9 -`, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// The rule, in words, for error messages.
pub const DNS_LABEL_RULE: &str = "must be a DNS label: 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit";

/// Parses `departments/{d}` (a parent) into the department.
pub fn parse_parent(field: &str, parent: &str) -> Result<String, Status> {
    match parent.split('/').collect::<Vec<_>>().as_slice() {
        ["departments", d] if is_dns_label(d) => Ok((*d).to_owned()),
        _ => Err(invalid_field(
            field,
            format!("must be `departments/{{department}}`, got `{parent}`"),
        )),
    }
}

/// Parses `departments/{d}/{collection}/{name}` into department and name.
pub fn parse_name(field: &str, name: &str, collection: &str) -> Result<(String, String), Status> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["departments", d, c, n] if *c == collection && is_dns_label(d) && is_dns_label(n) => {
            Ok(((*d).to_owned(), (*n).to_owned()))
        }
        _ => Err(invalid_field(
            field,
            format!("must be `departments/{{department}}/{collection}/{{name}}`, got `{name}`"),
        )),
    }
}

/// Parses `{collection}/{name}` for cluster-scoped kinds.
pub fn parse_cluster_name(field: &str, name: &str, collection: &str) -> Result<String, Status> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        [c, n] if *c == collection && is_dns_label(n) => Ok((*n).to_owned()),
        _ => Err(invalid_field(
            field,
            format!("must be `{collection}/{{name}}`, got `{name}`"),
        )),
    }
}

/// `departments/{d}/{collection}/{name}`.
pub fn name(department: &str, collection: &str, name: &str) -> String {
    format!("departments/{department}/{collection}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "web-1", "0a", &"x".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            parse_parent("parent", "departments/health").expect("ok"),
            "health"
        );
        assert!(parse_parent("parent", "departments/Health").is_err());
        assert_eq!(
            parse_name("name", "departments/health/instances/web-1", "instances").expect("ok"),
            ("health".into(), "web-1".into())
        );
        assert!(parse_name("name", "departments/health/volumes/web-1", "instances").is_err());
        assert_eq!(
            parse_cluster_name("name", "foundations/kunpeng-1", "foundations").expect("ok"),
            "kunpeng-1"
        );
    }
}
