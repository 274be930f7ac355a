//! The transaction of a planned batch, and resolving jobs whose keys moved
//! after it failed.

use std::collections::BTreeSet;

use futures::future::join_all;
use yunshu_core::{
    Error, codec,
    store::{Compare, Op, Txn},
};

use super::{
    super::{
        Job,
        plan::{Early, State},
    },
    Committer,
};
use crate::{
    inventory::{AllocationRecord, ClaimRecord},
    keys,
};

impl Committer {
    pub(super) fn transaction(
        &self,
        state: &State,
        accepted: &[Job],
        allocation: &AllocationRecord,
        departments: &BTreeSet<String>,
    ) -> yunshu_core::Result<Txn> {
        let mut txn = Txn::new();
        if let Some(foundation) = &self.target {
            let fkey =
                yunshu_core::keys::object(yunshu_core::meta::Kind::Foundation, None, foundation);
            txn = txn.when([Compare::unchanged(fkey, state.foundation_revision)]);
            if !self.config.unguarded {
                txn = txn.when([Compare::unchanged(
                    keys::allocation(foundation),
                    state.allocation_revision,
                )]);
            }
            for d in departments {
                let revision = state.departments.get(d).map_or(0, |s| s.revision);
                txn = txn.when([Compare::unchanged(
                    yunshu_core::keys::department(d),
                    revision,
                )]);
            }
            txn = txn.and_then([Op::put(
                keys::allocation(foundation),
                codec::encode(allocation)?,
            )]);
        }
        for job in accepted {
            txn = match job {
                Job::Park(p) => txn
                    .when([Compare::unchanged(&p.key, p.revision)])
                    .and_then([Op::put(&p.key, p.record.clone())]),
                Job::Place(p) => {
                    let claim_key = keys::claim_for(&p.key)
                        .ok_or_else(|| Error::internal(format!("{} has no claim key", p.key)))?;
                    let claim = ClaimRecord {
                        uid: p.uid.clone(),
                        foundation: self.target.clone().unwrap_or_default(),
                        department: p.department.clone(),
                        charge: p.charge,
                    };
                    txn.when([
                        Compare::unchanged(&p.key, p.revision),
                        Compare::absent(&claim_key),
                    ])
                    .and_then([
                        Op::put(&p.key, p.record.clone()),
                        Op::put(claim_key, codec::encode(&claim)?),
                    ])
                }
                Job::Release(r) => txn
                    .when([
                        Compare::unchanged(&r.claim_key, r.claim_revision),
                        Compare::unchanged(&r.object_key, r.object_revision),
                    ])
                    .and_then([Op::delete(&r.claim_key)]),
                Job::Adjust(a) => {
                    let claim = ClaimRecord {
                        charge: a.charge,
                        ..a.claim.clone()
                    };
                    txn.when([
                        Compare::unchanged(&a.claim_key, a.claim_revision),
                        Compare::unchanged(&a.object_key, a.object_revision),
                    ])
                    .and_then([Op::put(&a.claim_key, codec::encode(&claim)?)])
                }
            };
        }
        Ok(txn)
    }

    /// Answers jobs whose object or claim moved; returns the rest.
    pub(super) async fn resolve(&self, jobs: Vec<Job>) -> Vec<Job> {
        let found = join_all(jobs.iter().map(|j| self.lookup(j))).await;
        let mut rest = Vec::new();
        for (job, early) in jobs.into_iter().zip(found) {
            match early {
                Some(e) => self.answer(job, e),
                None => rest.push(job),
            }
        }
        rest
    }

    /// Why a job cannot be written as planned, if it cannot.
    async fn lookup(&self, job: &Job) -> Option<Early> {
        let (object_key, object_revision, claim_key) = match job {
            Job::Place(p) => (&p.key, p.revision, keys::claim_for(&p.key)),
            Job::Park(p) => (&p.key, p.revision, None),
            Job::Release(r) => (&r.object_key, r.object_revision, Some(r.claim_key.clone())),
            Job::Adjust(a) => (&a.object_key, a.object_revision, Some(a.claim_key.clone())),
        };
        let object = match self.store.get(object_key).await {
            Ok(kv) => kv.map_or(0, |kv| kv.mod_revision),
            Err(error) => {
                tracing::warn!(%error, key = %object_key, "failed to look up object during placement");
                return None;
            }
        };
        let claim = match &claim_key {
            Some(k) => match self.store.get(k).await {
                Ok(kv) => kv.map_or(0, |kv| kv.mod_revision),
                Err(error) => {
                    tracing::warn!(%error, key = %k, "failed to look up claim during placement");
                    return None;
                }
            },
            None => 0,
        };
        match job {
            Job::Place(_) if object != object_revision => Some(Early::Stale),
            Job::Place(_) if claim != 0 => Some(Early::Bounce(
                "an earlier object of this name still holds a claim".into(),
            )),
            Job::Park(_) if object != object_revision => Some(Early::Stale),
            Job::Release(r) if claim != r.claim_revision => Some(Early::Stale),
            Job::Release(_) if object != object_revision => Some(Early::Bounce(
                "the object changed since the release was asked for".into(),
            )),
            Job::Adjust(a) if claim != a.claim_revision || object != object_revision => {
                Some(Early::Stale)
            }
            _ => None,
        }
    }
}
