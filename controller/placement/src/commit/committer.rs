//! One committer: folds queued jobs into one guarded transaction, answers
//! each, and rereads and retries after conflicts.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use tokio::sync::mpsc;
use yunshu_core::{
    Error, codec,
    model::{Department, Foundation, Health},
    store::Store,
};

use super::{
    Adjusted, CommitConfig, Job, Outcome,
    plan::{DeptState, Early, Plan, State, plan},
};
use crate::{
    inventory::{AllocationRecord, observed},
    keys,
};

mod txn;

pub(super) struct Committer {
    store: Arc<dyn Store>,
    config: CommitConfig,
    /// The foundation; `None` for the Unschedulable writer.
    target: Option<String>,
    state: Option<State>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

impl Committer {
    pub(super) fn new(
        store: Arc<dyn Store>,
        config: CommitConfig,
        target: Option<String>,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> Self {
        Self {
            store,
            config,
            target,
            state: None,
            outcomes,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
    }

    fn tell(&self, outcome: Outcome) {
        // The loop may have stopped; nobody is left to tell then.
        let _ = self.outcomes.send(outcome);
    }

    /// Answers one job that will not be written.
    fn answer(&self, job: Job, early: Early) {
        let target = self.target.clone();
        match (job, early) {
            (Job::Place(p) | Job::Park(p), Early::Bounce(why)) => self.tell(Outcome::Bounced {
                key: p.key,
                target,
                why,
            }),
            (Job::Place(p) | Job::Park(p), Early::Stale) => {
                self.tell(Outcome::Stale { key: p.key, target });
            }
            (Job::Release(r), early) => {
                let answer = match early {
                    Early::Stale => Ok(false),
                    Early::Bounce(why) => Err(Error::Conflict { message: why }),
                };
                self.release_answer(r, answer);
            }
            (Job::Adjust(a), early) => self.adjust_answer(
                a,
                match early {
                    Early::Stale => Adjusted::Stale,
                    Early::Bounce(why) => Adjusted::Refused(why),
                },
            ),
        }
    }

    fn adjust_answer(&self, a: super::AdjustJob, answer: Adjusted) {
        self.tell(Outcome::Adjusted {
            claim_key: a.claim_key,
            object_key: a.object_key,
            answer,
        });
    }

    fn release_answer(&self, r: super::ReleaseJob, answer: yunshu_core::Result<bool>) {
        match r.reply {
            Some(reply) => {
                let _ = reply.send(answer);
            }
            None => self.tell(Outcome::Released {
                claim_key: r.claim_key,
                released: answer.unwrap_or(false),
            }),
        }
    }

    /// Reads the foundation, its allocation and the departments of `jobs`.
    async fn load(&self, jobs: &[Job]) -> yunshu_core::Result<State> {
        let Some(foundation) = &self.target else {
            return Ok(State::default());
        };
        let fkey = yunshu_core::keys::object(yunshu_core::meta::Kind::Foundation, None, foundation);
        let akey = keys::allocation(foundation);
        let mut departments: Vec<&str> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Place(p) => Some(p.department.as_str()),
                Job::Adjust(a) if a.grows() => Some(a.claim.department.as_str()),
                Job::Park(_) | Job::Release(_) | Job::Adjust(_) => None,
            })
            .collect();
        departments.sort_unstable();
        departments.dedup();
        let (f, a, ds) = futures::join!(
            self.store.get(&fkey),
            self.store.get(&akey),
            join_all(departments.iter().map(|d| {
                let key = yunshu_core::keys::department(d);
                async move { self.store.get(&key).await }
            }))
        );
        let mut state = State::default();
        if let Some(kv) = f? {
            let f: Foundation = codec::decode_object(&kv)?;
            (state.health, state.inventory) = observed(&f);
            state.foundation_revision = kv.mod_revision;
            state.generation = f.meta.generation;
        } else {
            state.health = Health::Down;
        }
        if let Some(kv) = a? {
            state.allocation_revision = kv.mod_revision;
            state.allocation = codec::decode::<AllocationRecord>(&kv.key, &kv.value)?;
        }
        for (name, d) in departments.iter().zip(ds) {
            let dept = match d? {
                Some(kv) => {
                    let d: Department = codec::decode_object(&kv)?;
                    let allowed = &d.spec.allowed_foundations;
                    DeptState {
                        revision: kv.mod_revision,
                        allowed: allowed.is_empty() || allowed.iter().any(|a| a == foundation),
                        limits: d.spec.quota.per_foundation.get(foundation).cloned(),
                    }
                }
                None => DeptState::default(),
            };
            state.departments.insert((*name).to_owned(), dept);
        }
        Ok(state)
    }

    /// Commits a batch, answering every job in it.
    async fn commit(&mut self, mut pending: Vec<Job>) {
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            if attempt > self.config.max_attempts {
                tracing::warn!(foundation = ?self.target, jobs = pending.len(), "placement commit did not settle");
                for job in pending.drain(..) {
                    self.give_up(job);
                }
                return;
            }
            if attempt > 8 {
                tokio::time::sleep(jitter(attempt)).await;
            }
            let (state, fresh) = match self.state.clone() {
                Some(s) => (s, false),
                None => match self.load(&pending).await {
                    Ok(s) => {
                        self.state = Some(s.clone());
                        self.report_allocation(&s);
                        (s, true)
                    }
                    Err(error) => {
                        tracing::warn!(%error, foundation = ?self.target, "failed to read foundation for placement");
                        tokio::time::sleep(jitter(attempt)).await;
                        continue;
                    }
                },
            };
            pending = self.attempt(state, fresh, pending).await;
        }
    }

    fn give_up(&self, job: Job) {
        match job {
            Job::Place(p) | Job::Park(p) => self.tell(Outcome::GaveUp {
                key: p.key,
                target: self.target.clone(),
            }),
            Job::Release(r) => {
                let error = Error::Unavailable {
                    message: format!("releasing {} did not settle; retry", r.claim_key),
                    source: None,
                };
                self.release_answer(r, Err(error));
            }
            Job::Adjust(a) => {
                let why = format!("resizing the claim {} did not settle", a.claim_key);
                self.adjust_answer(a, Adjusted::Refused(why));
            }
        }
    }

    fn report_allocation(&self, s: &State) {
        if let Some(foundation) = &self.target {
            self.tell(Outcome::Allocation {
                foundation: foundation.clone(),
                revision: s.allocation_revision,
                record: s.allocation.clone(),
            });
        }
    }

    /// One transaction over the batch; returns the jobs still unanswered.
    async fn attempt(&mut self, state: State, fresh: bool, jobs: Vec<Job>) -> Vec<Job> {
        let Plan {
            accepted,
            answered,
            deferred,
            allocation,
            departments,
            reload,
        } = plan(&state, fresh, jobs);
        for (job, early) in answered {
            self.answer(job, early);
        }
        if reload {
            self.state = None;
            return deferred;
        }
        if accepted.is_empty() {
            return deferred;
        }
        let txn = match self.transaction(&state, &accepted, &allocation, &departments) {
            Ok(txn) => txn,
            Err(error) => {
                tracing::error!(%error, "failed to encode a placement");
                return accepted.into_iter().chain(deferred).collect();
            }
        };
        match self.store.txn(txn).await {
            Ok(resp) if resp.succeeded => {
                tracing::debug!(
                    foundation = ?self.target,
                    jobs = accepted.len(),
                    revision = resp.revision,
                    "placement batch committed"
                );
                let new = State {
                    allocation_revision: resp.revision,
                    allocation,
                    ..state
                };
                self.report_allocation(&new);
                self.state = Some(new);
                for job in accepted {
                    self.done(job);
                }
                deferred
            }
            Ok(_) => {
                // A guard failed: the foundation, its allocation or a
                // department moved (reread and replan), or an object or
                // claim did (resolve those jobs one by one).
                let fresh = match self.load(&accepted).await {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(%error, foundation = ?self.target, "failed to reread foundation after conflict");
                        self.state = None;
                        return accepted.into_iter().chain(deferred).collect();
                    }
                };
                let moved = state.moved(&fresh);
                self.report_allocation(&fresh);
                self.state = Some(fresh);
                let mut rest = accepted;
                if !moved || self.config.unguarded {
                    rest = self.resolve(rest).await;
                }
                rest.extend(deferred);
                rest
            }
            Err(error) => {
                // The outcome is unknown; the guards make the retry safe.
                tracing::warn!(%error, foundation = ?self.target, "placement transaction failed");
                self.state = None;
                accepted.into_iter().chain(deferred).collect()
            }
        }
    }

    fn done(&self, job: Job) {
        match job {
            Job::Place(p) | Job::Park(p) => self.tell(Outcome::Done {
                key: p.key,
                target: self.target.clone(),
            }),
            Job::Release(r) => self.release_answer(r, Ok(true)),
            Job::Adjust(a) => self.adjust_answer(a, Adjusted::Done),
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
