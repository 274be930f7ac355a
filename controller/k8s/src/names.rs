//! Names and ids the operator derives: the admission request id of a CR
//! and the DNS-label rule Yunshu's object names follow.

/// The admission request id of a CR: derived from its uid, so every retry
/// of the same CR is the same request (admission answers it with the object
/// it created), and a deleted and recreated CR is a new request.
pub fn request_id(uid: &str) -> String {
    format!("k8s-{uid}")
}

/// The rule [`is_dns_label`] checks, in words, for status messages.
pub const DNS_LABEL_RULE: &str = "must be a DNS label: 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit";

/// Whether `s` is a DNS label: the names Yunshu's API accepts, stricter than
/// Kubernetes' DNS subdomains (no dots).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_come_from_uids() {
        let id = request_id("0b4e9c5e-7f32-4c57-a1d2-3a3c4f1d9e10");
        assert_eq!(id, "k8s-0b4e9c5e-7f32-4c57-a1d2-3a3c4f1d9e10");
        assert!(id.len() <= 128);
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(is_dns_label("kunpeng-1"));
        assert!(!is_dns_label("kunpeng.phase1"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
