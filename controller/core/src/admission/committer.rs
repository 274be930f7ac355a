//! The per-department committer: folds queued changes into one guarded
//! transaction, answers each, and rereads and retries after conflicts.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use tokio::sync::mpsc;

use super::{
    AdmissionConfig, Admitted, Change, Pending, RequestRecord, UsageRecord, observe::ObserverSlot,
    uid_of,
};
use crate::{
    ErrorKind, codec,
    error::{Error, QuotaViolation, Result},
    keys,
    model::Department,
    resources::{Limits, Resources, check_quota},
    store::{Compare, Op, Revision, Store, Txn},
};

/// How many times a busy committer yields to gather more of a batch.
const GATHER_YIELDS: usize = 2;

/// Moves queued changes into `batch` up to `max`; whether any came.
fn drain(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>, max: usize) -> bool {
    let before = batch.len();
    while batch.len() < max {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    batch.len() > before
}

/// What the committer believes about its department.
#[derive(Debug, Clone, PartialEq)]
struct DeptState {
    dept_revision: Revision,
    limits: Limits,
    usage_revision: Revision,
    usage: Resources,
}

pub(super) struct Committer {
    store: Arc<dyn Store>,
    config: AdmissionConfig,
    department: String,
    state: Option<DeptState>,
    observer: ObserverSlot,
}

/// How one change fares in a planned batch.
enum Plan {
    Accept,
    Reject(Error),
}

/// Checks the classes an update grows: `usage - old + new` within limits.
fn check_growth(
    limits: &Limits,
    usage: &Resources,
    old: &Resources,
    new: &Resources,
) -> Result<(), Vec<QuotaViolation>> {
    let violations: Vec<_> = limits
        .iter()
        .filter_map(|(&class, &limit)| {
            let (o, n, u) = (old.get(class), new.get(class), usage.get(class));
            (n > o && u.saturating_sub(o).saturating_add(n) > limit).then(|| QuotaViolation {
                class,
                requested: n - o,
                used: u,
                limit,
            })
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

fn object_key(change: &Change) -> String {
    match change {
        Change::Create(r) => keys::object(r.kind, Some(&r.department), &r.name),
        Change::Update { key, .. } | Change::Release { key, .. } => key.clone(),
    }
}

impl Committer {
    pub(super) fn new(
        store: Arc<dyn Store>,
        config: AdmissionConfig,
        department: &str,
        observer: ObserverSlot,
    ) -> Self {
        Self {
            store,
            config,
            department: department.to_owned(),
            state: None,
            observer,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut last = 0usize;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            drain(&mut rx, &mut batch, self.config.max_batch);
            // Under concurrent load, let the tasks that are already runnable
            // (requests on their way here) run before committing: they join
            // this batch instead of waiting a whole commit for the next one.
            // Each transaction costs a log sync, so fewer, fuller batches buy
            // throughput; a lone caller (last batch of one) never waits.
            if last > 1 {
                for _ in 0..GATHER_YIELDS {
                    if batch.len() >= self.config.max_batch {
                        break;
                    }
                    tokio::task::yield_now().await;
                    if !drain(&mut rx, &mut batch, self.config.max_batch) {
                        break;
                    }
                }
            }
            last = batch.len();
            self.commit(batch).await;
        }
    }

    async fn load(&self) -> Result<DeptState> {
        let dept_key = keys::department(&self.department);
        let usage_key = keys::usage(&self.department);
        let (dept, usage) = futures::join!(self.store.get(&dept_key), self.store.get(&usage_key));
        let dept =
            dept?.ok_or_else(|| Error::not_found(format!("department {}", self.department)))?;
        let department: Department = codec::decode_object(&dept)?;
        let (usage_revision, usage) = match usage? {
            Some(kv) => (
                kv.mod_revision,
                codec::decode::<UsageRecord>(&kv.key, &kv.value)?.usage,
            ),
            None => (0, Resources::ZERO),
        };
        Ok(DeptState {
            dept_revision: dept.mod_revision,
            limits: department.spec.quota.hard,
            usage_revision,
            usage,
        })
    }

    /// Commits a batch, answering every change in it.
    async fn commit(&mut self, mut pending: Vec<Pending>) {
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            if attempt > self.config.max_attempts {
                for p in pending.drain(..) {
                    let _ = p.reply.send(Err(Error::Unavailable {
                        message: format!(
                            "admission for department {} did not settle; retry",
                            self.department
                        ),
                        source: None,
                    }));
                }
                return;
            }
            if attempt > 8 {
                tokio::time::sleep(jitter(attempt)).await;
            }
            let state = match &self.state {
                Some(s) => s.clone(),
                None => match self.load().await {
                    Ok(s) => {
                        self.state = Some(s.clone());
                        s
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        for p in pending.drain(..) {
                            let _ = p.reply.send(Err(Error::not_found(format!(
                                "department {}",
                                self.department
                            ))));
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, department = %self.department, "failed to read department for admission");
                        tokio::time::sleep(jitter(attempt)).await;
                        continue;
                    }
                },
            };
            pending = self.attempt(state, pending).await;
        }
    }

    /// Plans the batch against `state`: which changes fit, and the usage after.
    fn plan(
        &self,
        state: &DeptState,
        pending: Vec<Pending>,
    ) -> (Vec<(Pending, Plan, String)>, Vec<Pending>, Resources) {
        let mut usage = state.usage;
        let mut touched = HashSet::new();
        let mut ids = HashSet::new();
        let mut planned = Vec::with_capacity(pending.len());
        let mut deferred = Vec::new();
        for p in pending {
            // A second change to the same object, or a repeat of a request id
            // already in this batch, waits for the next round.
            // (Two writes of one request key would make the transaction
            // invalid for everyone in the batch.)
            let key = object_key(&p.change);
            let request_id = match &p.change {
                Change::Create(r) => Some(&r.request_id),
                Change::Update {
                    request: Some((id, _)),
                    ..
                } => Some(id),
                Change::Update { .. } | Change::Release { .. } => None,
            };
            let repeat = request_id.is_some_and(|id| !ids.insert(id.clone()));
            if repeat || touched.contains(&key) {
                deferred.push(p);
                continue;
            }
            let plan = match &p.change {
                Change::Create(r) => match check_quota(&state.limits, &usage, &r.charge) {
                    Ok(()) => match usage.checked_add(&r.charge) {
                        Some(u) => {
                            usage = u;
                            Plan::Accept
                        }
                        None => Plan::Reject(Error::invalid("spec", "resource amounts overflow")),
                    },
                    Err(violations) => Plan::Reject(Error::QuotaExceeded { violations }),
                },
                Change::Update {
                    old_charge,
                    new_charge,
                    ..
                } => match check_growth(&state.limits, &usage, old_charge, new_charge) {
                    Ok(()) => match usage.saturating_sub(old_charge).checked_add(new_charge) {
                        Some(u) => {
                            usage = u;
                            Plan::Accept
                        }
                        None => Plan::Reject(Error::invalid("spec", "resource amounts overflow")),
                    },
                    Err(violations) => Plan::Reject(Error::QuotaExceeded { violations }),
                },
                Change::Release { charge, .. } => {
                    usage = usage.saturating_sub(charge);
                    Plan::Accept
                }
            };
            if matches!(plan, Plan::Accept) {
                touched.insert(key.clone());
            }
            planned.push((p, plan, key));
        }
        (planned, deferred, usage)
    }

    /// One transaction over the batch; returns the changes still unanswered.
    async fn attempt(&mut self, state: DeptState, pending: Vec<Pending>) -> Vec<Pending> {
        let (planned, deferred, usage) = self.plan(&state, pending);
        let usage_key = keys::usage(&self.department);
        // Sized up front: two guards and two writes per create is the
        // common batch, and regrowing these showed in profiles.
        let mut txn = Txn {
            compares: Vec::with_capacity(2 + 2 * planned.len()),
            success: Vec::with_capacity(1 + 2 * planned.len()),
            failure: Vec::new(),
        };
        txn.compares.push(Compare::unchanged(
            keys::department(&self.department),
            state.dept_revision,
        ));
        if !self.config.unguarded_usage_for_tests {
            txn.compares
                .push(Compare::unchanged(&usage_key, state.usage_revision));
        }
        let mut writes = false;
        let written_at = crate::requests::unix_now();
        for (p, plan, object_key) in &planned {
            let accept = matches!(plan, Plan::Accept);
            match &p.change {
                Change::Create(r) => {
                    let request_key = keys::request(&r.department, &r.request_id);
                    txn.compares.push(Compare::absent(request_key.clone()));
                    if accept {
                        let record = RequestRecord {
                            object_key: object_key.clone(),
                            uid: r.uid.clone(),
                            fingerprint: r.fingerprint.clone(),
                            written_at,
                        };
                        let Ok(record) = codec::encode(&record) else {
                            continue;
                        };
                        txn.compares.push(Compare::absent(object_key.clone()));
                        txn.success
                            .push(Op::put(object_key.clone(), r.record.clone()));
                        txn.success.push(Op::put(request_key, record));
                        writes = true;
                    }
                }
                Change::Update {
                    department,
                    key,
                    revision,
                    record,
                    request,
                    ..
                } if accept => {
                    txn.compares.push(Compare::unchanged(key, *revision));
                    txn.success.push(Op::put(key, record.clone()));
                    if let Some((request_id, value)) = request {
                        let request_key = keys::request(department, request_id);
                        txn.compares.push(Compare::absent(request_key.clone()));
                        txn.success.push(Op::put(request_key, value.clone()));
                    }
                    writes = true;
                }
                Change::Release { key, revision, .. } => {
                    txn.compares.push(Compare::unchanged(key, *revision));
                    txn.success.push(Op::delete(key));
                    writes = true;
                }
                Change::Update { .. } => {}
            }
        }
        if writes {
            match codec::encode(&UsageRecord { usage }) {
                Ok(v) => txn.success.push(Op::put(usage_key, v)),
                Err(e) => {
                    tracing::error!(error = %e, "failed to encode usage");
                    return planned
                        .into_iter()
                        .map(|(p, _, _)| p)
                        .chain(deferred)
                        .collect();
                }
            }
        }

        let started = Instant::now();
        let result = self.store.txn(txn).await;
        if let Some(observer) = self.observer.get() {
            match &result {
                Ok(resp) if resp.succeeded => observer.batch(planned.len(), started.elapsed()),
                Ok(_) => observer.conflict(),
                Err(_) => {}
            }
        }
        match result {
            Ok(resp) if resp.succeeded => {
                if writes {
                    self.state = Some(DeptState {
                        usage_revision: resp.revision,
                        usage,
                        ..state
                    });
                }
                for (p, plan, object_key) in planned {
                    let answer = match plan {
                        Plan::Reject(e) => Err(e),
                        Plan::Accept => Ok(match p.change {
                            Change::Create(r) => Admitted {
                                created: true,
                                key: object_key,
                                revision: resp.revision,
                                record: r.record,
                            },
                            Change::Update { key, record, .. } => Admitted {
                                created: false,
                                key,
                                revision: resp.revision,
                                record,
                            },
                            Change::Release { key, .. } => Admitted {
                                created: false,
                                key,
                                revision: resp.revision,
                                record: Vec::new(),
                            },
                        }),
                    };
                    let _ = p.reply.send(answer);
                }
                deferred
            }
            Ok(_) => {
                // A guard failed: either the department or its usage moved
                // (reread and replan), or an object or request key did
                // (resolve those changes one by one).
                let fresh = match self.load().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, department = %self.department, "failed to reread department after conflict");
                        self.state = None;
                        return planned
                            .into_iter()
                            .map(|(p, _, _)| p)
                            .chain(deferred)
                            .collect();
                    }
                };
                let moved = fresh != state;
                self.state = Some(fresh);
                let mut rest: Vec<Pending> = planned.into_iter().map(|(p, _, _)| p).collect();
                if !moved || self.config.unguarded_usage_for_tests {
                    rest = self.resolve(rest).await;
                }
                rest.extend(deferred);
                rest
            }
            Err(e) => {
                // The outcome is unknown: the batch may have committed. Reread
                // everything; request records and revisions make the retry safe.
                tracing::warn!(error = %e, department = %self.department, "admission transaction failed");
                self.state = None;
                planned
                    .into_iter()
                    .map(|(p, _, _)| p)
                    .chain(deferred)
                    .collect()
            }
        }
    }

    /// Answers changes whose keys moved; returns the rest.
    async fn resolve(&self, pending: Vec<Pending>) -> Vec<Pending> {
        let found = join_all(pending.iter().map(|p| self.lookup(&p.change))).await;
        let mut rest = Vec::new();
        for (p, answer) in pending.into_iter().zip(found) {
            match answer {
                Some(a) => {
                    let _ = p.reply.send(a);
                }
                None => rest.push(p),
            }
        }
        rest
    }

    /// The final answer of a change whose keys are taken or moved, if any.
    async fn lookup(&self, change: &Change) -> Option<Result<Admitted>> {
        match change {
            Change::Create(r) => {
                let request_key = keys::request(&r.department, &r.request_id);
                let object_key = keys::object(r.kind, Some(&r.department), &r.name);
                let (req, obj) =
                    futures::join!(self.store.get(&request_key), self.store.get(&object_key));
                match (req, obj) {
                    (Ok(Some(req)), _) => {
                        Some(match codec::decode::<RequestRecord>(&req.key, &req.value) {
                            Ok(rec) if rec.fingerprint != r.fingerprint => Err(Error::Conflict {
                                message: format!(
                                    "request id {} was already used for a different request",
                                    r.request_id
                                ),
                            }),
                            Ok(rec) => self.existing(&rec).await,
                            Err(e) => Err(e),
                        })
                    }
                    (Ok(None), Ok(Some(_))) => Some(Err(Error::AlreadyExists {
                        what: format!("{} {}/{}", r.kind, r.department, r.name),
                    })),
                    (Ok(None), Ok(None)) => None,
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "failed to look up request during admission");
                        None
                    }
                }
            }
            Change::Update {
                department,
                request: Some((request_id, _)),
                ..
            } if matches!(
                self.store.get(&keys::request(department, request_id)).await,
                Ok(Some(_))
            ) =>
            {
                Some(Err(Error::Conflict {
                    message: "the request id has been used meanwhile".into(),
                }))
            }
            Change::Update { key, revision, .. } | Change::Release { key, revision, .. } => {
                match self.store.get(key).await {
                    Ok(None) => Some(Err(Error::not_found(
                        key.rsplit('/').next().unwrap_or(key).to_owned(),
                    ))),
                    Ok(Some(kv)) if kv.mod_revision != *revision => Some(Err(Error::Conflict {
                        message: "the object changed since it was read; read it again and retry"
                            .into(),
                    })),
                    Ok(Some(_)) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "failed to look up object during admission");
                        None
                    }
                }
            }
        }
    }

    async fn existing(&self, rec: &RequestRecord) -> Result<Admitted> {
        match self.store.get(&rec.object_key).await? {
            Some(kv) if uid_of(&kv.value) == rec.uid => Ok(Admitted {
                created: false,
                key: kv.key,
                revision: kv.mod_revision,
                record: kv.value,
            }),
            _ => Err(Error::Conflict {
                message: "the object this request id created has since been deleted".into(),
            }),
        }
    }
}

fn jitter(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let base = 1u64 << attempt.min(6);
    Duration::from_micros(base * 100 + u64::from(nanos % 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceClass;

    #[test]
    fn growth_checks_only_what_grows() {
        let limits = Limits::from([(ResourceClass::Vcpu, 8), (ResourceClass::MemoryMib, 1024)]);
        // Memory is already over a lowered limit; shrinking vCPU is still fine.
        let usage =
            Resources::from_pairs([(ResourceClass::Vcpu, 8), (ResourceClass::MemoryMib, 2048)]);
        let old =
            Resources::from_pairs([(ResourceClass::Vcpu, 4), (ResourceClass::MemoryMib, 2048)]);
        let smaller =
            Resources::from_pairs([(ResourceClass::Vcpu, 2), (ResourceClass::MemoryMib, 2048)]);
        assert!(check_growth(&limits, &usage, &old, &smaller).is_ok());
        let bigger =
            Resources::from_pairs([(ResourceClass::Vcpu, 6), (ResourceClass::MemoryMib, 2048)]);
        let v = check_growth(&limits, &usage, &old, &bigger).expect_err("over");
        assert_eq!(v[0].to_string(), "vcpu requested 2, used 8, limit 8");
    }
}
