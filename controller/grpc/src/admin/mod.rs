//! `AdminService`: foundations, departments and placement policies in
//! standalone mode (in Kubernetes mode the CRDs are the source of truth).
//! Admins only. Create is idempotent under its request id; update replaces
//! spec and labels, guarded by `metadata.revision` when the caller sets it.

pub mod convert;

use std::collections::HashMap;

use tonic::{Request, Response, Status};
use yunshu_core::{
    codec,
    error::FieldViolation,
    keys,
    meta::{Object, Spec},
    model::{DepartmentSpec, FoundationSpec, PlacementPolicySpec},
    store::{Compare, Op, RangeRequest, Txn},
};
use yunshu_proto::api::v1::{self as pb, admin_service_server::AdminService};

use crate::{
    Api, authz,
    changes::Recorded,
    names,
    status::{invalid, invalid_field, to_status},
    validate,
};

/// A cluster-scoped kind as the admin API serves it.
pub trait AdminKind: Spec {
    /// The collection in resource names (`foundations`).
    const COLLECTION: &'static str;
    /// The message field in requests (`foundation`).
    const FIELD: &'static str;
    /// The wire message.
    type Message: Send + Sync + 'static;
    /// Spec and labels of a message, every problem reported.
    fn from_message<'a>(
        m: &'a Self::Message,
        out: &mut Vec<FieldViolation>,
    ) -> Option<(Self, HashMap<String, String>, Option<&'a pb::ObjectMeta>)>;
    /// The wire message of an object.
    fn to_message(o: &Object<Self>) -> Self::Message;
}

macro_rules! admin_kind {
    ($spec:ty, $msg:ident, $collection:literal, $field:literal, $from:path, $to:path) => {
        impl AdminKind for $spec {
            const COLLECTION: &'static str = $collection;
            const FIELD: &'static str = $field;
            type Message = pb::$msg;

            fn from_message<'a>(
                m: &'a pb::$msg,
                out: &mut Vec<FieldViolation>,
            ) -> Option<(Self, HashMap<String, String>, Option<&'a pb::ObjectMeta>)> {
                let labels = m
                    .metadata
                    .as_ref()
                    .map(|x| x.labels.clone())
                    .unwrap_or_default();
                validate::labels(concat!($field, ".metadata.labels"), &labels, out);
                let Some(spec) = &m.spec else {
                    out.push(FieldViolation::new(concat!($field, ".spec"), "is required"));
                    return None;
                };
                Some((
                    $from(concat!($field, ".spec"), spec, out),
                    labels,
                    m.metadata.as_ref(),
                ))
            }

            fn to_message(o: &Object<Self>) -> pb::$msg {
                $to(o)
            }
        }
    };
}

admin_kind!(
    FoundationSpec,
    Foundation,
    "foundations",
    "foundation",
    convert::foundation_spec_from,
    convert::foundation
);
admin_kind!(
    DepartmentSpec,
    Department,
    "departments",
    "department",
    convert::department_spec_from,
    convert::department
);
admin_kind!(
    PlacementPolicySpec,
    PlacementPolicy,
    "placementpolicies",
    "placement_policy",
    convert::policy_spec_from,
    convert::policy
);

impl Api {
    async fn admin_read<K: AdminKind>(&self, name: &str) -> Result<Object<K>, Status> {
        let kv = self
            .store
            .get(&keys::object(K::KIND, None, name))
            .await
            .map_err(to_status)?
            .ok_or_else(|| Status::not_found(format!("{}/{name} not found", K::COLLECTION)))?;
        let mut object = codec::decode_object(&kv).map_err(to_status)?;
        self.fill_usage(&mut object).await?;
        Ok(object)
    }

    /// A department's usage lives in its own hot key, not in the object:
    /// show it in the status the admin reads.
    async fn fill_usage<K: AdminKind>(&self, object: &mut Object<K>) -> Result<(), Status> {
        let any: &mut dyn std::any::Any = object;
        let Some(dept) = any.downcast_mut::<Object<DepartmentSpec>>() else {
            return Ok(());
        };
        if let Some(kv) = self
            .store
            .get(&keys::usage(&dept.meta.name))
            .await
            .map_err(to_status)?
        {
            let usage: yunshu_core::admission::UsageRecord =
                codec::decode(&kv.key, &kv.value).map_err(to_status)?;
            dept.status.usage = usage.usage;
        }
        Ok(())
    }

    /// Creates a cluster-scoped object; a repeat of the same request returns it.
    pub async fn admin_create<K: AdminKind>(
        &self,
        id: &str,
        m: Option<&K::Message>,
        request_id: &str,
    ) -> Result<Object<K>, Status> {
        self.writable::<K>()?;
        let mut out = Vec::new();
        validate::object_name(&format!("{}_id", K::FIELD), id, &mut out);
        validate::request_id("request_id", request_id, &mut out);
        let parsed = match m {
            Some(m) => K::from_message(m, &mut out),
            None => {
                out.push(FieldViolation::new(K::FIELD, "is required"));
                None
            }
        };
        let Some((spec, labels, _)) = parsed.filter(|_| out.is_empty()) else {
            return Err(invalid(&out));
        };
        let mut object = Object::<K>::new(None, id, spec);
        object.meta.labels = labels.into_iter().collect();
        let fingerprint = admin_fingerprint("create", &object)?;
        let key = keys::object(K::KIND, None, id);
        let at = Recorded {
            scope: keys::CLUSTER,
            request_id,
            fingerprint: &fingerprint,
            object_key: &key,
        };
        if let Some(first) = self.recorded_answer::<K>(&at).await? {
            return Ok(first);
        }
        object.meta.request_id = Some(request_id.to_owned());
        if let Some(revision) = self
            .write_recorded(&at, Some(Compare::absent(&key)), &object, true)
            .await?
        {
            object.meta.revision = revision;
            return Ok(object);
        }
        // A retry that raced this one, or (from builds before request
        // records) an object that names this request.
        if let Some(first) = self.recorded_answer::<K>(&at).await? {
            return Ok(first);
        }
        let existing = self.admin_read::<K>(id).await?;
        if existing.meta.request_id.as_deref() == Some(request_id) {
            Ok(existing)
        } else {
            Err(Status::already_exists(format!(
                "{}/{id} already exists",
                K::COLLECTION
            )))
        }
    }

    /// A page of cluster-scoped objects.
    pub async fn admin_list<K: AdminKind>(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Object<K>>, String), Status> {
        let size = match page_size {
            0 => 100,
            n if n < 0 => return Err(invalid_field("page_size", "must not be negative")),
            n => usize::try_from(n).unwrap_or(500).min(500),
        };
        let prefix = keys::objects(K::KIND, None);
        let mut req = RangeRequest::prefix(&prefix).with_limit(size);
        if !page_token.is_empty() {
            if !names::is_dns_label(page_token) {
                return Err(invalid_field(
                    "page_token",
                    "is not a token this list returned",
                ));
            }
            req = req.after(format!("{prefix}{page_token}"));
        }
        let resp = self.store.range(req).await.map_err(to_status)?;
        let mut items: Vec<Object<K>> = resp
            .kvs
            .iter()
            .map(codec::decode_object)
            .collect::<Result<_, _>>()
            .map_err(to_status)?;
        for item in &mut items {
            self.fill_usage(item).await?;
        }
        let next = if resp.more {
            items
                .last()
                .map(|o| o.meta.name.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((items, next))
    }

    /// Replaces spec and labels; guarded by `metadata.revision` when set.
    pub async fn admin_update<K: AdminKind>(
        &self,
        m: Option<&K::Message>,
        request_id: &str,
    ) -> Result<Object<K>, Status> {
        self.writable::<K>()?;
        let mut out = Vec::new();
        validate::request_id("request_id", request_id, &mut out);
        let Some(m) = m else {
            return Err(invalid_field(K::FIELD, "is required"));
        };
        let parsed = K::from_message(m, &mut out);
        let Some((spec, labels, meta)) = parsed.filter(|_| out.is_empty()) else {
            return Err(invalid(&out));
        };
        let full = meta.map(|x| x.name.clone()).unwrap_or_default();
        let name = names::parse_cluster_name(
            &format!("{}.metadata.name", K::FIELD),
            &full,
            K::COLLECTION,
        )?;
        let asked_revision = meta.map_or(0, |x| x.revision);
        // What was asked: the new spec and labels, and the revision guard.
        let asked = {
            let mut o = Object::<K>::new(None, &name, spec.clone());
            o.meta.labels = labels.clone().into_iter().collect();
            o.meta.revision = asked_revision;
            o
        };
        let fingerprint = admin_fingerprint("update", &asked)?;
        let key = keys::object(K::KIND, None, &name);
        let at = Recorded {
            scope: keys::CLUSTER,
            request_id,
            fingerprint: &fingerprint,
            object_key: &key,
        };
        if let Some(first) = self.recorded_answer::<K>(&at).await? {
            return Ok(first);
        }
        // Without a revision guard, an update that loses to a status write
        // (the prober's, say) is made again on a fresh read.
        let attempts = if asked_revision == 0 {
            crate::changes::CHANGE_ATTEMPTS
        } else {
            1
        };
        let gave_up = || format!("{full} changed while it was updated; read it again");
        let (name, full, spec, labels, at, key) = (&name, &full, &spec, &labels, &at, &key);
        crate::changes::on_fresh_reads(attempts, gave_up, move || async move {
            let mut object = self.admin_read::<K>(name).await?;
            let guard = match asked_revision {
                0 => object.meta.revision,
                r if r == object.meta.revision => r,
                _ => {
                    return Err(Status::aborted(format!(
                        "{full} changed since revision {asked_revision}; read it again"
                    )));
                }
            };
            if object.spec != *spec {
                object.meta.generation += 1;
            }
            object.spec = spec.clone();
            object.meta.labels = labels.clone().into_iter().collect();
            if let Some(revision) = self
                .write_recorded(at, Some(Compare::unchanged(key, guard)), &object, true)
                .await?
            {
                object.meta.revision = revision;
                return Ok(Some(object));
            }
            // A retry of this request may have been carried out meanwhile.
            self.recorded_answer::<K>(at).await
        })
        .await
    }

    /// Refuses admin writes in Kubernetes mode, where the CRDs own them.
    fn writable<K: AdminKind>(&self) -> Result<(), Status> {
        if self.crds_own_config {
            return Err(Status::failed_precondition(format!(
                "{} are managed through their Kubernetes resources in this deployment; \
                 change them with kubectl",
                K::COLLECTION
            )));
        }
        Ok(())
    }

    /// Deletes a cluster-scoped object.
    pub async fn admin_delete<K: AdminKind>(
        &self,
        full: &str,
        request_id: &str,
    ) -> Result<Object<K>, Status> {
        self.writable::<K>()?;
        let mut out = Vec::new();
        validate::request_id("request_id", request_id, &mut out);
        if !out.is_empty() {
            return Err(invalid(&out));
        }
        let name = names::parse_cluster_name("name", full, K::COLLECTION)?;
        let object = match self.admin_read::<K>(&name).await {
            Ok(object) => object,
            // A retry of a delete that finished answers as it did.
            Err(e) if e.code() == tonic::Code::NotFound => {
                return match self.deleted::<K>(None, &name, request_id).await? {
                    Some(gone) => Ok(gone),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        if let Some(earlier) = self.earlier_delete(None, request_id, &object).await? {
            return Ok(earlier);
        }
        let base = match K::KIND {
            yunshu_core::meta::Kind::Department => {
                yunshu_core::admission::department_deletion(&*self.store, &name).await
            }
            yunshu_core::meta::Kind::Foundation => {
                yunshu_placement::foundation_deletion(&*self.store, &name).await
            }
            _ => Ok(Ok(Txn::new())),
        }
        .map_err(to_status)?
        .map_err(Status::failed_precondition)?;
        let mut object = object;
        object
            .meta
            .deletion_timestamp
            .get_or_insert_with(chrono::Utc::now);
        if let Some(earlier) = self.remember_delete(None, request_id, &object).await? {
            return Ok(earlier);
        }
        let key = keys::object(K::KIND, None, &name);
        let resp = self
            .store
            .txn(
                base.when([Compare::unchanged(&key, object.meta.revision)])
                    .and_then([Op::delete(&key)]),
            )
            .await
            .map_err(to_status)?;
        if !resp.succeeded {
            return Err(Status::aborted(format!(
                "{full} changed while it was deleted; try again"
            )));
        }
        Ok(object)
    }
}

/// The admin service: five rpcs for each admin kind, generated so their
/// wire types stay concrete.
macro_rules! admin_service {
    ($($spec:ty, $field:ident, $id:ident, $list_field:ident,
     $create:ident: $create_req:ident => $create_resp:ident,
     $get:ident: $get_req:ident => $get_resp:ident,
     $list:ident: $list_req:ident => $list_resp:ident,
     $update:ident: $update_req:ident => $update_resp:ident,
     $delete:ident: $delete_req:ident => $delete_resp:ident;)*) => {
        #[tonic::async_trait]
        impl AdminService for Api { $(
        async fn $create(&self, request: Request<pb::$create_req>) -> Result<Response<pb::$create_resp>, Status> {
            authz::admin(&authz::principal(&request)?)?;
            let r = request.into_inner();
            let o = self.admin_create::<$spec>(&r.$id, r.$field.as_ref(), &r.request_id).await?;
            Ok(Response::new(pb::$create_resp { $field: Some(<$spec>::to_message(&o)) }))
        }

        async fn $get(&self, request: Request<pb::$get_req>) -> Result<Response<pb::$get_resp>, Status> {
            authz::admin(&authz::principal(&request)?)?;
            let name = names::parse_cluster_name("name", &request.get_ref().name, <$spec>::COLLECTION)?;
            let o = self.admin_read::<$spec>(&name).await?;
            Ok(Response::new(pb::$get_resp { $field: Some(<$spec>::to_message(&o)) }))
        }

        async fn $list(&self, request: Request<pb::$list_req>) -> Result<Response<pb::$list_resp>, Status> {
            authz::admin(&authz::principal(&request)?)?;
            let r = request.into_inner();
            let (items, next_page_token) = self.admin_list::<$spec>(r.page_size, &r.page_token).await?;
            Ok(Response::new(pb::$list_resp { $list_field: items.iter().map(<$spec>::to_message).collect(), next_page_token }))
        }

        async fn $update(&self, request: Request<pb::$update_req>) -> Result<Response<pb::$update_resp>, Status> {
            authz::admin(&authz::principal(&request)?)?;
            let r = request.into_inner();
            let o = self.admin_update::<$spec>(r.$field.as_ref(), &r.request_id).await?;
            Ok(Response::new(pb::$update_resp { $field: Some(<$spec>::to_message(&o)) }))
        }

        async fn $delete(&self, request: Request<pb::$delete_req>) -> Result<Response<pb::$delete_resp>, Status> {
            authz::admin(&authz::principal(&request)?)?;
            let r = request.into_inner();
            let o = self.admin_delete::<$spec>(&r.name, &r.request_id).await?;
            Ok(Response::new(pb::$delete_resp { $field: Some(<$spec>::to_message(&o)) }))
        }
        )* }
    };
}

admin_service! {
    FoundationSpec, foundation, foundation_id, foundations,
        create_foundation: CreateFoundationRequest => CreateFoundationResponse,
        get_foundation: GetFoundationRequest => GetFoundationResponse,
        list_foundations: ListFoundationsRequest => ListFoundationsResponse,
        update_foundation: UpdateFoundationRequest => UpdateFoundationResponse,
        delete_foundation: DeleteFoundationRequest => DeleteFoundationResponse;
    DepartmentSpec, department, department_id, departments,
        create_department: CreateDepartmentRequest => CreateDepartmentResponse,
        get_department: GetDepartmentRequest => GetDepartmentResponse,
        list_departments: ListDepartmentsRequest => ListDepartmentsResponse,
        update_department: UpdateDepartmentRequest => UpdateDepartmentResponse,
        delete_department: DeleteDepartmentRequest => DeleteDepartmentResponse;
    PlacementPolicySpec, placement_policy, placement_policy_id, placement_policies,
        create_placement_policy: CreatePlacementPolicyRequest => CreatePlacementPolicyResponse,
        get_placement_policy: GetPlacementPolicyRequest => GetPlacementPolicyResponse,
        list_placement_policies: ListPlacementPoliciesRequest => ListPlacementPoliciesResponse,
        update_placement_policy: UpdatePlacementPolicyRequest => UpdatePlacementPolicyResponse,
        delete_placement_policy: DeletePlacementPolicyRequest => DeletePlacementPolicyResponse;
}

/// What identifies an admin create or update: the verb, the name, the spec,
/// the labels and (for updates) the revision guard.
fn admin_fingerprint<K: AdminKind>(verb: &str, asked: &Object<K>) -> Result<String, Status> {
    let mut content = verb.as_bytes().to_vec();
    content.push(0);
    content.extend(codec::encode(&asked.spec).map_err(to_status)?);
    content.push(0);
    content.extend(codec::encode(&asked.meta.labels).map_err(to_status)?);
    content.extend(asked.meta.revision.to_be_bytes());
    Ok(yunshu_core::admission::fingerprint(
        K::KIND,
        &asked.meta.name,
        &content,
    ))
}
