//! Traits: the `key:value` capability labels foundations carry and requests
//! require or forbid (`arch:aarch64`, `cpu:kunpeng`, `xinchuang`,
//! `security-level:3`).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A validated trait: a lower-case key, optionally `:` and a value.
///
/// Keys are DNS-label-like (`[a-z0-9-]`, at most 63 characters); values allow
/// `[a-z0-9._-]`, at most 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Trait(String);

/// The CPU architectures Yunshu knows.
pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

impl Trait {
    /// The part before `:`.
    pub fn key(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(k, _)| k)
    }

    /// The part after `:`, if any.
    pub fn value(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, v)| v)
    }

    /// The trait as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `arch:<arch>`.
    pub fn arch(arch: &str) -> Result<Self, String> {
        format!("arch:{arch}").parse()
    }
}

fn valid_part(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

impl FromStr for Trait {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, v) = match s.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        if !valid_part(k, &[]) {
            return Err(format!(
                "trait `{s}`: key must be 1-63 characters of a-z, 0-9 and '-', starting and ending alphanumeric"
            ));
        }
        if let Some(v) = v {
            if !valid_part(v, &['.', '_']) {
                return Err(format!(
                    "trait `{s}`: value must be 1-63 characters of a-z, 0-9, '.', '_' and '-', starting and ending alphanumeric"
                ));
            }
            if k == "arch" && !ARCHES.contains(&v) {
                return Err(format!(
                    "trait `{s}`: arch must be one of {}",
                    ARCHES.join(", ")
                ));
            }
            if k == "security-level" && v.parse::<u8>().is_err() {
                return Err(format!("trait `{s}`: security-level must be a number"));
            }
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Trait {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Trait> for String {
    fn from(t: Trait) -> Self {
        t.0
    }
}

impl fmt::Display for Trait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_shapes() {
        for ok in [
            "xinchuang",
            "arch:aarch64",
            "cpu:kunpeng",
            "os:kylin",
            "security-level:3",
            "os:openeuler-22.03",
        ] {
            let t: Trait = ok.parse().expect(ok);
            assert_eq!(t.as_str(), ok);
        }
        let t: Trait = "cpu:kunpeng".parse().expect("valid");
        assert_eq!((t.key(), t.value()), ("cpu", Some("kunpeng")));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "Arch:x86_64",
            "arch:",
            ":x",
            "arch:sparc",
            "security-level:high",
            "-a",
            "a b",
        ] {
            assert!(bad.parse::<Trait>().is_err(), "{bad} should be rejected");
        }
    }
}
