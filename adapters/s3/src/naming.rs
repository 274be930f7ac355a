//! Deterministic names on the server: buckets, users, vault entries.
//!
//! A bucket's name is derived from its department and its name alone, so a
//! retried create finds the same bucket: `ys-<department>-<name>-<hash>`,
//! lower-cased, every character outside `[a-z0-9]` turned into `-`, and cut
//! so the whole stays within S3's 63 characters. The 8-hex-digit hash of the
//! *original* department and name is always appended — not only when
//! cutting — because sanitising and the `-` separator are ambiguous on their
//! own: department `a-b` with bucket `c` and department `a` with bucket
//! `b-c` would otherwise share `ys-a-b-c`, and so would `Docs` and `docs`.
//!
//! Users: `yunshu-<department>` per department (the tenant), and one user per
//! issued credential, `yunshu-<department>.<bucket-hash>.<expiry><random>`,
//! which names the bucket it serves and when it expires, so revocation can
//! check that a key belongs to the bucket and a sweep can find expired ones
//! from the user list alone.

use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};

/// The prefix of every bucket Yunshu creates.
pub const BUCKET_PREFIX: &str = "ys-";

/// The prefix of every user Yunshu creates.
pub const USER_PREFIX: &str = "yunshu-";

/// The longest S3 bucket name.
const MAX_BUCKET: usize = 63;

/// How much of the department name goes into a user name; IAM user names
/// stop at 64 characters and issued users add 20 to the department's.
const MAX_USER_DEPT: usize = 30;

/// The bucket of `department`'s bucket object `name`.
pub fn bucket(department: &str, name: &str) -> String {
    let hash = short_hash(&[department, name], 8);
    let readable = format!("{}-{}", sanitize(department), sanitize(name));
    let room = MAX_BUCKET - BUCKET_PREFIX.len() - 1 - hash.len();
    let readable = cut(&readable, room);
    if readable.is_empty() {
        format!("{BUCKET_PREFIX}{hash}")
    } else {
        format!("{BUCKET_PREFIX}{readable}-{hash}")
    }
}

/// The department's user (its tenant on the server).
pub fn department_user(department: &str) -> String {
    let clean = sanitize(department);
    if clean == department && clean.len() <= MAX_USER_DEPT {
        format!("{USER_PREFIX}{clean}")
    } else {
        format!(
            "{USER_PREFIX}{}-{}",
            cut(&clean, MAX_USER_DEPT),
            short_hash(&[department], 6)
        )
    }
}

/// The prefix shared by every user issued for `bucket` of `department`.
pub fn issued_prefix(department: &str, bucket: &str) -> String {
    format!(
        "{}.{}.",
        department_user(department),
        short_hash(&[bucket], 6)
    )
}

/// A new issued user for `bucket`, expiring at `expires_at`; `nonce` makes
/// two issues in the same second distinct.
pub fn issued_user(
    department: &str,
    bucket: &str,
    expires_at: DateTime<Utc>,
    nonce: u16,
) -> String {
    let secs = u32::try_from(expires_at.timestamp().max(0)).unwrap_or(u32::MAX);
    format!("{}{secs:08x}{nonce:04x}", issued_prefix(department, bucket))
}

/// When an issued user expires, if `user` is one.
pub fn issued_expiry(user: &str) -> Option<DateTime<Utc>> {
    if !user.starts_with(USER_PREFIX) {
        return None;
    }
    let mut parts = user.rsplit('.');
    let tail = parts.next()?;
    let bucket_hash = parts.next()?;
    if bucket_hash.len() != 6 || tail.len() != 12 || !tail.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let secs = u32::from_str_radix(&tail[..8], 16).ok()?;
    Utc.timestamp_opt(i64::from(secs), 0).single()
}

/// The vault entry holding the department's keys on `foundation`.
pub fn vault_entry(foundation: &str, department: &str) -> String {
    format!("s3/{foundation}/{department}")
}

/// Lower-case `[a-z0-9-]`, no leading, trailing or doubled `-`.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// At most `max` bytes of an ASCII string, without a trailing `-`.
fn cut(s: &str, max: usize) -> String {
    s[..s.len().min(max)].trim_end_matches('-').to_owned()
}

/// The first `len` hex digits of SHA-256 over the parts, NUL-separated.
fn short_hash(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hex[..len].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_bucket(name: &str) -> bool {
        (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--")
    }

    #[test]
    fn bucket_names_are_readable_valid_and_stable() {
        let n = bucket("health", "docs");
        assert!(n.starts_with("ys-health-docs-"), "{n}");
        assert_eq!(n.len(), "ys-health-docs-".len() + 8);
        assert_eq!(n, bucket("health", "docs"), "deterministic");
        assert!(valid_bucket(&n), "{n}");
    }

    #[test]
    fn ambiguous_inputs_get_distinct_names() {
        assert_ne!(bucket("a-b", "c"), bucket("a", "b-c"));
        assert_ne!(bucket("health", "Docs"), bucket("health", "docs"));
        assert_ne!(bucket("health", "my_docs"), bucket("health", "my.docs"));
    }

    #[test]
    fn long_and_odd_names_are_cut_to_63() {
        let long = "x".repeat(200);
        for (d, n) in [
            (long.as_str(), "docs"),
            ("health", long.as_str()),
            ("卫健委", "资料"),
            ("--", "__"),
            ("Health Commission", "Q1 Reports (final)"),
        ] {
            let b = bucket(d, n);
            assert!(valid_bucket(&b), "{d}/{n} -> {b}");
        }
        assert_ne!(bucket(&long, "a"), bucket(&long, "b"));
    }

    #[test]
    fn user_names_fit_iam_limits() {
        assert_eq!(department_user("health"), "yunshu-health");
        let odd = department_user("Health_Commission");
        assert!(odd.starts_with("yunshu-health-commission-"), "{odd}");
        let long = "d".repeat(100);
        let b = bucket(&long, "docs");
        let expires = Utc.timestamp_opt(4_000_000_000, 0).single().expect("time");
        let issued = issued_user(&long, &b, expires, 0xffff);
        assert!(issued.len() <= 64, "{} chars: {issued}", issued.len());
        assert!(issued.starts_with(&issued_prefix(&long, &b)));
        assert_eq!(issued_expiry(&issued), Some(expires));
        assert_eq!(issued_expiry(&department_user("health")), None);
        assert_eq!(issued_expiry("someone.else.000000000000"), None);
    }

    #[test]
    fn issued_prefixes_do_not_overlap_between_buckets() {
        let (a, b) = (bucket("health", "a"), bucket("health", "b"));
        assert_ne!(issued_prefix("health", &a), issued_prefix("health", &b));
        assert!(!issued_prefix("health", &a).starts_with(&department_user("health-x")));
    }
}
