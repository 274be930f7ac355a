//! The suite's runner: state of one run, polling, and the order of checks.

use std::{future::Future, time::Duration};

use tokio::time::{Instant, sleep};
use tracing::{info, warn};
use uuid::Uuid;
use yunshu_core::{
    Error,
    adapter::{Adapter, CloudResource, DeleteOptions, Owner},
    meta::Kind,
    model::Health,
};

use crate::{Check, Fixture, Report, Sample};

/// A failed check: its name and the reason.
pub(crate) type Failed = (String, String);

pub(crate) struct Run<'a> {
    pub(crate) adapter: &'a dyn Adapter,
    pub(crate) fixture: &'a Fixture,
    pub(crate) report: Report,
    /// Owners of resources that may exist on the cloud, in creation order.
    pub(crate) created: Vec<(Kind, Owner)>,
}

pub(crate) fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Instance => "instance",
        Kind::Volume => "volume",
        Kind::Bucket => "bucket",
        Kind::Foundation => "foundation",
        Kind::Department => "department",
        Kind::PlacementPolicy => "placementpolicy",
    }
}

pub(crate) fn describe(r: &CloudResource) -> String {
    let mut s = format!("id {} status {}", r.id, r.status);
    if !r.addresses.is_empty() {
        s.push_str(&format!(" addresses {}", r.addresses.join(",")));
    }
    if !r.message.is_empty() {
        s.push_str(&format!(" ({})", r.message));
    }
    s
}

/// A poll interval that starts fine (so fast clouds are timed well) and
/// backs off to spare slow ones.
pub(crate) fn interval(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_secs(3) {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(500)
    }
}

/// Polls `step` until it yields `Some`, fails, or `timeout` passes.
/// Retryable errors count as "not yet".
pub(crate) async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut step: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let started = Instant::now();
    loop {
        let last = match step().await {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => "not yet".to_owned(),
            Err(e) if e.kind().is_retryable() => format!("{} error: {e}", e.kind()),
            Err(e) => return Err(format!("{what}: {} error: {e}", e.kind())),
        };
        if started.elapsed() >= timeout {
            return Err(format!(
                "{what}: not reached within {timeout:?} (last: {last})"
            ));
        }
        sleep(interval(started)).await;
    }
}

impl Run<'_> {
    pub(crate) fn pass(&mut self, name: &str, started: Instant, detail: impl Into<String>) {
        let check = Check {
            name: name.to_owned(),
            elapsed: started.elapsed(),
            detail: detail.into(),
        };
        info!(check = %check.name, elapsed = ?check.elapsed, detail = %check.detail, "conformance check passed");
        self.report.checks.push(check);
    }

    pub(crate) fn owner(&self) -> Owner {
        let uid = Uuid::new_v4();
        let short = uid.simple().to_string();
        Owner {
            department: self.fixture.department.clone(),
            name: format!("tk-{}", &short[..8]),
            uid: uid.to_string(),
        }
    }

    pub(crate) async fn create(
        &self,
        owner: &Owner,
        sample: &Sample,
    ) -> Result<CloudResource, Error> {
        match sample {
            Sample::Instance(s) => self.adapter.create_instance(owner, s).await,
            Sample::Volume(s) => self.adapter.create_volume(owner, s).await,
            Sample::Bucket(s) => self.adapter.create_bucket(owner, s).await,
        }
    }

    pub(crate) async fn all(&mut self) -> Result<(), Failed> {
        let caps = self.adapter.capabilities();
        let t = Instant::now();
        let name = "capabilities";
        for s in &self.fixture.samples {
            if !caps.kinds.contains(&s.kind()) {
                return Err((
                    name.into(),
                    format!(
                        "the fixture has a {} sample but capabilities() lists {:?}",
                        label(s.kind()),
                        caps.kinds
                    ),
                ));
            }
        }
        self.pass(
            name,
            t,
            format!(
                "kinds {:?}, issues credentials: {}",
                caps.kinds, caps.issues_credentials
            ),
        );

        let t = Instant::now();
        let name = "probe";
        let p = self
            .adapter
            .probe()
            .await
            .map_err(|e| (name.to_owned(), format!("{} error: {e}", e.kind())))?;
        if p.health != Health::Ready {
            return Err((name.into(), format!("health is {:?}, want Ready", p.health)));
        }
        if p.inventory.is_empty() {
            return Err((name.into(), "inventory is empty".into()));
        }
        let classes: Vec<String> = p
            .inventory
            .iter()
            .map(|(c, r)| format!("{c}={}/{}", r.used, r.capacity()))
            .collect();
        let traits: Vec<&str> = p.traits.iter().map(|t| t.as_str()).collect();
        self.pass(
            name,
            t,
            format!(
                "Ready, api latency {:?}, {} traits [{}]",
                p.latency,
                classes.join(" "),
                traits.join(",")
            ),
        );

        let t = Instant::now();
        let name = "ensure_tenant twice";
        let dept = &self.fixture.department;
        let a = self.adapter.ensure_tenant(dept).await.map_err(|e| {
            (
                name.to_owned(),
                format!("first call: {} error: {e}", e.kind()),
            )
        })?;
        let b = self.adapter.ensure_tenant(dept).await.map_err(|e| {
            (
                name.to_owned(),
                format!("second call: {} error: {e}", e.kind()),
            )
        })?;
        if a != b || a.tenant_id.is_empty() {
            return Err((
                name.into(),
                format!("first {a:?}, second {b:?}; want the same, non-empty mapping"),
            ));
        }
        self.pass(name, t, format!("tenant {} user {}", a.tenant_id, a.user));

        self.unsupported_kinds(&caps.kinds).await?;
        self.never_created().await?;

        let mut live: Vec<(Kind, Owner)> = Vec::new();
        for (i, sample) in self.fixture.samples.iter().enumerate() {
            let owner = self.create_and_check(i, sample).await?;
            live.push((sample.kind(), owner));
        }
        let first = |k: Kind| {
            live.iter()
                .find(|(kind, _)| *kind == k)
                .map(|(_, o)| o.clone())
        };
        if let (Some(vol), Some(inst)) = (first(Kind::Volume), first(Kind::Instance)) {
            self.attach_detach(&vol, &inst).await?;
        }
        if caps.issues_credentials
            && let Some(bucket) = first(Kind::Bucket)
        {
            self.credentials(&bucket).await?;
        }
        // Volumes before instances (a volume may hold an instance), buckets last.
        live.sort_by_key(|(k, _)| match k {
            Kind::Volume => 0,
            Kind::Instance => 1,
            _ => 2,
        });
        for (kind, owner) in live {
            self.delete_and_check(kind, &owner).await?;
        }
        Ok(())
    }
    /// Best-effort deletion of whatever is left; returns what could not be
    /// deleted.
    pub(crate) async fn cleanup(&mut self) -> Vec<String> {
        let mut left = std::mem::take(&mut self.created);
        left.sort_by_key(|(k, _)| if *k == Kind::Volume { 0 } else { 1 });
        let mut errors = Vec::new();
        for (kind, owner) in left {
            if kind == Kind::Volume {
                let _ = self.adapter.detach_volume(&owner).await;
            }
            let deadline = Instant::now() + self.fixture.ready_timeout;
            loop {
                match self
                    .adapter
                    .delete(kind, &owner, DeleteOptions { purge: true })
                    .await
                {
                    Ok(()) => break,
                    Err(e) if e.kind().is_retryable() && Instant::now() < deadline => {
                        sleep(Duration::from_millis(500)).await
                    }
                    Err(e) => {
                        warn!(kind = label(kind), uid = %owner.uid, error = %e, "conformance cleanup failed");
                        errors.push(format!(
                            "{} {} (uid {}): {} error: {e}",
                            label(kind),
                            owner.name,
                            owner.uid,
                            e.kind()
                        ));
                        break;
                    }
                }
            }
        }
        errors
    }
}
