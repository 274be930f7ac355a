//! The few Kubernetes writes the reconcilers make: the status applied with
//! server-side apply (field manager [`FIELD_MANAGER`]), retried on
//! conflicts and outages; finalizers added and removed with merge patches
//! guarded by `resourceVersion`; and events about objects that did not
//! even deserialize.

use std::fmt::Debug;

use k8s_openapi::{api::core::v1::ObjectReference, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
    core::{DeserializeGuard, error_boundary::InvalidObject},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::{
    conditions::Notice,
    context::Ctx,
    error::{Error, Result, kube_error_kind},
};

/// The field manager of every status Yunshu applies.
pub const FIELD_MANAGER: &str = "yunshu";

/// The finalizer on every CR whose deletion must clean up in Yunshu.
pub const FINALIZER: &str = "yunshu.io/cleanup";

/// The annotation pinning a department resource to the department it was
/// admitted to (the namespace label may change later; the object does not move).
pub const DEPARTMENT_ANNOTATION: &str = "yunshu.io/department";

/// Whether the object carries [`FINALIZER`].
pub fn has_finalizer(meta: &ObjectMeta) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Applies `status` to the status subresource of `name` with server-side
/// apply, forcing ownership of the fields for [`FIELD_MANAGER`]. A
/// conflict, throttling or outage is retried with doubling waits up to the
/// configured attempts.
pub async fn apply_status<K>(
    ctx: &Ctx,
    api: &Api<DeserializeGuard<K>>,
    name: &str,
    status: &impl Serialize,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let attempts = ctx.config().status_attempts.max(1);
    let mut wait = ctx.config().retry_base;
    let mut attempt = 1;
    loop {
        match api.patch_status(name, &params, &Patch::Apply(&patch)).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < attempts && kube_error_kind(&e).is_retryable() => {
                tracing::debug!(error = %e, kind = %K::kind(&()), name, attempt, "status write refused; retrying");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
                attempt += 1;
            }
            Err(e) => {
                return Err(Error::kube(
                    format!("apply the status of {} {name}", K::kind(&())),
                    e,
                ));
            }
        }
    }
}

/// Adds [`FINALIZER`] (and, if given, an annotation) to the object, guarded
/// by the resourceVersion it was read at.
pub async fn add_finalizer<K>(
    api: &Api<DeserializeGuard<K>>,
    meta: &ObjectMeta,
    annotation: Option<(&str, &str)>,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut finalizers: Vec<String> = meta.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.to_owned());
    }
    let mut metadata = json!({
        "finalizers": finalizers,
        "resourceVersion": meta.resource_version,
    });
    if let Some((key, value)) = annotation {
        metadata["annotations"] = json!({ key: value });
    }
    patch_metadata(api, meta, metadata, "add the finalizer to").await
}

/// Removes [`FINALIZER`], guarded by the resourceVersion it was read at;
/// once no finalizer is left, Kubernetes deletes the object.
pub async fn remove_finalizer<K>(api: &Api<DeserializeGuard<K>>, meta: &ObjectMeta) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let finalizers: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let metadata = json!({
        "finalizers": finalizers,
        "resourceVersion": meta.resource_version,
    });
    patch_metadata(api, meta, metadata, "remove the finalizer from").await
}

async fn patch_metadata<K>(
    api: &Api<DeserializeGuard<K>>,
    meta: &ObjectMeta,
    metadata: serde_json::Value,
    action: &str,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let name = meta.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": metadata })),
    )
    .await
    .map_err(|e| Error::kube(format!("{action} {} {name}", K::kind(&())), e))?;
    Ok(())
}

/// A reference to an object known only by its metadata (it did not
/// deserialize), for events.
pub fn invalid_ref<K>(invalid: &InvalidObject) -> ObjectReference
where
    K: Resource<DynamicType = ()>,
{
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: invalid.metadata.name.clone(),
        namespace: invalid.metadata.namespace.clone(),
        uid: invalid.metadata.uid.clone(),
        resource_version: invalid.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Reports a CR that does not match its schema: a warning in the log and a
/// Warning event `InvalidObject` on it. The reconciler then waits for the
/// object to change; the watch goes on with the other objects.
pub async fn report_invalid<K>(ctx: &Ctx, invalid: &InvalidObject)
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    let name = invalid.metadata.name.as_deref().unwrap_or_default();
    tracing::warn!(%kind, name, namespace = ?invalid.metadata.namespace, error = %invalid.error, "skipping a malformed object");
    let notice = Notice::warning(
        "InvalidObject",
        format!("{kind} {name} does not match its schema: {}", invalid.error),
        "Decode",
    );
    ctx.notify(&invalid_ref::<K>(invalid), &notice).await;
}
