//! The committed CRD YAML (and the Helm chart's copy) must equal what the
//! types generate.

use std::path::PathBuf;

use kube::CustomResourceExt;
use yunshu_crds::{CHART_CRDS_FILE, CRDS_FILE, Foundation, crds, generate};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_yaml_matches_generated() {
    let root = repo_root();
    if std::env::var_os("YUNSHU_UPDATE_CRDS").is_some() {
        yunshu_crds::write(&root).expect("write the generated CRDs");
    }
    let generated = generate();
    for rel in [CRDS_FILE, CHART_CRDS_FILE] {
        let committed = std::fs::read_to_string(root.join(rel)).unwrap_or_default();
        assert!(
            committed == generated,
            "{rel} is not what the CRD types generate; regenerate it with \
             `yunshu crdgen` or `YUNSHU_UPDATE_CRDS=1 cargo test -p yunshu-crds --test generated` \
             and commit the result"
        );
    }
}

#[test]
fn at_most_eight_crds_each_with_status_short_names_and_category() {
    let all = crds();
    assert!(all.len() <= 8, "{} CRDs", all.len());
    let mut short_names = Vec::new();
    for crd in &all {
        assert_eq!(crd.spec.group, "yunshu.io");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has no status subresource",
            crd.spec.names.kind
        );
        let names = &crd.spec.names;
        assert_eq!(
            names.categories.as_deref(),
            Some(&["yunshu".to_owned()][..])
        );
        short_names.extend(names.short_names.clone().unwrap_or_default());
    }
    assert_eq!(short_names, ["fdn", "dept", "ppol", "inst", "vol", "bkt"]);
    let scopes: Vec<_> = all.iter().map(|c| c.spec.scope.as_str()).collect();
    assert_eq!(
        scopes,
        [
            "Cluster",
            "Cluster",
            "Cluster",
            "Namespaced",
            "Namespaced",
            "Namespaced"
        ]
    );
}

#[test]
fn foundation_columns_are_what_an_admin_reads() {
    let crd = Foundation::crd();
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Adapter",
            "Arch",
            "Ready",
            "Reason",
            "vCPU Used",
            "vCPU Total",
            "Memory Used MiB",
            "Memory Total MiB",
            "Age"
        ]
    );
    let wide: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority == Some(1))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        wide,
        [
            "Disk Used GiB",
            "Disk Total GiB",
            "Volume Used GiB",
            "Volume Total GiB",
            "Region",
            "Latency ms"
        ]
    );
}
