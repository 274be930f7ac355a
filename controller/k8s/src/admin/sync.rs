//! Syncing a cluster-scoped CR into the store: [`plan`] decides (a pure
//! function), [`apply`] writes with a transaction guarded by the revision
//! read, so a concurrent writer makes it fail with `Conflict` rather than
//! be overwritten. Only a spec change writes; the store object's status
//! (owned by Yunshu's probe and accounting loops) is kept.

use yunshu_core::{
    Error, Result, codec, keys,
    meta::{Object, Spec},
    store::{Compare, Op, Store, Txn},
};

use crate::names;

/// What the store needs for a CR.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan<S: Spec> {
    /// No object yet: create this one.
    Create(Object<S>),
    /// The spec changed: write this one (generation bumped).
    Update(Object<S>),
    /// The store already has this spec.
    Unchanged(Object<S>),
}

impl<S: Spec> Plan<S> {
    /// A word for logs and status messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "created",
            Self::Update(_) => "updated",
            Self::Unchanged(_) => "unchanged",
        }
    }
}

/// Decides the write for a CR `name` (with Kubernetes uid `uid`) whose spec
/// converts to `spec`, given the store object if any. A new object takes the
/// CR's uid and a request id derived from it.
pub fn plan<S: Spec>(
    existing: Option<Object<S>>,
    name: &str,
    uid: Option<&str>,
    spec: S,
) -> Plan<S> {
    match existing {
        None => {
            let mut object = Object::new(None, name, spec);
            if let Some(uid) = uid {
                object.meta.uid = uid.to_owned();
                object.meta.request_id = Some(names::request_id(uid));
            }
            Plan::Create(object)
        }
        Some(object) if object.spec == spec => Plan::Unchanged(object),
        Some(mut object) => {
            object.spec = spec;
            object.meta.generation += 1;
            Plan::Update(object)
        }
    }
}

/// Reads the cluster-scoped object `name` of `S`'s kind.
pub async fn read<S: Spec>(store: &dyn Store, name: &str) -> Result<Option<Object<S>>> {
    let key = keys::object(S::KIND, None, name);
    store
        .get(&key)
        .await?
        .map(|kv| codec::decode_object(&kv))
        .transpose()
}

/// Carries out a plan; returns the stored object with its new revision.
pub async fn apply<S: Spec>(store: &dyn Store, plan: Plan<S>) -> Result<Object<S>> {
    let (mut object, guard) = match plan {
        Plan::Unchanged(object) => return Ok(object),
        Plan::Create(object) => (object, 0),
        Plan::Update(object) => {
            let read_at = object.meta.revision;
            (object, read_at)
        }
    };
    let key = keys::object(S::KIND, None, &object.meta.name);
    let record = codec::encode(&object)?;
    let resp = store
        .txn(
            Txn::new()
                .when([Compare::unchanged(&key, guard)])
                .and_then([Op::put(&key, record)]),
        )
        .await?;
    if !resp.succeeded {
        return Err(Error::Conflict {
            message: format!(
                "{} {} changed while it was synced",
                S::KIND,
                object.meta.name
            ),
        });
    }
    object.meta.revision = resp.revision;
    Ok(object)
}

/// Where a requested deletion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The object is gone from the store.
    Gone,
    /// Marked for deletion now; Yunshu's finalizers will remove it.
    Marked,
    /// Marked earlier; still waiting for Yunshu's finalizers.
    Waiting,
}

/// Requests deletion of the cluster-scoped object `name`: removed at once
/// when it has no finalizers in the store, else marked with a deletion
/// timestamp for their owners to finish. An immediate removal extends
/// `base` (see [`super::AdminCr::deletion`]).
pub async fn request_deletion<S: Spec>(
    store: &dyn Store,
    name: &str,
    base: Txn,
) -> Result<Deletion> {
    let Some(mut object) = read::<S>(store, name).await? else {
        return Ok(Deletion::Gone);
    };
    let key = keys::object(S::KIND, None, name);
    let guard = Compare::unchanged(&key, object.meta.revision);
    if object.meta.finalizers.is_empty() {
        let resp = store
            .txn(base.when([guard]).and_then([Op::delete(&key)]))
            .await?;
        return if resp.succeeded {
            Ok(Deletion::Gone)
        } else {
            Err(Error::Conflict {
                message: format!("{} {name} changed while it was deleted", S::KIND),
            })
        };
    }
    if object.meta.deletion_timestamp.is_some() {
        return Ok(Deletion::Waiting);
    }
    object.meta.deletion_timestamp = Some(chrono::Utc::now());
    let record = codec::encode(&object)?;
    let resp = store
        .txn(Txn::new().when([guard]).and_then([Op::put(&key, record)]))
        .await?;
    if resp.succeeded {
        Ok(Deletion::Marked)
    } else {
        Err(Error::Conflict {
            message: format!(
                "{} {name} changed while its deletion was requested",
                S::KIND
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use yunshu_core::model::{PlacementPolicySpec, Strategy};

    use super::*;

    fn spec(strategy: Strategy) -> PlacementPolicySpec {
        PlacementPolicySpec {
            strategy,
            ..PlacementPolicySpec::default()
        }
    }

    #[test]
    fn a_new_cr_is_created_with_its_uid_and_request_id() {
        let Plan::Create(o) = plan(None, "default", Some("u-1"), spec(Strategy::Spread)) else {
            panic!("expected a create");
        };
        assert_eq!(o.meta.uid, "u-1");
        assert_eq!(o.meta.request_id.as_deref(), Some("k8s-u-1"));
        assert_eq!(o.meta.generation, 1);
    }

    #[test]
    fn only_a_spec_change_writes() {
        let stored = Object::new(None, "default", spec(Strategy::Spread));
        assert!(matches!(
            plan(
                Some(stored.clone()),
                "default",
                Some("u-1"),
                spec(Strategy::Spread)
            ),
            Plan::Unchanged(_)
        ));
        let Plan::Update(o) = plan(
            Some(stored),
            "default",
            Some("u-1"),
            spec(Strategy::Binpack),
        ) else {
            panic!("expected an update");
        };
        assert_eq!(o.meta.generation, 2);
        assert_eq!(o.spec.strategy, Strategy::Binpack);
    }
}
