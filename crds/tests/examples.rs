//! Every example CR under `examples/` validates against the generated schemas
//! (OpenAPI structure and bounds, then CEL rules) and converts into the core
//! model; broken variants of them are refused with the rule's message.

use std::path::PathBuf;

use jsonschema::Draft;
use kube::core::cel::Validator;
use serde::Deserialize;
use serde_json::{Value, json};
use yunshu_core::model as core;
use yunshu_crds::{
    Bucket, DEPARTMENT_LABEL, Department, Foundation, Instance, PlacementPolicy, Volume, crds,
};

/// The openAPIV3Schema of `kind`, from the generated YAML (what is applied).
fn schema_of(kind: &str) -> Value {
    let generated: Vec<Value> = serde_yaml::Deserializer::from_str(&yunshu_crds::generate())
        .map(|doc| Value::deserialize(doc).expect("generated YAML parses"))
        .collect();
    assert_eq!(generated.len(), crds().len());
    let crd = generated
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// OpenAPI v3 to JSON Schema draft 4, and strict about unknown fields as
/// `kubectl apply` (field validation `Strict`) is.
fn strict_json_schema(mut s: Value) -> Value {
    if let Some(obj) = s.as_object_mut() {
        if obj.remove("nullable") == Some(Value::Bool(true))
            && let Some(t) = obj.get("type").cloned()
        {
            obj.insert("type".into(), json!([t, "null"]));
        }
        if obj.contains_key("properties")
            && !obj.contains_key("additionalProperties")
            && !obj.contains_key("x-kubernetes-preserve-unknown-fields")
        {
            obj.insert("additionalProperties".into(), Value::Bool(false));
        }
        for (k, v) in obj.iter_mut() {
            // `properties` is a map of schemas: recurse into each one; other
            // keywords hold a schema (or literal data like `default`, left alone).
            match k.as_str() {
                "properties" => {
                    if let Some(props) = v.as_object_mut() {
                        for p in props.values_mut() {
                            *p = strict_json_schema(p.take());
                        }
                    }
                }
                "items" | "additionalProperties" => *v = strict_json_schema(v.take()),
                _ => {}
            }
        }
    }
    s
}

/// Validates `object` as the apiserver would; returns every message.
fn validate(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().expect("kind");
    let schema = schema_of(kind);
    let mut body = object.clone();
    // The apiserver checks these itself; the CRD schema leaves them out.
    for field in ["apiVersion", "kind", "metadata"] {
        body.as_object_mut().expect("object").remove(field);
    }
    let validator = jsonschema::options()
        .with_draft(Draft::Draft4)
        .build(&strict_json_schema(schema.clone()))
        .expect("schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(cel) = Validator::new().validate(&schema, object, None) {
        errors.extend(cel.into_vec().into_iter().map(|e| e.to_string()));
    }
    errors
}

fn examples() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).expect("example parses");
            docs.push((file.display().to_string(), value));
        }
    }
    docs
}

fn example(kind: &str) -> Value {
    examples()
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == kind && v["apiVersion"] == "yunshu.io/v1alpha1")
        .unwrap_or_else(|| panic!("no {kind} example"))
}

#[test]
fn every_example_validates_and_converts_into_the_core_model() {
    let mut kinds = Vec::new();
    for (file, doc) in examples() {
        if doc["apiVersion"] != "yunshu.io/v1alpha1" {
            // The namespace binding a department's resources.
            assert_eq!(doc["kind"], "Namespace", "{file}");
            assert!(
                doc["metadata"]["labels"][DEPARTMENT_LABEL].is_string(),
                "{file}"
            );
            continue;
        }
        let errors = validate(&doc);
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        let kind = doc["kind"].as_str().expect("kind").to_owned();
        let converted = match kind.as_str() {
            "Foundation" => serde_json::from_value::<Foundation>(doc)
                .map(|f| core::FoundationSpec::try_from(f.spec).map(drop)),
            "Department" => serde_json::from_value::<Department>(doc)
                .map(|d| core::DepartmentSpec::try_from(d.spec).map(drop)),
            "PlacementPolicy" => serde_json::from_value::<PlacementPolicy>(doc).map(|p| {
                let _ = core::PlacementPolicySpec::from(p.spec);
                Ok(())
            }),
            "Instance" => serde_json::from_value::<Instance>(doc)
                .map(|i| core::InstanceSpec::try_from(i.spec).map(drop)),
            "Volume" => serde_json::from_value::<Volume>(doc)
                .map(|v| core::VolumeSpec::try_from(v.spec).map(drop)),
            "Bucket" => serde_json::from_value::<Bucket>(doc)
                .map(|b| core::BucketSpec::try_from(b.spec).map(drop)),
            other => panic!("{file}: unexpected kind {other}"),
        };
        converted
            .unwrap_or_else(|e| panic!("{file}: does not deserialize: {e}"))
            .unwrap_or_else(|e| panic!("{file}: does not convert: {e}"));
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Bucket",
            "Department",
            "Foundation",
            "Instance",
            "PlacementPolicy",
            "Volume"
        ]
    );
}

/// `example(kind)` changed by `edit`, and what validating it says.
fn broken(kind: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut v = example(kind);
    edit(&mut v);
    validate(&v).join("\n")
}

#[test]
fn out_of_bounds_and_unknown_fields_are_refused() {
    let e = broken("Instance", |v| v["spec"]["vcpu"] = json!(0));
    assert!(e.contains("/spec/vcpu"), "{e}");
    let e = broken("Instance", |v| v["spec"]["vcpu"] = json!(513));
    assert!(e.contains("/spec/vcpu"), "{e}");
    let e = broken("Instance", |v| v["spec"]["cpus"] = json!(4));
    assert!(e.contains("cpus"), "{e}");
    let e = broken("Instance", |v| {
        v["spec"]["requiredTraits"] = json!(["Xinchuang"])
    });
    assert!(e.contains("/spec/requiredTraits/0"), "{e}");
    let e = broken("Foundation", |v| v["spec"]["adapter"] = json!("vmware"));
    assert!(e.contains("/spec/adapter"), "{e}");
    let e = broken("Department", |v| {
        v["spec"]["quota"]["hard"]["gpu"] = json!(1)
    });
    assert!(e.contains("keys must be resource classes"), "{e}");
}

#[test]
fn cel_rules_spanning_fields_are_enforced() {
    let e = broken("Instance", |v| {
        v["spec"]["forbiddenTraits"] = json!(["xinchuang"]);
    });
    assert!(
        e.contains("a trait may not be both required and forbidden"),
        "{e}"
    );
    let e = broken("Foundation", |v| {
        v["spec"]["traits"] = json!(["arch:aarch64", "arch:x86_64"]);
    });
    assert!(e.contains("at most one arch: trait"), "{e}");
    let e = broken("Foundation", |v| {
        v["spec"]["traits"] = json!(["arch:riscv64"])
    });
    assert!(e.contains("arch must be x86_64 or aarch64"), "{e}");
    let e = broken("Foundation", |v| {
        v["spec"]["endpoint"] = json!("keystone:5000")
    });
    assert!(e.contains("must be an http:// or https:// URL"), "{e}");
    let e = broken("Foundation", |v| {
        v["spec"]["adapter"] = json!("remote");
        v["spec"]["endpoint"] = json!("vendor-adapter:50061");
    });
    assert!(e.contains("must be an http:// or https:// URL"), "{e}");
    let e = broken("Foundation", |v| {
        v["spec"]["budget"] = json!({"requestsPerSecond": 50, "burst": 10});
    });
    assert!(
        e.contains("burst must be at least requestsPerSecond"),
        "{e}"
    );
    let e = broken("Department", |v| {
        v["spec"]["identities"][0] = json!({"type": "oidcGroup", "role": "viewer"});
    });
    assert!(e.contains("group is required for oidcGroup"), "{e}");
    let e = broken("Department", |v| {
        v["spec"]["quota"]["perFoundation"]["phase-9"] = json!({"vcpu": 1});
    });
    assert!(
        e.contains("may only name foundations in allowedFoundations"),
        "{e}"
    );
}
