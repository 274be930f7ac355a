//! The checks on one resource's life: unsupported kinds, owners never
//! created, create and readiness, attach and detach, credentials, deletion.

use std::time::Duration;

use tokio::time::Instant;
use yunshu_core::{
    Error, ErrorKind,
    adapter::{CloudResource, DeleteOptions, Owner},
    meta::Kind,
    model::{BucketSpec, InstanceSpec, VolumeSpec},
};

use crate::{
    Sample,
    run::{Failed, Run, describe, label, poll},
};

impl Run<'_> {
    pub(crate) async fn unsupported_kinds(&mut self, supported: &[Kind]) -> Result<(), Failed> {
        let t = Instant::now();
        let name = "unsupported kinds refused";
        let mut refused = Vec::new();
        for kind in [Kind::Instance, Kind::Volume, Kind::Bucket] {
            if supported.contains(&kind) {
                continue;
            }
            let owner = self.owner();
            let sample = match kind {
                Kind::Instance => Sample::Instance(InstanceSpec {
                    vcpu: 1,
                    memory_mib: 512,
                    disk_gib: 1,
                    image: "none".into(),
                    constraints: Default::default(),
                    group: None,
                    power: Default::default(),
                }),
                Kind::Volume => Sample::Volume(VolumeSpec {
                    size_gib: 1,
                    attach_to: None,
                    constraints: Default::default(),
                }),
                _ => Sample::Bucket(BucketSpec {
                    quota_bytes: 1 << 20,
                    quota_objects: None,
                    versioning: false,
                    constraints: Default::default(),
                }),
            };
            match self.create(&owner, &sample).await {
                Err(e) if e.kind() == ErrorKind::Invalid => refused.push(label(kind)),
                Err(e) => {
                    return Err((
                        name.into(),
                        format!(
                            "create {}: want Invalid, got {} error: {e}",
                            label(kind),
                            e.kind()
                        ),
                    ));
                }
                Ok(r) => {
                    self.created.push((kind, owner));
                    return Err((
                        name.into(),
                        format!(
                            "create {} succeeded ({}) though capabilities() omits it",
                            label(kind),
                            describe(&r)
                        ),
                    ));
                }
            }
        }
        self.pass(
            name,
            t,
            if refused.is_empty() {
                "none to try".to_owned()
            } else {
                refused.join(", ")
            },
        );
        Ok(())
    }

    pub(crate) async fn never_created(&mut self) -> Result<(), Failed> {
        let mut kinds: Vec<Kind> = self.fixture.samples.iter().map(Sample::kind).collect();
        kinds.dedup();
        for kind in kinds {
            let t = Instant::now();
            let name = format!("{} never created", label(kind));
            let ghost = self.owner();
            match self.adapter.get(kind, &ghost).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err((
                        name,
                        format!("get: want NotFound, got {} error: {e}", e.kind()),
                    ));
                }
                Ok(r) => return Err((name, format!("get: want NotFound, got {}", describe(&r)))),
            }
            self.adapter
                .delete(kind, &ghost, DeleteOptions::default())
                .await
                .map_err(|e| {
                    (
                        name.clone(),
                        format!("delete: want Ok, got {} error: {e}", e.kind()),
                    )
                })?;
            self.pass(&name, t, "get NotFound, delete Ok");
        }
        Ok(())
    }

    pub(crate) async fn create_and_check(
        &mut self,
        i: usize,
        sample: &Sample,
    ) -> Result<Owner, Failed> {
        let kind = sample.kind();
        let tag = format!("{}#{i}", label(kind));
        let owner = self.owner();
        self.created.push((kind, owner.clone()));

        let t = Instant::now();
        let name = format!("{tag} create twice concurrently");
        let (a, b) = futures::join!(self.create(&owner, sample), self.create(&owner, sample));
        let a = a.map_err(|e| (name.clone(), format!("{} error: {e}", e.kind())))?;
        let b = b.map_err(|e| (name.clone(), format!("{} error: {e}", e.kind())))?;
        if a.id != b.id {
            return Err((
                name,
                format!("two cloud resources for one uid: {} and {}", a.id, b.id),
            ));
        }
        self.pass(&name, t, format!("{} as {}", describe(&a), owner.name));

        let t2 = Instant::now();
        let name = format!("{tag} create repeated");
        let c = self
            .create(&owner, sample)
            .await
            .map_err(|e| (name.clone(), format!("{} error: {e}", e.kind())))?;
        if c.id != a.id {
            return Err((
                name,
                format!("the repeat made {} instead of returning {}", c.id, a.id),
            ));
        }
        self.pass(&name, t2, format!("same id {}", c.id));

        let name = format!("{tag} ready");
        let adapter = self.adapter;
        let ready = poll(self.fixture.ready_timeout, "get until ready", || async {
            match adapter.get(kind, &owner).await {
                Ok(r) if r.failed => Err(Error::internal(format!(
                    "the cloud failed it: {}",
                    describe(&r)
                ))),
                Ok(r) if r.ready => Ok(Some(r)),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|r| (name.clone(), r))?;
        if ready.id != a.id {
            return Err((
                name,
                format!("get returned {} but create returned {}", ready.id, a.id),
            ));
        }
        if ready.owner_uid.as_deref() != Some(owner.uid.as_str()) {
            return Err((
                name,
                format!("owner_uid is {:?}, want {}", ready.owner_uid, owner.uid),
            ));
        }
        self.pass(
            &name,
            t,
            format!("{} since the first create", describe(&ready)),
        );

        let t = Instant::now();
        let name = format!("{tag} list_owned");
        let listed = self
            .adapter
            .list_owned(kind)
            .await
            .map_err(|e| (name.clone(), format!("{} error: {e}", e.kind())))?;
        let mine: Vec<&CloudResource> = listed
            .iter()
            .filter(|r| r.owner_uid.as_deref() == Some(owner.uid.as_str()))
            .collect();
        if mine.len() != 1 || mine[0].id != a.id {
            return Err((
                name,
                format!(
                    "want exactly {} with uid {}, found {:?}",
                    a.id,
                    owner.uid,
                    mine.iter().map(|r| &r.id).collect::<Vec<_>>()
                ),
            ));
        }
        if let Some(stray) = listed.iter().find(|r| r.owner_uid.is_none()) {
            return Err((
                name,
                format!("listed {} which carries no owner uid", stray.id),
            ));
        }
        self.pass(
            &name,
            t,
            format!("{} owned {}s in all", listed.len(), label(kind)),
        );
        Ok(owner)
    }

    pub(crate) async fn attach_detach(&mut self, vol: &Owner, inst: &Owner) -> Result<(), Failed> {
        let adapter = self.adapter;
        let timeout = self.fixture.ready_timeout;
        let t = Instant::now();
        let name = "volume attach";
        let before = adapter
            .get(Kind::Volume, vol)
            .await
            .map_err(|e| (name.to_owned(), format!("get volume: {e}")))?;
        poll(timeout, "attach_volume", || async {
            adapter.attach_volume(vol, inst).await.map(Some)
        })
        .await
        .map_err(|r| (name.to_owned(), r))?;
        let attached = poll(
            timeout,
            "volume status to change from before the attach",
            || async {
                let r = adapter.get(Kind::Volume, vol).await?;
                Ok((r.ready && r.status != before.status).then_some(r))
            },
        )
        .await
        .map_err(|r| (name.to_owned(), r))?;
        poll(timeout, "attach_volume repeated", || async {
            adapter.attach_volume(vol, inst).await.map(Some)
        })
        .await
        .map_err(|r| (name.to_owned(), r))?;
        self.pass(
            name,
            t,
            format!("{} -> {}", before.status, describe(&attached)),
        );

        let t = Instant::now();
        let name = "volume detach";
        poll(timeout, "detach_volume", || async {
            adapter.detach_volume(vol).await.map(Some)
        })
        .await
        .map_err(|r| (name.to_owned(), r))?;
        let detached = poll(
            timeout,
            "volume status to return to its pre-attach value",
            || async {
                let r = adapter.get(Kind::Volume, vol).await?;
                Ok((r.ready && r.status == before.status).then_some(r))
            },
        )
        .await
        .map_err(|r| (name.to_owned(), r))?;
        adapter.detach_volume(vol).await.map_err(|e| {
            (
                name.to_owned(),
                format!("detach_volume repeated: {} error: {e}", e.kind()),
            )
        })?;
        self.pass(name, t, format!("back to {}", detached.status));
        Ok(())
    }

    pub(crate) async fn credentials(&mut self, bucket: &Owner) -> Result<(), Failed> {
        let t = Instant::now();
        let name = "credentials issue and revoke";
        let c = self
            .adapter
            .issue_credentials(bucket, Duration::from_secs(3600))
            .await
            .map_err(|e| (name.to_owned(), format!("issue: {} error: {e}", e.kind())))?;
        if c.access_key.is_empty() || c.secret_key.is_empty() || c.access_key == c.secret_key {
            return Err((
                name.into(),
                "issued an empty access key or secret, or the same value for both".into(),
            ));
        }
        for round in ["first", "second"] {
            self.adapter
                .revoke_credentials(bucket, &c.access_key)
                .await
                .map_err(|e| {
                    (
                        name.to_owned(),
                        format!("{round} revoke: {} error: {e}", e.kind()),
                    )
                })?;
        }
        self.pass(
            name,
            t,
            format!("access key {}, revoked twice", c.access_key),
        );
        Ok(())
    }

    pub(crate) async fn delete_and_check(
        &mut self,
        kind: Kind,
        owner: &Owner,
    ) -> Result<(), Failed> {
        let adapter = self.adapter;
        let timeout = self.fixture.ready_timeout;
        let t = Instant::now();
        let name = format!("{} {} delete", label(kind), owner.name);
        for round in ["first", "second"] {
            adapter
                .delete(kind, owner, DeleteOptions::default())
                .await
                .map_err(|e| {
                    (
                        name.clone(),
                        format!("{round} delete: {} error: {e}", e.kind()),
                    )
                })?;
        }
        poll(timeout, "get until NotFound", || async {
            match adapter.get(kind, owner).await {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some(())),
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|r| (name.clone(), r))?;
        poll(timeout, "list_owned without the uid", || async {
            let listed = adapter.list_owned(kind).await?;
            Ok((!listed
                .iter()
                .any(|r| r.owner_uid.as_deref() == Some(owner.uid.as_str())))
            .then_some(()))
        })
        .await
        .map_err(|r| (name.clone(), r))?;
        self.created
            .retain(|(k, o)| !(*k == kind && o.uid == owner.uid));
        self.pass(&name, t, "deleted twice, then NotFound and not listed");
        Ok(())
    }
}
