//! Hand-written OpenAPI schemas for fields whose bounds span more than one
//! value: trait lists, names, resource-class maps and condition lists.

use schemars::{Schema, SchemaGenerator, json_schema};
use yunshu_core::resources::ResourceClass;

/// A trait: a DNS-label key, optionally `:` and a value of `[a-z0-9._-]`.
pub(crate) const TRAIT_PATTERN: &str =
    "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?)?$";

/// An RFC 1123 label, as Kubernetes names of foundations and departments are.
pub(crate) const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/// A CEL list literal of every resource class name, e.g. `['vcpu', 'memory_mib']`.
fn class_list() -> String {
    let names: Vec<String> = ResourceClass::ALL
        .iter()
        .map(|c| format!("'{}'", c.as_str()))
        .collect();
    format!("[{}]", names.join(", "))
}

/// A list of traits: each well-formed, no duplicates, at most one `arch:`,
/// known architectures and numeric security levels.
pub(crate) fn traits(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 64,
        "x-kubernetes-list-type": "set",
        "items": { "type": "string", "maxLength": 127, "pattern": TRAIT_PATTERN },
        "x-kubernetes-validations": [
            {
                "rule": "self.filter(t, t.startsWith('arch:')).size() <= 1",
                "message": "at most one arch: trait"
            },
            {
                "rule": "self.all(t, !t.startsWith('arch:') || t in ['arch:x86_64', 'arch:aarch64'])",
                "message": "arch must be x86_64 or aarch64"
            },
            {
                "rule": "self.all(t, !t.startsWith('security-level:') || t.matches('^security-level:[0-9]{1,3}$'))",
                "message": "security-level must be a number"
            }
        ]
    })
}

/// A list of distinct DNS-label names (foundations, zones).
pub(crate) fn name_set(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 64,
        "x-kubernetes-list-type": "set",
        "items": { "type": "string", "maxLength": 63, "pattern": DNS_LABEL_PATTERN }
    })
}

/// An optional DNS-label name.
pub(crate) fn dns_label(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "maxLength": 63, "pattern": DNS_LABEL_PATTERN })
}

fn class_rule() -> serde_json::Value {
    serde_json::json!({
        "rule": format!("self.all(k, k in {})", class_list()),
        "message": format!("keys must be resource classes: {}", class_names()),
    })
}

fn class_names() -> String {
    ResourceClass::ALL.map(ResourceClass::as_str).join(", ")
}

/// A map from resource class to a whole amount (quota limits, usage, capacity).
pub(crate) fn class_amounts(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 6,
        "additionalProperties": { "type": "integer", "format": "int64", "minimum": 0 },
        "x-kubernetes-validations": [class_rule()]
    })
}

/// A map from resource class to a non-negative price per unit-hour.
pub(crate) fn class_prices(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 6,
        "additionalProperties": { "type": "number", "minimum": 0 },
        "x-kubernetes-validations": [class_rule()]
    })
}

/// A map from resource class to an overcommit ratio in [0.01, 100].
pub(crate) fn class_ratios(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 6,
        "additionalProperties": {
            "type": "number",
            "minimum": 0.01,
            "maximum": 100
        },
        "x-kubernetes-validations": [class_rule()]
    })
}

/// Per-foundation quota limits: foundation name to class amounts.
pub(crate) fn per_foundation_limits(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": class_amounts(generator)
    })
}

/// Standard conditions, a list keyed by `type`.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 16,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": <crate::Condition as schemars::JsonSchema>::json_schema(generator)
    })
}
