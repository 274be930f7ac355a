//! Spec changes — start, stop, resize, attach, detach — and their retries.
//!
//! A change writes a record under its request id in the same transaction
//! as the object (guarded absent), holding the object as the change left
//! it. A retry, before or after anything else touched the object, gets
//! that answer back and changes nothing: a lost answer to `Stop` retried
//! after someone else's `Start` does not stop the instance again, and a
//! resize retried after another resize does not undo it. An id used for
//! another request (a create, a delete, another change) is ABORTED, as
//! for creates and deletes. A change that finds the spec already as asked
//! writes only the record, so its retries are answered the same way.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tonic::Status;
use yunshu_core::{
    admission::fingerprint,
    codec, keys,
    meta::{Object, Spec},
    requests::ACTION_STALE_SECS,
    store::{Compare, Op, Txn},
};

use crate::{
    Api, authz, names,
    resource::{ApiResource, require_request_id},
    status::to_status,
};

/// What a change leaves under its request id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeRecord {
    object_key: String,
    uid: String,
    fingerprint: String,
    /// The object as the change left it: what a retry is answered.
    answer: serde_json::Value,
    /// The answer's revision when the change wrote nothing but this record
    /// (the spec was already as asked); otherwise the record's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<i64>,
    /// When it was written ([`yunshu_core::requests::Written`]).
    #[serde(default)]
    written_at: i64,
}

fn encode_failed(e: impl std::error::Error + Send + Sync + 'static) -> Status {
    to_status(yunshu_core::Error::Internal {
        message: "failed to encode a change record".into(),
        source: Some(Box::new(e)),
    })
}

impl Api {
    /// The answer of a change `what` to `name` already made under
    /// `request_id`, after the caller's credentials are checked: calls that
    /// look at more than the object (an attach's instance, a resize's size
    /// in the catalog) ask this first, so a retry is answered as the first
    /// call was whatever changed since.
    pub async fn answered<R: ApiResource>(
        &self,
        p: &yunshu_core::principal::Principal,
        name: &str,
        request_id: &str,
        what: &str,
    ) -> Result<Option<Object<R>>, Status> {
        let (department, name) = names::parse_name("name", name, R::COLLECTION)?;
        authz::write(p, &department)?;
        require_request_id(request_id)?;
        self.earlier_change::<R>(
            &department,
            request_id,
            &change_fingerprint::<R>(&name, what),
        )
        .await
    }

    /// Applies `change` to an object's spec, once per request id; resizes
    /// go through admission. `what` names the change and its arguments
    /// (`stop`, `resize 4 8192`): a retry must ask the same. A write that
    /// loses to another (the provisioner's status, say) is made again on a
    /// fresh read, so `change` may run more than once.
    pub async fn change<R: ApiResource>(
        &self,
        p: &yunshu_core::principal::Principal,
        name: &str,
        request_id: &str,
        what: &str,
        change: impl Fn(&mut Object<R>) -> Result<(), Status>,
    ) -> Result<Object<R>, Status> {
        let (department, name) = names::parse_name("name", name, R::COLLECTION)?;
        authz::write(p, &department)?;
        require_request_id(request_id)?;
        let fingerprint = change_fingerprint::<R>(&name, what);
        let object_key = keys::object(R::KIND, Some(&department), &name);
        let recorded = Recorded {
            scope: &department,
            request_id,
            fingerprint: &fingerprint,
            object_key: &object_key,
        };
        if let Some(answer) = self.recorded_answer::<R>(&recorded).await? {
            return Ok(answer);
        }
        let gave_up = || {
            format!(
                "{} {name} kept changing while this request was applied; retry with the same request id",
                R::FIELD
            )
        };
        let (department, name, recorded, object_key, change) =
            (&department, &name, &recorded, &object_key, &change);
        on_fresh_reads(CHANGE_ATTEMPTS, gave_up, move || async move {
            let old: Object<R> = self.read(department, name).await?;
            if old.meta.deletion_timestamp.is_some() {
                return Err(Status::failed_precondition(format!(
                    "{} {name} is being deleted",
                    R::FIELD
                )));
            }
            let mut new = old.clone();
            change(&mut new)?;
            let done = if new.spec == old.spec {
                // Nothing to write but the record: no guard on the object.
                self.write_recorded(recorded, None, &old, false)
                    .await?
                    .map(|_| old)
            } else if new.spec.charge() == old.spec.charge() {
                new.meta.generation += 1;
                let guard = Compare::unchanged(object_key.as_str(), old.meta.revision);
                self.write_recorded(recorded, Some(guard), &new, true)
                    .await?
                    .map(|revision| {
                        new.meta.revision = revision;
                        new
                    })
            } else {
                new.meta.generation += 1;
                let record = recorded.record(&new, None)?;
                match self
                    .admission
                    .update_recorded(&old, new, Some((request_id.to_owned(), record)))
                    .await
                {
                    Ok(object) => Some(object),
                    Err(e) if e.kind() == yunshu_core::ErrorKind::Conflict => None,
                    Err(e) => return Err(to_status(e)),
                }
            };
            if done.is_some() {
                return Ok(done);
            }
            // The object moved, or a retry of this request was carried out
            // meanwhile: answer that, or try again on a fresh read.
            self.recorded_answer::<R>(recorded).await
        })
        .await
    }

    /// The answer of a change already made under `request_id` in `scope`
    /// (a department, or the cluster): `None` if the id is unused, ABORTED
    /// if it was used for another request.
    async fn earlier_change<S: Spec>(
        &self,
        scope: &str,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<Option<Object<S>>, Status>
    where
        Object<S>: DeserializeOwned,
    {
        let key = keys::request(scope, request_id);
        let Some(kv) = self.store.get(&key).await.map_err(to_status)? else {
            return Ok(None);
        };
        // A create's or a delete's record does not decode as a change's.
        let record = match codec::decode::<ChangeRecord>(&kv.key, &kv.value) {
            Ok(r) if r.fingerprint == fingerprint => r,
            _ => return Err(crate::deletes::reused(request_id)),
        };
        let mut answer: Object<S> = serde_json::from_value(record.answer).map_err(|e| {
            to_status(yunshu_core::Error::Internal {
                message: format!("failed to decode the change record at {key}"),
                source: Some(Box::new(e)),
            })
        })?;
        answer.meta.revision = record.revision.unwrap_or(kv.mod_revision);
        Ok(Some(answer))
    }

    /// [`Api::earlier_change`] for the request `at` names.
    pub(crate) async fn recorded_answer<S: Spec>(
        &self,
        at: &Recorded<'_>,
    ) -> Result<Option<Object<S>>, Status>
    where
        Object<S>: DeserializeOwned,
    {
        self.earlier_change(at.scope, at.request_id, at.fingerprint)
            .await
    }

    /// Writes `answer`'s record under the request id, with `answer` itself
    /// at the object key when `write_object`, if `guard` (when given) holds
    /// and the id is unused; the revision written, or `None` when either
    /// check failed.
    pub(crate) async fn write_recorded<S: Spec>(
        &self,
        at: &Recorded<'_>,
        guard: Option<Compare>,
        answer: &Object<S>,
        write_object: bool,
    ) -> Result<Option<i64>, Status>
    where
        Object<S>: Serialize,
    {
        let mut ops = vec![Op::put(
            keys::request(at.scope, at.request_id),
            at.record(answer, (!write_object).then_some(answer.meta.revision))?,
        )];
        if write_object {
            ops.push(Op::put(
                at.object_key,
                codec::encode(answer).map_err(to_status)?,
            ));
        }
        let resp = self
            .store
            .txn(
                Txn::new()
                    .when(
                        guard
                            .into_iter()
                            .chain([Compare::absent(keys::request(at.scope, at.request_id))]),
                    )
                    .and_then(ops),
            )
            .await
            .map_err(to_status)?;
        Ok(resp.succeeded.then_some(resp.revision))
    }
}

/// Where a change's record goes and what it names.
pub(crate) struct Recorded<'a> {
    /// The department, or [`keys::CLUSTER`] for the admin kinds.
    pub scope: &'a str,
    pub request_id: &'a str,
    pub fingerprint: &'a str,
    pub object_key: &'a str,
}

impl Recorded<'_> {
    /// The record answering with `answer`; `revision` is its revision when
    /// the record is written without it (it was already so).
    fn record<S: Spec>(&self, answer: &Object<S>, revision: Option<i64>) -> Result<Vec<u8>, Status>
    where
        Object<S>: Serialize,
    {
        codec::encode(&ChangeRecord {
            object_key: self.object_key.to_owned(),
            uid: answer.meta.uid.clone(),
            fingerprint: self.fingerprint.to_owned(),
            answer: serde_json::to_value(answer).map_err(encode_failed)?,
            revision,
            written_at: yunshu_core::requests::unix_now(),
        })
        .map_err(to_status)
    }
}

/// How many times a change is tried on a fresh read when its object moved.
pub(crate) const CHANGE_ATTEMPTS: usize = 4;

/// Makes `attempt` until it answers, at most `attempts` times: an attempt
/// answers `None` when its write lost to another writer, and is then made
/// again (on a fresh read). After the last, ABORTED with `gave_up`'s words.
pub(crate) async fn on_fresh_reads<T, F>(
    attempts: usize,
    gave_up: impl FnOnce() -> String,
    mut attempt: impl FnMut() -> F,
) -> Result<T, Status>
where
    F: Future<Output = Result<Option<T>, Status>>,
{
    for _ in 0..attempts {
        if let Some(answer) = attempt().await? {
            return Ok(answer);
        }
    }
    Err(Status::aborted(gave_up()))
}

/// What identifies a change: the kind, the name, the verb and its arguments.
fn change_fingerprint<R: ApiResource>(name: &str, what: &str) -> String {
    fingerprint(R::KIND, name, format!("change {what}").as_bytes())
}

/// What an action that cannot be part of a store transaction (a reboot)
/// leaves under its request id: reserved before it is carried out, marked
/// done after.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionRecord {
    object_key: String,
    uid: String,
    fingerprint: String,
    /// Whether the action was carried out; `false` while it is under way.
    done: bool,
    /// When it was written ([`yunshu_core::requests::Written`]).
    #[serde(default)]
    written_at: i64,
}

/// Whether to carry out an action asked under a request id.
#[derive(Debug)]
pub(crate) enum Reserved {
    /// Carry it out; the reservation is at this revision.
    Go(i64),
    /// A call with this id carried it out already: answer as it did.
    Done,
}

impl Api {
    /// Reserves `request_id` for an action on `object` named by
    /// `fingerprints` (the first is written; the others are what earlier
    /// builds wrote for the same request), so that concurrent and later
    /// retries do not repeat it: [`Reserved::Done`] once it was carried
    /// out, UNAVAILABLE while another call carries it out, ABORTED if the id
    /// was used for another request.
    pub(crate) async fn reserve_action<R: ApiResource>(
        &self,
        request_id: &str,
        fingerprints: &[&str],
        object: &Object<R>,
    ) -> Result<Reserved, Status> {
        let fingerprint = fingerprints.first().copied().unwrap_or_default();
        let department = object.meta.department.as_deref().unwrap_or_default();
        let key = keys::request(department, request_id);
        let now = yunshu_core::requests::unix_now();
        let record = codec::encode(&ActionRecord {
            object_key: keys::object(R::KIND, Some(department), &object.meta.name),
            uid: object.meta.uid.clone(),
            fingerprint: fingerprint.to_owned(),
            done: false,
            written_at: now,
        })
        .map_err(to_status)?;
        for _ in 0..3 {
            let guard = match self.store.get(&key).await.map_err(to_status)? {
                None => Compare::absent(&key),
                Some(kv) => match codec::decode::<ActionRecord>(&kv.key, &kv.value) {
                    Ok(r) if fingerprints.contains(&r.fingerprint.as_str()) && r.done => {
                        return Ok(Reserved::Done);
                    }
                    Ok(r) if fingerprints.contains(&r.fingerprint.as_str()) => {
                        if now.saturating_sub(r.written_at) < ACTION_STALE_SECS {
                            return Err(Status::unavailable(format!(
                                "request {request_id} is being carried out by an earlier call; retry shortly"
                            )));
                        }
                        Compare::unchanged(&key, kv.mod_revision)
                    }
                    _ => return Err(crate::deletes::reused(request_id)),
                },
            };
            let resp = self
                .store
                .txn(
                    Txn::new()
                        .when([guard])
                        .and_then([Op::put(&key, record.clone())]),
                )
                .await
                .map_err(to_status)?;
            if resp.succeeded {
                return Ok(Reserved::Go(resp.revision));
            }
        }
        Err(Status::aborted(format!(
            "request {request_id} is contended; retry"
        )))
    }

    /// Whether an action named by `fingerprints` (as for
    /// [`Api::reserve_action`]) was carried out under `request_id`; ABORTED
    /// if the id was used for another request.
    pub(crate) async fn action_done<R: ApiResource>(
        &self,
        request_id: &str,
        fingerprints: &[&str],
        object: &Object<R>,
    ) -> Result<bool, Status> {
        let department = object.meta.department.as_deref().unwrap_or_default();
        let key = keys::request(department, request_id);
        let Some(kv) = self.store.get(&key).await.map_err(to_status)? else {
            return Ok(false);
        };
        match codec::decode::<ActionRecord>(&kv.key, &kv.value) {
            Ok(r) if fingerprints.contains(&r.fingerprint.as_str()) => Ok(r.done),
            _ => Err(crate::deletes::reused(request_id)),
        }
    }

    /// Ends a reservation: marked done when the action was carried out
    /// (a failure to mark it is logged, not returned: the action happened),
    /// else given up so a retry carries it out.
    pub(crate) async fn finish_action(
        &self,
        department: &str,
        request_id: &str,
        reserved_at: i64,
        carried_out: bool,
    ) {
        let key = keys::request(department, request_id);
        let op = if carried_out {
            let record = self.store.get(&key).await.ok().flatten().and_then(|kv| {
                let mut r = codec::decode::<ActionRecord>(&kv.key, &kv.value).ok()?;
                r.done = true;
                codec::encode(&r).ok()
            });
            match record {
                Some(record) => Op::put(&key, record),
                None => {
                    tracing::warn!(%key, "the reservation of a carried-out action is gone");
                    return;
                }
            }
        } else {
            Op::delete(&key)
        };
        let txn = Txn::new()
            .when([Compare::unchanged(&key, reserved_at)])
            .and_then([op]);
        match self.store.txn(txn).await {
            Ok(resp) if resp.succeeded => {}
            Ok(_) => tracing::warn!(%key, "an action's reservation was taken over meanwhile"),
            Err(e) => tracing::warn!(%key, error = %e, "failed to record how an action ended"),
        }
    }
}
