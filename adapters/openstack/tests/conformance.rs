//! The adapter conformance suite against both real e2e clouds: an instance
//! (x86_64 on x86-cloud, aarch64 on kunpeng-cloud) and a volume on each.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use yunshu_adapter_testkit::{Fixture, Sample, run_conformance};
use yunshu_core::model::{InstanceSpec, VolumeSpec};

fn fixture() -> Fixture {
    Fixture {
        department: "tk-conformance".into(),
        samples: vec![
            Sample::Instance(InstanceSpec {
                vcpu: 1,
                memory_mib: 512,
                disk_gib: 1,
                image: "kylin-v10".into(),
                constraints: Default::default(),
                group: None,
                power: Default::default(),
            }),
            Sample::Volume(VolumeSpec {
                size_gib: 1,
                attach_to: None,
                constraints: Default::default(),
            }),
        ],
        ready_timeout: Duration::from_secs(180),
    }
}

async fn conformance(cloud: &str) {
    let Some(state) = common::state_dir() else {
        return;
    };
    let (adapter, _) = common::adapter(&state, cloud);
    match run_conformance(&adapter, &fixture()).await {
        Ok(report) => eprintln!("{cloud}: {report}"),
        Err(failure) => panic!("{cloud}: {failure}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x86_cloud_conforms() {
    conformance("x86-cloud").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kunpeng_cloud_conforms() {
    conformance("kunpeng-cloud").await;
}
