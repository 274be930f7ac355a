//! [`OpenStackAdapter`]: the [`Adapter`] implementation.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex as StdMutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::{debug, info, warn};
use yunshu_core::{
    Error, ErrorKind, Result,
    adapter::{
        Adapter, Capabilities, CloudResource, Credentials, DeleteOptions, InstanceAction,
        IssuedCredentials, Owner, Probe,
    },
    meta::Kind,
    model::{
        AdapterKind, BucketSpec, FoundationSpec, Health, InstanceSpec, TenantMapping, VolumeSpec,
    },
    resources::ResourceClass,
};

mod provision;

use provision::{arch_values, owner_metadata, server_name};

use crate::{
    cinder,
    config::{Auth, Config},
    keystone, nova, placement,
    session::{Call, Scope, Service, Session},
};

/// Drives one OpenStack cloud (one Keystone, one region).
///
/// Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct OpenStackAdapter {
    foundation: String,
    session: Session,
    /// Architectures declared in the foundation's traits (`arch:…`).
    declared_arches: Vec<String>,
    cache: StdMutex<Cache>,
    /// One lock per owner uid, so concurrent creates of one object in this
    /// process make one cloud resource.
    keys: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

#[derive(Debug, Default)]
struct Cache {
    /// Department → mapping, filled by `ensure_tenant`.
    tenants: HashMap<String, TenantMapping>,
    /// Architectures Placement reported (`aarch64`, `x86_64`).
    measured_arches: Vec<String>,
}

impl OpenStackAdapter {
    /// An adapter for `foundation` from its spec (`endpoint` = Keystone URL,
    /// `region`, tunables in `settings`, see [`Config::from_settings`]) and
    /// its admin credentials. Makes no network call: the first one
    /// authenticates.
    pub fn new(foundation: &str, spec: &FoundationSpec, credentials: Credentials) -> Result<Self> {
        Self::with_config(
            foundation,
            spec,
            credentials,
            Config::from_settings(&spec.settings)?,
        )
    }

    /// Like [`OpenStackAdapter::new`], with an explicit configuration.
    pub fn with_config(
        foundation: &str,
        spec: &FoundationSpec,
        credentials: Credentials,
        config: Config,
    ) -> Result<Self> {
        if spec.adapter != AdapterKind::Openstack {
            return Err(Error::invalid(
                "spec.adapter",
                "must be `openstack` for the OpenStack adapter",
            ));
        }
        let auth = Auth::from_credentials(&credentials)?;
        let session = Session::new(&spec.endpoint, spec.region.clone(), auth, config)?;
        Ok(Self {
            foundation: foundation.to_owned(),
            session,
            declared_arches: spec
                .traits
                .iter()
                .filter(|t| t.key() == "arch")
                .filter_map(|t| t.value().map(str::to_owned))
                .collect(),
            cache: StdMutex::new(Cache::default()),
            keys: StdMutex::new(HashMap::new()),
        })
    }

    /// The foundation's name.
    pub fn foundation(&self) -> &str {
        &self.foundation
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn lock_key(&self, kind: Kind, uid: &str) -> OwnedMutexGuard<()> {
        let m = {
            let mut keys = self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.retain(|_, m| Arc::strong_count(m) > 1);
            Arc::clone(keys.entry(format!("{}/{uid}", kind.plural())).or_default())
        };
        m.lock_owned().await
    }
}

fn not_found(kind: Kind, owner: &Owner) -> Error {
    Error::not_found(format!(
        "{} {}/{} (uid {})",
        kind.plural().trim_end_matches('s'),
        owner.department,
        owner.name,
        owner.uid
    ))
}

fn no_buckets() -> Error {
    Error::invalid(
        "kind",
        "the OpenStack adapter does not serve buckets; use an S3 foundation",
    )
}

fn validate_instance(spec: &InstanceSpec) -> Result<()> {
    let mut v = Vec::new();
    if spec.vcpu == 0 {
        v.push(yunshu_core::error::FieldViolation::new(
            "spec.vcpu",
            "must be at least 1",
        ));
    }
    if spec.memory_mib == 0 {
        v.push(yunshu_core::error::FieldViolation::new(
            "spec.memoryMib",
            "must be at least 1",
        ));
    }
    if spec.image.trim().is_empty() {
        v.push(yunshu_core::error::FieldViolation::new(
            "spec.image",
            "must name an image",
        ));
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid { violations: v })
    }
}

fn validate_department(department: &str) -> Result<()> {
    if department.is_empty() || department.len() > 57 {
        return Err(Error::invalid(
            "department",
            "must be 1-57 characters (Keystone names are at most 64)",
        ));
    }
    Ok(())
}

#[async_trait]
impl Adapter for OpenStackAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Openstack
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: vec![Kind::Instance, Kind::Volume],
            issues_credentials: false,
        }
    }

    async fn probe(&self) -> Result<Probe> {
        let start = Instant::now();
        // Authenticating (or a cached token) proves the credentials; the GET
        // proves Keystone answers now.
        self.session.token(&Scope::Admin).await?;
        let keystone = self.session.run(
            &Scope::Admin,
            Call::new(Method::GET, Service::Identity, "", "version"),
        );
        let nova = self.session.run(
            &Scope::Admin,
            Call::new(Method::GET, Service::Compute, "/flavors", "list flavors")
                .query("limit", "1"),
        );
        let providers = placement::providers(&self.session);
        let pools = cinder::pools(&self.session);
        let (keystone, nova, providers, pools) = tokio::join!(keystone, nova, providers, pools);
        // Block storage is measured where Cinder can tell; otherwise the
        // declared capacity counts. Cinder's trouble shows on volume calls.
        let volumes = match pools {
            Ok(p) => cinder::pool_inventory(&p),
            Err(e) => {
                debug!(foundation = %self.foundation, error = %e, "storage pools not read");
                None
            }
        };
        let latency = start.elapsed();
        for (service, r) in [("keystone", keystone.err()), ("nova", nova.err())] {
            if let Some(e) = r {
                warn!(foundation = %self.foundation, service, error = %e, "probe failed");
                return Ok(Probe {
                    health: Health::Degraded,
                    latency,
                    inventory: providers
                        .as_ref()
                        .map(|p| placement::aggregate(p).0)
                        .unwrap_or_default(),
                    traits: Vec::new(),
                });
            }
        }
        match providers {
            Ok(p) => {
                let (mut inventory, traits) = placement::aggregate(&p);
                inventory.extend(volumes.map(|v| (ResourceClass::VolumeGib, v)));
                self.cache().measured_arches = arch_values(&traits);
                debug!(foundation = %self.foundation, ?latency, providers = p.len(), "probed");
                Ok(Probe {
                    health: Health::Ready,
                    latency,
                    inventory,
                    traits,
                })
            }
            Err(e) => {
                warn!(foundation = %self.foundation, service = "placement", error = %e, "probe failed");
                Ok(Probe {
                    health: Health::Degraded,
                    latency,
                    inventory: BTreeMap::new(),
                    traits: Vec::new(),
                })
            }
        }
    }

    async fn ensure_tenant(&self, department: &str) -> Result<TenantMapping> {
        validate_department(department)?;
        let admin = self.session.token(&Scope::Admin).await?;
        let config = self.session.config();
        let (member, admin_role) = tokio::try_join!(
            keystone::role_id(&self.session, &config.member_role, "member_role"),
            keystone::role_id(&self.session, &config.admin_role, "admin_role"),
        )?;
        let (project, user) = keystone::ensure(
            &self.session,
            department,
            &member,
            &admin_role,
            &admin.user_id,
        )
        .await?;
        let mapping = TenantMapping {
            tenant_id: project,
            user,
        };
        self.cache()
            .tenants
            .insert(department.to_owned(), mapping.clone());
        Ok(mapping)
    }

    async fn create_instance(&self, owner: &Owner, spec: &InstanceSpec) -> Result<CloudResource> {
        validate_instance(spec)?;
        let _key = self.lock_key(Kind::Instance, &owner.uid).await;
        if let Some(s) = self.find_server(owner).await? {
            return Ok(nova::server_resource(&s));
        }
        self.boot(owner, spec).await?;
        self.settle_instance(owner).await
    }

    async fn create_volume(&self, owner: &Owner, spec: &VolumeSpec) -> Result<CloudResource> {
        if spec.size_gib == 0 {
            return Err(Error::invalid("spec.sizeGib", "must be at least 1"));
        }
        let _key = self.lock_key(Kind::Volume, &owner.uid).await;
        if let Some(v) = self.find_volume(owner).await? {
            return Ok(cinder::volume_resource(&v));
        }
        let scope = Scope::Project(self.project_of(&owner.department).await?);
        let id = cinder::create(
            &self.session,
            &scope,
            &server_name(owner),
            spec.size_gib,
            spec.constraints.zone.as_deref(),
            &owner_metadata(owner),
        )
        .await?;
        info!(foundation = %self.foundation, volume = %id, "volume created");
        self.settle_volume(owner).await
    }

    async fn create_bucket(&self, _owner: &Owner, _spec: &BucketSpec) -> Result<CloudResource> {
        Err(no_buckets())
    }

    async fn get(&self, kind: Kind, owner: &Owner) -> Result<CloudResource> {
        match kind {
            Kind::Instance => self
                .find_server(owner)
                .await?
                .map(|s| nova::server_resource(&s)),
            Kind::Volume => self
                .find_volume(owner)
                .await?
                .map(|v| cinder::volume_resource(&v)),
            Kind::Bucket => return Err(no_buckets()),
            other => {
                return Err(Error::invalid(
                    "kind",
                    format!("`{}` is not a cloud resource", other.plural()),
                ));
            }
        }
        .ok_or_else(|| not_found(kind, owner))
    }

    /// Returns once the cloud has accepted the deletion of every resource
    /// carrying the uid: Nova and Cinder delete asynchronously, so `get` may
    /// show the resource (status `DELETING`/`deleting`) a little longer;
    /// it is gone when `get` answers `NotFound`. An attached volume is
    /// refused with `Conflict` (detach it first).
    async fn delete(&self, kind: Kind, owner: &Owner, _opts: DeleteOptions) -> Result<()> {
        let _key = self.lock_key(kind, &owner.uid).await;
        match kind {
            Kind::Instance => {
                for s in nova::servers_of(&self.session, &server_name(owner), &owner.uid).await? {
                    if s.task_state.as_deref() != Some("deleting") {
                        nova::delete_server(&self.session, &s.id).await?;
                    }
                }
                Ok(())
            }
            Kind::Volume => {
                for v in cinder::volumes_of(&self.session, &owner.uid).await? {
                    if v.status == "deleting" {
                        continue;
                    }
                    if let Some(a) = v.attachments.first() {
                        return Err(Error::Conflict {
                            message: format!(
                                "volume {} is attached to server {}; detach it first",
                                v.id, a.server_id
                            ),
                        });
                    }
                    cinder::delete(&self.session, &v.id).await?;
                }
                Ok(())
            }
            Kind::Bucket => Err(no_buckets()),
            other => Err(Error::invalid(
                "kind",
                format!("`{}` is not a cloud resource", other.plural()),
            )),
        }
    }

    /// Returns once Nova accepted the attachment (the volume goes
    /// `attaching`, then `in-use`). A repeat while it is attaching answers
    /// `Conflict` (retryable); once attached to this instance, `Ok`.
    async fn attach_volume(&self, volume: &Owner, instance: &Owner) -> Result<()> {
        let v = self
            .find_volume(volume)
            .await?
            .ok_or_else(|| not_found(Kind::Volume, volume))?;
        let s = self
            .find_server(instance)
            .await?
            .ok_or_else(|| not_found(Kind::Instance, instance))?;
        if v.attachments.iter().any(|a| a.server_id == s.id) {
            return Ok(());
        }
        if let Some(a) = v.attachments.first() {
            return Err(Error::Conflict {
                message: format!(
                    "volume {} is attached to another server ({})",
                    v.id, a.server_id
                ),
            });
        }
        if v.status != "available" {
            return Err(Error::Conflict {
                message: format!(
                    "volume {} is {}; it can be attached once available",
                    v.id, v.status
                ),
            });
        }
        nova::attach(
            &self.session,
            &Scope::Project(s.tenant_id.clone()),
            &s.id,
            &v.id,
        )
        .await
    }

    /// Returns once Nova accepted every detachment (the volume goes
    /// `detaching`, then `available`).
    async fn detach_volume(&self, volume: &Owner) -> Result<()> {
        let v = self
            .find_volume(volume)
            .await?
            .ok_or_else(|| not_found(Kind::Volume, volume))?;
        if v.status == "detaching" {
            return Ok(());
        }
        for a in &v.attachments {
            let scope = match nova::server(&self.session, &a.server_id).await {
                Ok(s) => Scope::Project(s.tenant_id),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            nova::detach(&self.session, &scope, &a.server_id, &v.id).await?;
        }
        Ok(())
    }

    /// Start, stop and reboot return once Nova accepted them; starting a
    /// running or stopping a stopped server is `Ok`. Resize picks (or
    /// creates) a flavor of the new size with the same disk, waits for
    /// `VERIFY_RESIZE` (at most `action_timeout`) and confirms it.
    async fn instance_action(&self, owner: &Owner, action: InstanceAction) -> Result<()> {
        let _key = self.lock_key(Kind::Instance, &owner.uid).await;
        let s = self
            .find_server(owner)
            .await?
            .ok_or_else(|| not_found(Kind::Instance, owner))?;
        let busy = || Error::Conflict {
            message: format!(
                "nova: server {} is {} ({}); try again later",
                s.id,
                s.status,
                s.task_state.as_deref().unwrap_or("idle")
            ),
        };
        match action {
            InstanceAction::Start => match (s.status.as_str(), s.task_state.as_deref()) {
                ("ACTIVE", None | Some("powering-on")) => Ok(()),
                ("SHUTOFF", None) => {
                    nova::action(
                        &self.session,
                        &s.id,
                        "start server",
                        json!({ "os-start": null }),
                    )
                    .await
                }
                ("SHUTOFF", Some("powering-on")) => Ok(()),
                _ => Err(busy()),
            },
            InstanceAction::Stop => match (s.status.as_str(), s.task_state.as_deref()) {
                ("SHUTOFF", None) | ("ACTIVE", Some("powering-off")) => Ok(()),
                ("ACTIVE", None) => {
                    nova::action(
                        &self.session,
                        &s.id,
                        "stop server",
                        json!({ "os-stop": null }),
                    )
                    .await
                }
                _ => Err(busy()),
            },
            InstanceAction::Reboot => {
                let kind = if s.status == "ACTIVE" { "SOFT" } else { "HARD" };
                nova::action(
                    &self.session,
                    &s.id,
                    "reboot server",
                    json!({ "reboot": { "type": kind } }),
                )
                .await
            }
            InstanceAction::Resize { vcpu, memory_mib } => {
                if vcpu == 0 || memory_mib == 0 {
                    return Err(Error::invalid(
                        "action.resize",
                        "vcpu and memory must be at least 1",
                    ));
                }
                self.resize(s, vcpu, memory_mib).await
            }
        }
    }

    async fn list_owned(&self, kind: Kind) -> Result<Vec<CloudResource>> {
        match kind {
            Kind::Instance => Ok(nova::owned_servers(&self.session)
                .await?
                .iter()
                .map(nova::server_resource)
                .collect()),
            Kind::Volume => Ok(cinder::owned_volumes(&self.session)
                .await?
                .iter()
                .map(cinder::volume_resource)
                .collect()),
            Kind::Bucket => Err(no_buckets()),
            other => Err(Error::invalid(
                "kind",
                format!("`{}` is not a cloud resource", other.plural()),
            )),
        }
    }

    async fn issue_credentials(&self, _owner: &Owner, _ttl: Duration) -> Result<IssuedCredentials> {
        Err(no_buckets())
    }

    async fn revoke_credentials(&self, _owner: &Owner, _access_key: &str) -> Result<()> {
        Err(no_buckets())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nova::{DEPARTMENT_KEY, NAME_KEY, UID_KEY};

    #[test]
    fn names_and_metadata_carry_the_owner() {
        let o = Owner {
            department: "health".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
        };
        assert_eq!(server_name(&o), "health-web-1");
        let m = owner_metadata(&o);
        assert_eq!(m[UID_KEY], "u-1");
        assert_eq!(m[DEPARTMENT_KEY], "health");
        assert_eq!(m[NAME_KEY], "web-1");
        assert_eq!(
            not_found(Kind::Instance, &o).to_string(),
            "instance health/web-1 (uid u-1) not found"
        );
    }

    #[test]
    fn instance_specs_are_validated_per_field() {
        let spec: InstanceSpec = serde_json::from_value(
            json!({ "vcpu": 0, "memoryMib": 0, "diskGib": 1, "image": " " }),
        )
        .expect("spec");
        let e = validate_instance(&spec).expect_err("invalid");
        let s = e.to_string();
        assert!(
            s.contains("spec.vcpu") && s.contains("spec.memoryMib") && s.contains("spec.image"),
            "{s}"
        );
    }
}
