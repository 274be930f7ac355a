//! Conversions from CR specs into the core model: the error naming the field
//! the core model refuses, and the parsers the specs share.

use std::collections::BTreeMap;

use yunshu_core::{
    resources::{ResourceClass, Resources},
    traits::Trait,
};

/// A spec field that the core model refuses, named by its path in the CR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct ConversionError {
    /// The field's path, e.g. `spec.traits[2]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConversionError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses each trait of the list at `field`.
pub(crate) fn traits(field: &str, list: Vec<String>) -> Result<Vec<Trait>, ConversionError> {
    list.into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.parse()
                .map_err(|e| ConversionError::new(format!("{field}[{i}]"), e))
        })
        .collect()
}

/// Parses the resource-class keys of the map at `field`.
pub(crate) fn classes<T>(
    field: &str,
    map: BTreeMap<String, T>,
) -> Result<BTreeMap<ResourceClass, T>, ConversionError> {
    map.into_iter()
        .map(|(k, v)| {
            let class = k
                .parse()
                .map_err(|e| ConversionError::new(format!("{field}.{k}"), e))?;
            Ok((class, v))
        })
        .collect()
}

/// Parses the map of amounts at `field`.
pub(crate) fn resources(
    field: &str,
    map: BTreeMap<String, u64>,
) -> Result<Resources, ConversionError> {
    Ok(Resources::from_pairs(classes(field, map)?))
}

/// Every class with its amount, zeros included, so printer columns show `0`.
pub(crate) fn amounts(r: &Resources) -> BTreeMap<String, u64> {
    ResourceClass::ALL
        .into_iter()
        .map(|c| (c.as_str().to_owned(), r.get(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use yunshu_core::model as core;

    use super::*;
    use crate::{DepartmentStatus, FoundationSpec, foundation::AdapterKind};

    fn foundation(traits: &[&str]) -> FoundationSpec {
        FoundationSpec {
            adapter: AdapterKind::Openstack,
            endpoint: "https://keystone.example:5000/v3".into(),
            region: None,
            zones: vec![],
            credentials_secret_ref: None,
            traits: traits.iter().map(|t| (*t).to_owned()).collect(),
            allocation_ratios: BTreeMap::from([("vcpu".to_owned(), 4.0)]),
            tariff: BTreeMap::new(),
            pue: None,
            budget: None,
            capacity: BTreeMap::new(),
            settings: BTreeMap::new(),
        }
    }

    #[test]
    fn a_refused_trait_is_named_by_its_path() {
        let err = core::FoundationSpec::try_from(foundation(&["xinchuang", "arch:riscv64"]))
            .expect_err("riscv64 is not a known arch");
        assert_eq!(err.field, "spec.traits[1]");
        assert!(err.message.contains("arch must be one of"), "{err}");
    }

    #[test]
    fn a_foundation_converts_with_default_budget_and_ratios() {
        let spec = core::FoundationSpec::try_from(foundation(&["arch:aarch64"])).expect("valid");
        assert_eq!(spec.budget, core::Budget::default());
        assert_eq!(spec.allocation_ratios.get(&ResourceClass::Vcpu), Some(&4.0));
        assert_eq!(spec.traits[0].as_str(), "arch:aarch64");
    }

    #[test]
    fn an_unknown_class_is_named_by_its_path() {
        let mut f = foundation(&[]);
        f.tariff.insert("gpu".into(), 1.0);
        let err = core::FoundationSpec::try_from(f).expect_err("gpu is no class");
        assert_eq!(err.field, "spec.tariff.gpu");
    }

    #[test]
    fn department_usage_lists_every_class_so_columns_show_zero() {
        let status = DepartmentStatus::from_core(core::DepartmentStatus::default(), 3);
        assert_eq!(status.usage.len(), ResourceClass::ALL.len());
        assert_eq!(status.usage.get("vcpu"), Some(&0));
        assert_eq!(status.observed_generation, 3);
    }
}
