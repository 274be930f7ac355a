//! The standalone configuration file (`--config`): the catalog, and the
//! departments, foundations and placement policies to declare at startup.
//! Declared objects are created when missing and their spec updated when it
//! differs, so the file is the source of truth for what it names; objects it
//! does not name are left alone. In Kubernetes mode the CRDs take this role.
//!
//! ```yaml
//! catalog: { sizes: [...], images: [...], maxDiskGib: 2048, maxVolumeGib: 16384 }   # optional
//! departments:
//!   - name: health
//!     spec:
//!       displayName: Health Commission
//!       identities:
//!         - { type: apiToken, id: ci, sha256: "<hex sha256 of the token>", role: operator }
//!       quota: { hard: { vcpu: 48, memory_mib: 98304 } }
//! foundations:
//!   - name: kunpeng-1
//!     spec: { adapter: openstack, endpoint: "http://127.0.0.1:5000/v3", traits: [arch:aarch64, xinchuang] }
//! placementPolicies:
//!   - name: default
//!     spec: { strategy: spread }
//! auth:                       # see yunshu-auth: mtls, oidc, apiTokens
//!   apiTokens: true
//! ```

use std::path::Path;

use serde::Deserialize;
use yunshu_core::{
    catalog::Catalog,
    codec, keys,
    meta::{Object, Spec},
    model::{DepartmentSpec, FoundationSpec, PlacementPolicySpec},
    store::{Compare, Op, Store, Txn},
};

/// A named object's declaration.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "S: Spec")]
pub struct Declared<S: Spec> {
    /// The object's name.
    pub name: String,
    /// Its spec.
    pub spec: S,
}

/// The configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Sizes and images departments may request; the built-in catalog when absent.
    #[serde(default)]
    pub catalog: Option<Catalog>,
    /// Departments to declare.
    #[serde(default)]
    pub departments: Vec<Declared<DepartmentSpec>>,
    /// Foundations to declare.
    #[serde(default)]
    pub foundations: Vec<Declared<FoundationSpec>>,
    /// Placement policies to declare.
    #[serde(default)]
    pub placement_policies: Vec<Declared<PlacementPolicySpec>>,
    /// How callers authenticate (see `yunshu_auth::AuthConfig`); API tokens only when absent.
    #[serde(default)]
    pub auth: Option<yunshu_auth::AuthConfig>,
}

impl Config {
    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("failed to read --config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))
    }

    /// Parses and checks a configuration document.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = serde_yaml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    /// Names must be DNS labels and token hashes 64 hex digits: a bad hash
    /// would otherwise never match and lock its owner out silently.
    fn check(&self) -> anyhow::Result<()> {
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        let names = self
            .departments
            .iter()
            .map(|d| ("departments", &d.name))
            .chain(self.foundations.iter().map(|f| ("foundations", &f.name)))
            .chain(
                self.placement_policies
                    .iter()
                    .map(|p| ("placementPolicies", &p.name)),
            );
        for (section, name) in names {
            anyhow::ensure!(
                label(name),
                "{section}: name `{name}` must be a DNS label (a-z, 0-9, '-', at most 63)"
            );
        }
        for d in &self.departments {
            for (i, id) in d.spec.identities.iter().enumerate() {
                if let yunshu_core::model::Identity::ApiToken { sha256, .. } = id {
                    anyhow::ensure!(
                        sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                        "departments `{}`: identities[{i}].sha256 must be 64 hex digits, the SHA-256 of the token as `yunshu token` prints it",
                        d.name
                    );
                }
            }
        }
        Ok(())
    }

    /// Creates or updates every declared object.
    pub async fn apply(&self, store: &dyn Store) -> anyhow::Result<usize> {
        let mut changed = 0;
        for d in &self.departments {
            changed += usize::from(declare(store, d).await?);
        }
        for f in &self.foundations {
            changed += usize::from(declare(store, f).await?);
        }
        for p in &self.placement_policies {
            changed += usize::from(declare(store, p).await?);
        }
        Ok(changed)
    }
}

/// Creates the object, or replaces its spec if it differs; true if it wrote.
async fn declare<S: Spec>(store: &dyn Store, d: &Declared<S>) -> anyhow::Result<bool> {
    let key = keys::object(S::KIND, None, &d.name);
    let (object, guard) = match store.get(&key).await? {
        Some(kv) => {
            let mut o: Object<S> = codec::decode_object(&kv)?;
            if o.spec == d.spec {
                return Ok(false);
            }
            o.spec = d.spec.clone();
            o.meta.generation += 1;
            (o, kv.mod_revision)
        }
        None => (Object::new(None, &d.name, d.spec.clone()), 0),
    };
    let resp = store
        .txn(
            Txn::new()
                .when([Compare::unchanged(&key, guard)])
                .and_then([Op::put(&key, codec::encode(&object)?)]),
        )
        .await?;
    anyhow::ensure!(
        resp.succeeded,
        "{} {} changed while the config was applied; restart to apply again",
        S::KIND,
        d.name
    );
    tracing::info!(kind = %S::KIND, name = %d.name, "declared from config");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use yunshu_core::resources::ResourceClass;

    use super::*;

    const SAMPLE: &str = r#"
departments:
  - name: health
    spec:
      displayName: Health Commission
      identities:
        - { type: apiToken, id: ci, sha256: "0000000000000000000000000000000000000000000000000000000000000000", role: operator }
      quota: { hard: { vcpu: 48 } }
foundations:
  - name: kunpeng-1
    spec: { adapter: openstack, endpoint: "http://127.0.0.1:5000/v3", traits: ["arch:aarch64", xinchuang] }
placementPolicies:
  - name: default
    spec: { strategy: binpack }
"#;

    #[test]
    fn parses_the_documented_shape() {
        let c: Config = serde_yaml::from_str(SAMPLE).expect("parse");
        assert_eq!(
            c.departments[0].spec.quota.hard.get(&ResourceClass::Vcpu),
            Some(&48)
        );
        assert_eq!(c.foundations[0].spec.traits.len(), 2);
        assert!(
            serde_yaml::from_str::<Config>("departmnts: []").is_err(),
            "typos are refused"
        );
        assert!(
            serde_yaml::from_str::<Config>(
                "foundations: [{name: a, spec: {adapter: openstack, endpoint: x, traits: [Bad]}}]"
            )
            .is_err()
        );
    }

    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### The configuration file")
            .nth(1)
            .expect("section");
        let block = section
            .split("```yaml")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("yaml block");
        let block = block.replace("<sha256 of the whole token>", &"0".repeat(64));
        let c = Config::parse(&block).expect("the README's configuration example parses");
        assert_eq!(c.foundations[0].name, "kunpeng-1");
        assert!(c.catalog.is_some() && c.auth.is_some());
    }

    #[test]
    fn bad_names_and_hashes_are_refused() {
        let bad_hash = "departments: [{name: health, spec: {identities: [{type: apiToken, id: x, sha256: abc, role: operator}]}}]";
        let err = Config::parse(bad_hash).expect_err("short hash").to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        let err = Config::parse("departments: [{name: Health, spec: {}}]")
            .expect_err("name")
            .to_string();
        assert!(err.contains("DNS label"), "{err}");
    }

    #[tokio::test]
    async fn applying_twice_changes_nothing_the_second_time() {
        let store = yunshu_store::EmbeddedStore::in_memory().expect("store");
        let c: Config = serde_yaml::from_str(SAMPLE).expect("parse");
        assert_eq!(c.apply(&store).await.expect("apply"), 3);
        assert_eq!(c.apply(&store).await.expect("apply"), 0);
    }
}
