//! The suite's own logic: a small in-memory adapter that keeps the contract
//! passes, and each deliberate breach of it is caught by the check meant to
//! catch it, with everything cleaned up afterwards. (Real adapters run the
//! suite against real clouds in their own tests; a conformance suite cannot
//! be shown to catch violations with a conforming adapter alone.)

#![allow(clippy::unwrap_used, missing_docs)]

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use yunshu_adapter_testkit::{Fixture, Sample, run_conformance};
use yunshu_core::{
    Error, Result,
    adapter::{
        Adapter, Capabilities, CloudResource, DeleteOptions, InstanceAction, IssuedCredentials,
        Owner, Probe,
    },
    meta::Kind,
    model::{
        AdapterKind, BucketSpec, Health, InstanceSpec, InventoryRecord, TenantMapping, VolumeSpec,
    },
    resources::ResourceClass,
};

#[derive(Debug, Default, Clone, Copy)]
struct Breach {
    /// A repeated create makes a second resource.
    duplicate_on_repeat: bool,
    /// Delete answers Ok but keeps the resource.
    delete_keeps: bool,
    /// `get` of an unknown owner answers Ok.
    ghosts_exist: bool,
}

#[derive(Debug, Default)]
struct Memory {
    breach: Breach,
    next: Mutex<u32>,
    /// (kind, uid) → resources, oldest first.
    items: Mutex<BTreeMap<(String, String), Vec<CloudResource>>>,
}

impl Memory {
    fn new(breach: Breach) -> Self {
        Self {
            breach,
            ..Self::default()
        }
    }

    fn key(kind: Kind, o: &Owner) -> (String, String) {
        (kind.plural().to_owned(), o.uid.clone())
    }

    fn create(&self, kind: Kind, o: &Owner) -> CloudResource {
        let mut items = self.items.lock().unwrap();
        let list = items.entry(Self::key(kind, o)).or_default();
        if let Some(first) = list.first()
            && !self.breach.duplicate_on_repeat
        {
            return first.clone();
        }
        let mut n = self.next.lock().unwrap();
        *n += 1;
        let r = CloudResource {
            id: format!("id-{n}"),
            owner_uid: Some(o.uid.clone()),
            status: if kind == Kind::Volume {
                "available".into()
            } else {
                "ACTIVE".into()
            },
            ready: true,
            failed: false,
            addresses: vec![],
            message: String::new(),
            bytes_used: None,
            objects_used: None,
        };
        list.push(r.clone());
        r
    }

    fn set_status(&self, o: &Owner, status: &str) {
        let mut items = self.items.lock().unwrap();
        for r in items
            .get_mut(&Self::key(Kind::Volume, o))
            .into_iter()
            .flatten()
        {
            r.status = status.into();
        }
    }

    fn len(&self) -> usize {
        self.items.lock().unwrap().values().map(Vec::len).sum()
    }
}

#[async_trait]
impl Adapter for Memory {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Remote
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: vec![Kind::Instance, Kind::Volume],
            issues_credentials: false,
        }
    }

    async fn probe(&self) -> Result<Probe> {
        let rec = InventoryRecord {
            total: 8,
            reserved: 0,
            allocation_ratio: 1.0,
            used: 0,
            max_unit: 8,
        };
        Ok(Probe {
            health: Health::Ready,
            latency: Duration::from_millis(1),
            inventory: [(ResourceClass::Vcpu, rec)].into(),
            traits: vec![],
        })
    }

    async fn ensure_tenant(&self, department: &str) -> Result<TenantMapping> {
        Ok(TenantMapping {
            tenant_id: format!("p-{department}"),
            user: department.into(),
        })
    }

    async fn create_instance(&self, o: &Owner, _: &InstanceSpec) -> Result<CloudResource> {
        tokio::task::yield_now().await;
        Ok(self.create(Kind::Instance, o))
    }

    async fn create_volume(&self, o: &Owner, _: &VolumeSpec) -> Result<CloudResource> {
        Ok(self.create(Kind::Volume, o))
    }

    async fn create_bucket(&self, _: &Owner, _: &BucketSpec) -> Result<CloudResource> {
        Err(Error::invalid("kind", "no buckets here"))
    }

    async fn get(&self, kind: Kind, o: &Owner) -> Result<CloudResource> {
        let found = self
            .items
            .lock()
            .unwrap()
            .get(&Self::key(kind, o))
            .and_then(|l| l.first().cloned());
        match found {
            Some(r) => Ok(r),
            None if self.breach.ghosts_exist => Ok(CloudResource {
                id: "ghost".into(),
                owner_uid: None,
                status: "ACTIVE".into(),
                ready: true,
                failed: false,
                addresses: vec![],
                message: String::new(),
                bytes_used: None,
                objects_used: None,
            }),
            None => Err(Error::not_found(format!("{} {}", kind.plural(), o.name))),
        }
    }

    async fn delete(&self, kind: Kind, o: &Owner, _: DeleteOptions) -> Result<()> {
        if !self.breach.delete_keeps {
            self.items.lock().unwrap().remove(&Self::key(kind, o));
        }
        Ok(())
    }

    async fn attach_volume(&self, v: &Owner, _: &Owner) -> Result<()> {
        self.set_status(v, "in-use");
        Ok(())
    }

    async fn detach_volume(&self, v: &Owner) -> Result<()> {
        self.set_status(v, "available");
        Ok(())
    }

    async fn instance_action(&self, _: &Owner, _: InstanceAction) -> Result<()> {
        Ok(())
    }

    async fn list_owned(&self, kind: Kind) -> Result<Vec<CloudResource>> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, _), _)| k == kind.plural())
            .flat_map(|(_, l)| l.iter().cloned())
            .collect())
    }

    async fn issue_credentials(&self, _: &Owner, _: Duration) -> Result<IssuedCredentials> {
        Err(Error::invalid("kind", "no credentials here"))
    }

    async fn revoke_credentials(&self, _: &Owner, _: &str) -> Result<()> {
        Err(Error::invalid("kind", "no credentials here"))
    }
}

fn fixture() -> Fixture {
    Fixture {
        department: "selftest".into(),
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
        ready_timeout: Duration::from_millis(800),
    }
}

#[tokio::test]
async fn a_conforming_adapter_passes_every_check() {
    let m = Memory::new(Breach::default());
    let report = run_conformance(&m, &fixture())
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    for name in [
        "probe",
        "ensure_tenant twice",
        "unsupported kinds refused",
        "instance never created",
        "instance#0 create twice concurrently",
        "instance#0 ready",
        "volume#1 list_owned",
        "volume attach",
        "volume detach",
    ] {
        assert!(report.check(name).is_some(), "no `{name}` in\n{report}");
    }
    assert_eq!(m.len(), 0, "the suite deletes what it made");
}

#[tokio::test]
async fn a_duplicate_on_repeat_is_caught_and_cleaned_up() {
    let m = Memory::new(Breach {
        duplicate_on_repeat: true,
        ..Breach::default()
    });
    let f = run_conformance(&m, &fixture()).await.unwrap_err();
    assert_eq!(f.check, "instance#0 create twice concurrently", "{f}");
    assert!(f.reason.contains("two cloud resources"), "{f}");
    assert!(
        f.to_string()
            .starts_with("conformance check `instance#0 create twice concurrently` failed")
    );
    assert_eq!(m.len(), 0, "cleanup deleted both: {f}");
}

#[tokio::test]
async fn a_delete_that_keeps_the_resource_is_caught_and_reported() {
    let m = Memory::new(Breach {
        delete_keeps: true,
        ..Breach::default()
    });
    let f = run_conformance(&m, &fixture()).await.unwrap_err();
    assert!(f.check.ends_with(" delete"), "{f}");
    assert!(f.reason.contains("get until NotFound"), "{f}");
}

#[tokio::test]
async fn a_ghost_get_is_caught() {
    let m = Memory::new(Breach {
        ghosts_exist: true,
        ..Breach::default()
    });
    let f = run_conformance(&m, &fixture()).await.unwrap_err();
    assert_eq!(f.check, "instance never created", "{f}");
}
