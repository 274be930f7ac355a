//! The operations every department resource shares — create, get, list,
//! delete, watch, and spec changes — written once over [`ApiResource`].

use std::collections::HashMap;

use chrono::Utc;
use futures::{Stream, StreamExt};
use tonic::Status;
use yunshu_core::principal::Recheck;
use yunshu_core::{
    catalog::Catalog,
    codec,
    error::FieldViolation,
    keys,
    meta::{Object, Spec},
    model::{Charge, PURGE_LABEL, Phase, WorkloadStatus},
    principal::Principal,
    store::{Compare, EventKind, Op, RangeRequest, Txn},
};
use yunshu_proto::api::v1 as pb;

use crate::{
    Api, authz, names,
    status::{invalid, invalid_field, to_status},
    validate,
};

/// A department resource as the API serves it.
pub trait ApiResource: Spec<Status = WorkloadStatus> + Charge {
    /// The collection in resource names (`instances`).
    const COLLECTION: &'static str;
    /// The message field in requests (`instance`).
    const FIELD: &'static str;

    /// Reads the spec and labels of a create request's message, reporting
    /// every field that does not parse or breaks a rule.
    fn from_create(
        department: &str,
        message: &Self::Message,
        catalog: &Catalog,
        out: &mut Vec<FieldViolation>,
    ) -> Option<(Self, HashMap<String, String>)>;

    /// The wire message of an object.
    fn to_message(object: &Object<Self>) -> Self::Message;

    /// A wire message holding only metadata (for deletions).
    fn with_meta(meta: pb::ObjectMeta) -> Self::Message;

    /// The wire message type.
    type Message: Send + Sync + 'static;
}

/// One change seen by a watch.
#[derive(Debug)]
pub struct Change<R: ApiResource> {
    /// Created, updated or deleted.
    pub kind: pb::WatchEventType,
    /// The store revision of the change.
    pub revision: i64,
    /// The object after the change; for deletions only its name is known.
    pub object: Result<Object<R>, String>,
}

/// The full resource name of an object.
pub fn full_name<R: ApiResource>(o: &Object<R>) -> String {
    names::name(
        o.meta.department.as_deref().unwrap_or_default(),
        R::COLLECTION,
        &o.meta.name,
    )
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl Api {
    pub(crate) async fn read<R: ApiResource>(
        &self,
        department: &str,
        name: &str,
    ) -> Result<Object<R>, Status> {
        let key = keys::object(R::KIND, Some(department), name);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(to_status)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "{} {} not found",
                    R::FIELD,
                    names::name(department, R::COLLECTION, name)
                ))
            })?;
        codec::decode_object(&kv).map_err(to_status)
    }

    /// Creates an object through admission; a repeated request id returns the first result.
    pub async fn create<R: ApiResource>(
        &self,
        p: &Principal,
        parent: &str,
        id: &str,
        message: Option<&R::Message>,
        request_id: &str,
    ) -> Result<Object<R>, Status> {
        let department = names::parse_parent("parent", parent)?;
        authz::write(p, &department)?;
        let mut out = Vec::new();
        validate::object_name(&format!("{}_id", R::FIELD), id, &mut out);
        validate::request_id("request_id", request_id, &mut out);
        let parsed = match message {
            Some(m) => R::from_create(&department, m, &self.catalog, &mut out),
            None => {
                out.push(FieldViolation::new(R::FIELD, "is required"));
                None
            }
        };
        let Some((spec, labels)) = parsed.filter(|_| out.is_empty()) else {
            return Err(invalid(&out));
        };
        let mut object = Object::new(Some(&department), id, spec);
        object.meta.labels = labels.into_iter().collect();
        let created = self
            .admission
            .create(request_id, object)
            .await
            .map_err(to_status)?;
        tracing::debug!(department, name = id, kind = %R::KIND, created = created.created, "admitted");
        Ok(created.object)
    }

    /// Reads one object.
    pub async fn get<R: ApiResource>(
        &self,
        p: &Principal,
        name: &str,
    ) -> Result<Object<R>, Status> {
        let (department, name) = names::parse_name("name", name, R::COLLECTION)?;
        authz::read(p, &department)?;
        self.read(&department, &name).await
    }

    /// A page of a department's objects, filtered; returns the objects, the
    /// next page token and the revision of the read.
    pub async fn list<R: ApiResource>(
        &self,
        p: &Principal,
        parent: &str,
        page_size: i32,
        page_token: &str,
        filter: Option<&pb::ListFilter>,
    ) -> Result<(Vec<Object<R>>, String, i64), Status> {
        let department = names::parse_parent("parent", parent)?;
        authz::read(p, &department)?;
        let size = match page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(invalid_field("page_size", "must not be negative")),
            n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let prefix = keys::objects(R::KIND, Some(&department));
        let filter = filter.map(Filter::parse).transpose()?.unwrap_or_default();
        let digest = filter.digest();
        let mut after = decode_token(page_token, &prefix, &digest)?;
        let mut items = Vec::new();
        let mut revision = 0;
        loop {
            let mut req = RangeRequest::prefix(&prefix).with_limit(size);
            if let Some(a) = &after {
                req = req.after(a.clone());
            }
            let resp = self.store.range(req).await.map_err(to_status)?;
            if revision == 0 {
                revision = resp.revision;
            }
            let scanned = resp.kvs.len();
            for (i, kv) in resp.kvs.into_iter().enumerate() {
                after = Some(kv.key.clone());
                let o: Object<R> = codec::decode_object(&kv).map_err(to_status)?;
                if filter.matches(&o) {
                    items.push(o);
                }
                if items.len() == size {
                    let more = resp.more || i + 1 < scanned;
                    let token = if more {
                        encode_token(&kv.key, &prefix, &digest)
                    } else {
                        String::new()
                    };
                    return Ok((items, token, revision));
                }
            }
            if !resp.more {
                return Ok((items, String::new(), revision));
            }
        }
    }

    /// Deletes an object: at once when nothing outside Yunshu holds it (its
    /// charge returns to the department), else by marking it for the
    /// finalizers to finish.
    ///
    /// A bucket that holds objects is refused unless `purge` is set, which
    /// the provisioner then passes to the adapter. A delete whose write
    /// loses to another (the scheduler's or provisioner's status, say) is
    /// made again on a fresh read; its record makes that safe.
    pub async fn delete<R: ApiResource>(
        &self,
        p: &Principal,
        name: &str,
        request_id: &str,
        purge: bool,
    ) -> Result<Object<R>, Status> {
        let (department, name) = names::parse_name("name", name, R::COLLECTION)?;
        authz::write(p, &department)?;
        require_request_id(request_id)?;
        // One deletion time for every attempt: the record the first one
        // leaves answers retries with it.
        let at = Utc::now();
        let gave_up = || {
            format!(
                "{} {name} kept changing while it was deleted; retry with the same request id",
                R::FIELD
            )
        };
        let (department, name) = (&department, &name);
        crate::changes::on_fresh_reads(crate::changes::CHANGE_ATTEMPTS, gave_up, move || {
            self.delete_once::<R>(department, name, request_id, purge, at)
        })
        .await
    }

    /// One attempt at [`Api::delete`]: `None` when its write lost to another.
    async fn delete_once<R: ApiResource>(
        &self,
        department: &str,
        name: &str,
        request_id: &str,
        purge: bool,
        at: chrono::DateTime<Utc>,
    ) -> Result<Option<Object<R>>, Status> {
        let (department, name) = (department.to_owned(), name.to_owned());
        let mut object: Object<R> = match self.read(&department, &name).await {
            Ok(object) => object,
            // A retry of a delete that already finished answers as the
            // delete did, with the object as it was when deleted.
            Err(e) if e.code() == tonic::Code::NotFound => {
                return match self
                    .deleted::<R>(Some(&department), &name, request_id)
                    .await?
                {
                    Some(gone) => Ok(Some(deleting(gone))),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        if let Some(earlier) = self
            .earlier_delete(Some(&department), request_id, &object)
            .await?
        {
            return Ok(Some(deleting(earlier)));
        }
        let read_at = object.meta.revision;
        type Bucket = Object<yunshu_core::model::BucketSpec>;
        let is_bucket = (&object as &dyn std::any::Any).is::<Bucket>();
        // Purge asked for now: marked on the bucket even when a delete
        // without it came first (and was held up by what the bucket holds).
        let purge_added = is_bucket
            && purge
            && object
                .meta
                .labels
                .insert(PURGE_LABEL.to_owned(), "true".to_owned())
                .is_none();
        let bucket = (&object as &dyn std::any::Any).downcast_ref::<Bucket>();
        if let (Some(bucket), Some(actions)) = (bucket, &self.actions)
            && !purge
            && bucket.meta.deletion_timestamp.is_none()
            && bucket.status.phase == Phase::Ready
            && let Some(n) = actions
                .bucket_objects(bucket)
                .await
                .map_err(crate::status::from_foundation)?
            && n > 0
        {
            return Err(Status::failed_precondition(format!(
                "bucket {name} holds {n} objects; nothing was deleted. Delete them first, or delete with purge to remove them too"
            )));
        }
        // The answer carries the deletion time, recorded with it so every
        // retry gives the same.
        let marking = object.meta.deletion_timestamp.is_none();
        object.meta.deletion_timestamp.get_or_insert(at);
        // Recorded after the checks that refuse a delete outright, before
        // it is carried out: a crash or a lost race in between leaves a
        // record whose retry deletes again.
        if let Some(earlier) = self
            .remember_delete(Some(&department), request_id, &object)
            .await?
        {
            return Ok(Some(deleting(earlier)));
        }
        if object.meta.finalizers.is_empty() {
            object.meta.revision = match self.admission.release(&object).await {
                Ok(revision) => revision,
                // Moved, or removed by another delete: the next attempt
                // reads again (and answers from this delete's record).
                Err(e)
                    if matches!(
                        e.kind(),
                        yunshu_core::ErrorKind::Conflict | yunshu_core::ErrorKind::NotFound
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(to_status(e)),
            };
            object.status.phase = Phase::Deleting;
            tracing::info!(department, name, kind = %R::KIND, "deleted");
            return Ok(Some(object));
        }
        if marking || purge_added {
            let key = keys::object(R::KIND, Some(&department), &name);
            object.status.phase = Phase::Deleting;
            match self.put_if_unchanged(&key, read_at, &object).await? {
                Some(revision) => object.meta.revision = revision,
                None => return Ok(None),
            }
        }
        Ok(Some(object))
    }

    /// Writes `object` at `key` if it is still at `revision`: the new
    /// revision, or `None` if it moved.
    async fn put_if_unchanged<R: ApiResource>(
        &self,
        key: &str,
        revision: i64,
        object: &Object<R>,
    ) -> Result<Option<i64>, Status> {
        let record = codec::encode(object).map_err(to_status)?;
        let resp = self
            .store
            .txn(
                Txn::new()
                    .when([Compare::unchanged(key, revision)])
                    .and_then([Op::put(key, record)]),
            )
            .await
            .map_err(to_status)?;
        Ok(resp.succeeded.then_some(resp.revision))
    }

    /// Every change to a department's objects from `start_revision` (0: now),
    /// until `recheck` finds the caller's credentials no longer hold: then
    /// the stream ends with UNAUTHENTICATED.
    pub async fn watch<R: ApiResource>(
        &self,
        p: &Principal,
        recheck: Option<Recheck>,
        parent: &str,
        start_revision: i64,
    ) -> Result<impl Stream<Item = Result<Change<R>, Status>> + Send + 'static, Status> {
        let department = names::parse_parent("parent", parent)?;
        authz::read(p, &department)?;
        if start_revision < 0 {
            return Err(invalid_field("start_revision", "must not be negative"));
        }
        let prefix = keys::objects(R::KIND, Some(&department));
        let stream = self
            .store
            .watch(&prefix, start_revision)
            .await
            .map_err(to_status)?;
        let changes = stream.map(move |ev| {
            let ev = ev.map_err(to_status)?;
            let revision = ev.kv.mod_revision;
            Ok(match ev.kind {
                EventKind::Put => Change {
                    kind: if ev.kv.create_revision == ev.kv.mod_revision {
                        pb::WatchEventType::Created
                    } else {
                        pb::WatchEventType::Updated
                    },
                    revision,
                    object: Ok(codec::decode_object(&ev.kv).map_err(to_status)?),
                },
                EventKind::Delete => Change {
                    kind: pb::WatchEventType::Deleted,
                    revision,
                    object: Err(ev.kv.key.rsplit('/').next().unwrap_or_default().to_owned()),
                },
            })
        });
        Ok(until_revoked(changes, recheck))
    }
}

/// `stream`, ended with UNAUTHENTICATED (after the changes sent so far)
/// once `recheck` says the credentials no longer hold.
fn until_revoked<T: Send + 'static>(
    stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    recheck: Option<Recheck>,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    let revoked = futures::stream::unfold(recheck, |recheck| async move {
        let recheck = recheck?;
        loop {
            tokio::time::sleep(recheck.every()).await;
            if !recheck.still_valid().await {
                let status = Status::unauthenticated(
                    "the credentials this watch was opened with no longer hold (revoked, expired or removed); open it again",
                );
                return Some((Err(status), None));
            }
        }
    });
    // `None` marks the end of the changes, which ends the call; so does the
    // first error, the last item sent.
    let changes = stream
        .map(Some)
        .chain(futures::stream::once(futures::future::ready(None)));
    let mut ended = false;
    futures::stream::select(changes, revoked.map(Some))
        .take_while(move |item| {
            let go = !ended && item.is_some();
            ended = ended || item.as_ref().is_none_or(Result::is_err);
            futures::future::ready(go)
        })
        .filter_map(futures::future::ready)
}

/// A recorded delete's answer, in the phase the delete left it in.
fn deleting<R: ApiResource>(mut o: Object<R>) -> Object<R> {
    o.status.phase = Phase::Deleting;
    o
}

pub(crate) fn require_request_id(request_id: &str) -> Result<(), Status> {
    let mut out = Vec::new();
    validate::request_id("request_id", request_id, &mut out);
    if out.is_empty() {
        Ok(())
    } else {
        Err(invalid(&out))
    }
}

/// A list filter, checked.
#[derive(Debug, Default)]
struct Filter {
    /// `None`: any phase. `PHASE_UNSPECIFIED` counts as given but matches
    /// nothing, as the proto says.
    phases: Option<Vec<Phase>>,
    labels: HashMap<String, String>,
    foundation: Option<String>,
}

impl Filter {
    fn parse(f: &pb::ListFilter) -> Result<Self, Status> {
        let mut phases = Vec::new();
        for p in &f.phases {
            if *p == pb::Phase::Unspecified as i32 {
                continue;
            }
            phases
                .push(crate::convert::phase_from(*p).ok_or_else(|| {
                    invalid_field("filter.phases", format!("{p} is not a phase"))
                })?);
        }
        let phases = (!f.phases.is_empty()).then_some(phases);
        let foundation = (!f.foundation.is_empty())
            .then(|| names::parse_cluster_name("filter.foundation", &f.foundation, "foundations"))
            .transpose()?;
        Ok(Self {
            phases,
            labels: f.labels.clone(),
            foundation,
        })
    }

    /// Identifies the filter, so a page token is honoured only with the
    /// filter of the list that returned it.
    fn digest(&self) -> String {
        let labels: std::collections::BTreeMap<_, _> = self.labels.iter().collect();
        let canonical = format!("{:?}|{labels:?}|{:?}", self.phases, self.foundation);
        yunshu_core::admission::fingerprint(
            yunshu_core::meta::Kind::Instance,
            "filter",
            canonical.as_bytes(),
        )
    }

    fn matches<R: ApiResource>(&self, o: &Object<R>) -> bool {
        self.phases
            .as_ref()
            .is_none_or(|p| p.contains(&o.status.phase))
            && self
                .labels
                .iter()
                .all(|(k, v)| o.meta.labels.get(k) == Some(v))
            && (self.foundation.is_none() || o.status.placement.foundation == self.foundation)
    }
}

/// A page token, `<hex of the last name>.<filter digest>`: the last name
/// listed, relative to the list's prefix (so no store key leaves the
/// server), and the filter's digest.
fn encode_token(key: &str, prefix: &str, digest: &str) -> String {
    let last = key.strip_prefix(prefix).unwrap_or(key);
    let hex: String = last.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{digest}")
}

fn decode_token(token: &str, prefix: &str, digest: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid_field("page_token", "is not a token this list returned");
    let Some((token, given)) = token.split_once('.') else {
        return Err(bad());
    };
    if given != digest {
        return Err(invalid_field(
            "page_token",
            "was returned for another filter; keep the filter of the first page",
        ));
    }
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let last = bytes
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    if last.starts_with(prefix) {
        // A token of an earlier build (or replica): the whole key.
        Ok(Some(last))
    } else if !last.is_empty() && !last.contains('/') {
        Ok(Some(format!("{prefix}{last}")))
    } else {
        Err(bad())
    }
}
