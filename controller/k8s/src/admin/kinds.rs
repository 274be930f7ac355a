//! The three admin kinds: what each reads for its status and what its
//! deletion needs. A Foundation also loads and publishes its credentials;
//! a Department shows its usage key and may not go while it holds
//! resources.

use chrono::Utc;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource, ResourceExt};
use yunshu_core::{
    admission::UsageRecord,
    codec, keys,
    meta::Object,
    model as core,
    store::{StoreExt, Txn},
};
use yunshu_crds::{
    Condition, ConditionStatus, ConversionError, Department, DepartmentStatus, Foundation,
    FoundationStatus, PlacementPolicy, PlacementPolicyStatus, foundation::SecretRef,
};

use super::{AdminCr, status};
use crate::{
    conditions::{Decided, SYNCED},
    context::Ctx,
    credentials::credentials_from_secret,
    error::{Error, Result, kube_error_kind},
};

fn inputs<'a>(
    synced: Decided,
    previous: Option<(&'a [Condition], i64)>,
    generation: Option<i64>,
) -> status::Inputs<'a> {
    status::Inputs {
        synced,
        previous: previous.map_or(&[][..], |p| p.0),
        previous_generation: previous.map_or(0, |p| p.1),
        generation: generation.unwrap_or(1),
        now: Utc::now(),
    }
}

impl AdminCr for Foundation {
    type Spec = core::FoundationSpec;
    type Status = FoundationStatus;

    fn core_spec(&self) -> Result<Self::Spec, ConversionError> {
        self.spec.clone().try_into()
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }

    async fn observe<'a>(
        ctx: &'a Ctx,
        cr: &'a Self,
        stored: Option<&'a Object<Self::Spec>>,
        synced: Decided,
    ) -> Result<Self::Status> {
        let name = cr.name_any();
        let secret = cr.spec.credentials_secret_ref.as_ref();
        let refused = load_credentials(ctx, &name, secret).await?;
        let synced = match refused {
            Some(failure) if synced.status == ConditionStatus::True => failure,
            _ => synced,
        };
        let previous = cr
            .status
            .as_ref()
            .map(|s| (&s.conditions[..], s.observed_generation));
        let inputs = inputs(synced, previous, cr.meta().generation);
        Ok(status::foundation(&cr.spec.traits, stored, &inputs))
    }

    async fn cleanup<'a>(ctx: &'a Ctx, name: &'a str) -> Result<()> {
        if ctx.op.credentials.withdraw(name) {
            tracing::info!(
                foundation = name,
                "withdrew the credentials of a deleted foundation"
            );
        }
        Ok(())
    }
}

/// Reads the foundation's Secret and publishes its credentials. Returns the
/// `Synced` failure to report when the Secret is missing or unusable (the
/// credentials are then withdrawn); a transient read failure is an error
/// (retried, the last credentials kept).
async fn load_credentials(
    ctx: &Ctx,
    foundation: &str,
    secret: Option<&SecretRef>,
) -> Result<Option<Decided>> {
    let hub = &ctx.op.credentials;
    let Some(r) = secret else {
        hub.withdraw(foundation);
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(ctx.client(), &r.namespace);
    let at = format!("{}/{}", r.namespace, r.name);
    match api.get_opt(&r.name).await {
        Ok(Some(secret)) => match credentials_from_secret(&secret) {
            Ok(credentials) => {
                if hub.publish(foundation, credentials) {
                    tracing::info!(foundation, secret = %at, "published foundation credentials");
                }
                Ok(None)
            }
            Err(e) => {
                hub.withdraw(foundation);
                Ok(Some(Decided::fails(
                    SYNCED,
                    "InvalidSecret",
                    format!("Secret {at} (spec.credentialsSecretRef): {e}"),
                )))
            }
        },
        Ok(None) => {
            hub.withdraw(foundation);
            Ok(Some(Decided::fails(
                SYNCED,
                "SecretNotFound",
                format!("Secret {at} (spec.credentialsSecretRef) does not exist"),
            )))
        }
        Err(e) if kube_error_kind(&e).is_retryable() => {
            Err(Error::kube(format!("read Secret {at}"), e))
        }
        Err(e) => Ok(Some(Decided::fails(
            SYNCED,
            "SecretUnreadable",
            format!("failed to read Secret {at} (spec.credentialsSecretRef): {e}"),
        ))),
    }
}

impl AdminCr for Department {
    type Spec = core::DepartmentSpec;
    type Status = DepartmentStatus;

    fn core_spec(&self) -> Result<Self::Spec, ConversionError> {
        self.spec.clone().try_into()
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }

    async fn observe<'a>(
        ctx: &'a Ctx,
        cr: &'a Self,
        stored: Option<&'a Object<Self::Spec>>,
        synced: Decided,
    ) -> Result<Self::Status> {
        let name = cr.name_any();
        let key = keys::usage(&name);
        let usage = match ctx.op.store.get(&key).await {
            Ok(Some(kv)) => Some(
                codec::decode::<UsageRecord>(&kv.key, &kv.value)
                    .map_err(|e| Error::store(format!("read the usage of department {name}"), e))?
                    .usage,
            ),
            Ok(None) => None,
            Err(e) => {
                return Err(Error::store(
                    format!("read the usage of department {name}"),
                    e,
                ));
            }
        };
        let previous = cr
            .status
            .as_ref()
            .map(|s| (&s.conditions[..], s.observed_generation));
        let inputs = inputs(synced, previous, cr.meta().generation);
        Ok(status::department(stored, usage, &inputs))
    }

    async fn deletion<'a>(ctx: &'a Ctx, name: &'a str) -> Result<std::result::Result<Txn, String>> {
        yunshu_core::admission::department_deletion(ctx.op.store.as_ref(), name)
            .await
            .map_err(|e| Error::store(format!("check that department {name} is empty"), e))
    }

    async fn cleanup<'a>(ctx: &'a Ctx, name: &'a str) -> Result<()> {
        ctx.op
            .store
            .delete(&keys::usage(name))
            .await
            .map_err(|e| Error::store(format!("delete the usage of department {name}"), e))?;
        Ok(())
    }
}

impl AdminCr for PlacementPolicy {
    type Spec = core::PlacementPolicySpec;
    type Status = PlacementPolicyStatus;

    fn core_spec(&self) -> Result<Self::Spec, ConversionError> {
        Ok(self.spec.clone().into())
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }

    async fn observe<'a>(
        _ctx: &'a Ctx,
        cr: &'a Self,
        stored: Option<&'a Object<Self::Spec>>,
        synced: Decided,
    ) -> Result<Self::Status> {
        let previous = cr
            .status
            .as_ref()
            .map(|s| (&s.conditions[..], s.observed_generation));
        let inputs = inputs(synced, previous, cr.meta().generation);
        Ok(status::policy(stored, &inputs))
    }
}
