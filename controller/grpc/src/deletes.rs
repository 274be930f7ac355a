//! Delete retries: a delete leaves a record under its request id before
//! it is carried out, so a retry answers as the delete did even once the
//! object is gone, and a request id reused for something else is ABORTED.

use serde::{Serialize, de::DeserializeOwned};
use tonic::Status;
use yunshu_core::{
    codec, keys,
    meta::{Object, Spec},
    store::{Compare, Op, Txn},
};

use crate::{Api, status::to_status};

/// The request record key; cluster-scoped objects (the admin kinds) use the
/// cluster scope `_`, as their object keys do (no department is named so).
fn request_key(department: Option<&str>, request_id: &str) -> String {
    keys::request(department.unwrap_or(keys::CLUSTER), request_id)
}

impl Api {
    /// Records that `request_id` deletes `object` before the delete is
    /// carried out, so a retry after the object is gone can answer. A
    /// record for another request under the same id is ABORTED; one for
    /// this delete (a retry) is left as it is. `Some` is the answer when
    /// the id already deleted an earlier object of that name: the object
    /// there now was made since, and a retry must not delete it.
    pub(crate) async fn remember_delete<S: Spec>(
        &self,
        department: Option<&str>,
        request_id: &str,
        object: &Object<S>,
    ) -> Result<Option<Object<S>>, Status>
    where
        Object<S>: Serialize + DeserializeOwned,
    {
        let key = request_key(department, request_id);
        let record = DeleteRecord {
            object_key: keys::object(S::KIND, department, &object.meta.name),
            uid: object.meta.uid.clone(),
            fingerprint: delete_fingerprint(S::KIND, &object.meta.name),
            written_at: yunshu_core::requests::unix_now(),
            last: serde_json::to_value(object).map_err(|e| {
                to_status(yunshu_core::Error::Internal {
                    message: "failed to encode the deleted object".into(),
                    source: Some(Box::new(e)),
                })
            })?,
        };
        let resp = self
            .store
            .txn(
                Txn::new()
                    .when([Compare::unchanged(&key, 0)])
                    .and_then([Op::put(&key, codec::encode(&record).map_err(to_status)?)]),
            )
            .await
            .map_err(to_status)?;
        if resp.succeeded {
            return Ok(None);
        }
        self.earlier_delete(department, request_id, object).await
    }

    /// What a record already under `request_id` says about deleting
    /// `object`: `None` when there is none or it is this delete's (a retry
    /// goes on); the earlier answer when that delete removed an earlier
    /// object of the name; ABORTED when the id was used for another
    /// request. Asked before anything checks the object, so a late retry
    /// never answers for the object there now.
    pub(crate) async fn earlier_delete<S: Spec>(
        &self,
        department: Option<&str>,
        request_id: &str,
        object: &Object<S>,
    ) -> Result<Option<Object<S>>, Status>
    where
        Object<S>: DeserializeOwned,
    {
        let key = request_key(department, request_id);
        let Some(kv) = self.store.get(&key).await.map_err(to_status)? else {
            return Ok(None);
        };
        // A create's record does not decode as a delete's: the id was used
        // for another request either way.
        match codec::decode::<DeleteRecord>(&kv.key, &kv.value) {
            Ok(earlier)
                if earlier.fingerprint == delete_fingerprint(S::KIND, &object.meta.name) =>
            {
                if earlier.uid == object.meta.uid {
                    Ok(None)
                } else {
                    last_state(&key, earlier).map(Some)
                }
            }
            _ => Err(reused(request_id)),
        }
    }

    /// The answer to a retried delete of `name`, which is gone: its last
    /// state, if `request_id` deleted it; `None` if it did not.
    pub(crate) async fn deleted<S: Spec>(
        &self,
        department: Option<&str>,
        name: &str,
        request_id: &str,
    ) -> Result<Option<Object<S>>, Status>
    where
        Object<S>: DeserializeOwned,
    {
        let key = request_key(department, request_id);
        let Some(kv) = self.store.get(&key).await.map_err(to_status)? else {
            return Ok(None);
        };
        let record: DeleteRecord = match codec::decode(&kv.key, &kv.value) {
            Ok(r) => r,
            // A create's record: the id was used for another request.
            Err(_) => return Err(reused(request_id)),
        };
        if record.fingerprint != delete_fingerprint(S::KIND, name) {
            return Err(reused(request_id));
        }
        last_state(&key, record).map(Some)
    }
}

/// What a delete leaves under its request id (next to the records of
/// creates, which name the object they made).
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRecord {
    object_key: String,
    uid: String,
    fingerprint: String,
    /// The object as it was when the delete was accepted.
    last: serde_json::Value,
    /// When it was written ([`yunshu_core::requests::Written`]).
    #[serde(default)]
    written_at: i64,
}

/// The answer a recorded delete gives: the object as the delete left it
/// (records made before `delete_time` was kept get one now).
fn last_state<S: Spec>(key: &str, record: DeleteRecord) -> Result<Object<S>, Status>
where
    Object<S>: DeserializeOwned,
{
    let mut last: Object<S> = serde_json::from_value(record.last).map_err(|e| {
        to_status(yunshu_core::Error::Internal {
            message: format!("failed to decode the delete record at {key}"),
            source: Some(Box::new(e)),
        })
    })?;
    last.meta
        .deletion_timestamp
        .get_or_insert_with(chrono::Utc::now);
    Ok(last)
}

fn delete_fingerprint(kind: yunshu_core::meta::Kind, name: &str) -> String {
    yunshu_core::admission::fingerprint(kind, name, b"delete")
}

pub(crate) fn reused(request_id: &str) -> Status {
    Status::aborted(format!(
        "request id {request_id} was already used for a different request"
    ))
}
