//! The shared adapter conformance suite against both real S3 servers.

mod common;

use std::time::Duration;

use common::{backend, run_id, setup};
use yunshu_adapter_testkit::{Fixture, Sample, run_conformance};
use yunshu_core::model::BucketSpec;

async fn run(var: &str, name: &'static str) {
    let Some(b) = backend(var, name) else { return };
    let s = setup(&b, &format!("{name}-conformance"));
    let department = format!("tk{}", run_id());
    let fixture = Fixture {
        department: department.clone(),
        samples: vec![Sample::Bucket(BucketSpec {
            quota_bytes: 8 << 20,
            quota_objects: Some(1000),
            versioning: true,
            constraints: Default::default(),
        })],
        ready_timeout: Duration::from_secs(60),
    };
    let outcome = run_conformance(&s.adapter, &fixture).await;
    // The suite deletes what it made; the department's user goes too.
    let removed = s.adapter.remove_tenant(&department).await;
    match outcome {
        Ok(report) => eprintln!("[{name}] {report}"),
        Err(failure) => panic!("[{name}] {failure}"),
    }
    removed.expect("remove the test department's tenant");
}

#[tokio::test]
async fn ceph_rgw_passes_conformance() {
    run("YUNSHU_S3_CEPH_STATE", "ceph").await;
}

#[tokio::test]
async fn seaweedfs_passes_conformance() {
    run("YUNSHU_S3_SEAWEEDFS_STATE", "seaweedfs").await;
}
