//! The steps behind creates and actions: tenant and architecture lookups,
//! booting, settling creation races, and resizing with confirmation.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::json;
use tracing::{info, warn};
use yunshu_core::{
    Error, ErrorKind, Result,
    adapter::{Adapter, CloudResource, Owner},
    model::InstanceSpec,
    traits::Trait,
};

use super::OpenStackAdapter;
use crate::{
    cinder, glance,
    nova::{self, DEPARTMENT_KEY, NAME_KEY, UID_KEY},
    placement,
    session::Scope,
};

/// How often `instance_action(Resize)` looks at the server while it waits to
/// confirm the resize.
const RESIZE_POLL: Duration = Duration::from_millis(500);

impl OpenStackAdapter {
    /// The project id of `department`, creating the tenant on first use.
    pub(super) async fn project_of(&self, department: &str) -> Result<String> {
        if let Some(t) = self.cache().tenants.get(department) {
            return Ok(t.tenant_id.clone());
        }
        Ok(self.ensure_tenant(department).await?.tenant_id)
    }

    /// Architectures to resolve images for: the request's `arch:` trait,
    /// else the declared ones, else what Placement reports (measured once).
    pub(super) async fn arches_for(&self, spec: &InstanceSpec) -> Result<Vec<String>> {
        let required: Vec<String> = spec
            .constraints
            .required_traits
            .iter()
            .filter(|t| t.key() == "arch")
            .filter_map(|t| t.value().map(str::to_owned))
            .collect();
        if !required.is_empty() {
            return Ok(required);
        }
        if !self.declared_arches.is_empty() {
            return Ok(self.declared_arches.clone());
        }
        let cached = self.cache().measured_arches.clone();
        if !cached.is_empty() {
            return Ok(cached);
        }
        let (_, traits) = placement::aggregate(&placement::providers(&self.session).await?);
        let arches = arch_values(&traits);
        self.cache().measured_arches.clone_from(&arches);
        Ok(arches)
    }

    pub(super) async fn find_server(&self, owner: &Owner) -> Result<Option<nova::Server>> {
        Ok(
            nova::servers_of(&self.session, &server_name(owner), &owner.uid)
                .await?
                .into_iter()
                .next(),
        )
    }

    pub(super) async fn find_volume(&self, owner: &Owner) -> Result<Option<cinder::Volume>> {
        Ok(cinder::volumes_of(&self.session, &owner.uid)
            .await?
            .into_iter()
            .next())
    }

    /// The image for `spec` on this cloud, for the first architecture that
    /// has one.
    pub(super) async fn image_for(
        &self,
        scope: &Scope,
        spec: &InstanceSpec,
    ) -> Result<glance::Image> {
        let arches = self.arches_for(spec).await?;
        if arches.is_empty() {
            return glance::resolve_image(&self.session, scope, &spec.image, None).await;
        }
        let mut last = None;
        for arch in &arches {
            match glance::resolve_image(&self.session, scope, &spec.image, Some(arch)).await {
                Ok(i) => return Ok(i),
                Err(e) if e.kind() == ErrorKind::Invalid => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("no architecture to resolve the image for")))
    }

    pub(super) async fn boot(&self, owner: &Owner, spec: &InstanceSpec) -> Result<()> {
        let scope = Scope::Project(self.project_of(&owner.department).await?);
        // Independent lookups, run together to keep the create call short.
        let (flavor, image, network) = tokio::try_join!(
            nova::ensure_flavor(&self.session, spec.vcpu, spec.memory_mib, spec.disk_gib),
            self.image_for(&scope, spec),
            glance::first_network(&self.session, &scope),
        )?;
        let name = server_name(owner);
        let id = nova::create_server(
            &self.session,
            &scope,
            &nova::Boot {
                name: &name,
                flavor_id: &flavor,
                image_id: &image.id,
                network_id: &network,
                zone: spec.constraints.zone.as_deref(),
                metadata: owner_metadata(owner),
            },
        )
        .await?;
        info!(foundation = %self.foundation, server = %id, image = %image.id, flavor = %flavor, "server created");
        Ok(())
    }

    /// After a create, keeps the oldest resource of `owner` and deletes any
    /// other (a lost race with another process); returns the survivor.
    pub(super) async fn settle_instance(&self, owner: &Owner) -> Result<CloudResource> {
        let servers = nova::servers_of(&self.session, &server_name(owner), &owner.uid).await?;
        let (keep, extra) = servers.split_first().ok_or_else(|| {
            Error::internal(format!(
                "server for uid {} vanished right after it was created",
                owner.uid
            ))
        })?;
        for s in extra {
            warn!(foundation = %self.foundation, server = %s.id, uid = %owner.uid, "deleting duplicate server");
            nova::delete_server(&self.session, &s.id).await?;
        }
        Ok(nova::server_resource(keep))
    }

    pub(super) async fn settle_volume(&self, owner: &Owner) -> Result<CloudResource> {
        let vols = cinder::volumes_of(&self.session, &owner.uid).await?;
        let (keep, extra) = vols.split_first().ok_or_else(|| {
            Error::internal(format!(
                "volume for uid {} vanished right after it was created",
                owner.uid
            ))
        })?;
        for v in extra {
            warn!(foundation = %self.foundation, volume = %v.id, uid = %owner.uid, "deleting duplicate volume");
            cinder::delete(&self.session, &v.id).await?;
        }
        Ok(cinder::volume_resource(keep))
    }

    pub(super) async fn resize(
        &self,
        server: nova::Server,
        vcpu: u32,
        memory_mib: u64,
    ) -> Result<()> {
        let confirm = |id: String| async move {
            nova::action(
                &self.session,
                &id,
                "confirm resize",
                json!({ "confirmResize": null }),
            )
            .await
        };
        let current = server.flavor.unwrap_or_default();
        if server.status == "VERIFY_RESIZE" {
            // An earlier resize waits for confirmation: confirmed, it is
            // this one if it was to this size; otherwise this one follows
            // once the server is active again.
            confirm(server.id.clone()).await?;
            if current.vcpus == vcpu && current.ram == memory_mib {
                return Ok(());
            }
            return Err(Error::Conflict {
                message: format!(
                    "nova: confirmed an earlier resize of server {} to {} vCPU and {} MiB; resize again once it is active",
                    server.id, current.vcpus, current.ram
                ),
            });
        }
        // Already this size, and nothing under way: done, whatever its
        // state (a paused or shelved server at this size needs nothing).
        if current.vcpus == vcpu && current.ram == memory_mib && server.task_state.is_none() {
            return Ok(());
        }
        if !matches!(server.status.as_str(), "ACTIVE" | "SHUTOFF") {
            return Err(Error::Conflict {
                message: format!(
                    "nova: cannot resize server {} while it is {}",
                    server.id, server.status
                ),
            });
        }
        let flavor = nova::ensure_flavor(&self.session, vcpu, memory_mib, current.disk).await?;
        nova::action(
            &self.session,
            &server.id,
            "resize server",
            json!({ "resize": { "flavorRef": flavor } }),
        )
        .await?;
        let deadline = Instant::now() + self.session.config().action_timeout;
        loop {
            tokio::time::sleep(RESIZE_POLL).await;
            let s = nova::server(&self.session, &server.id).await?;
            match s.status.as_str() {
                "VERIFY_RESIZE" => return confirm(s.id).await,
                "ERROR" => {
                    return Err(Error::internal(format!(
                        "nova: resize of server {} failed: {}",
                        s.id,
                        s.fault.map(|f| f.message).unwrap_or_default()
                    )));
                }
                "ACTIVE" | "SHUTOFF"
                    if s.task_state.is_none()
                        && s.flavor
                            .is_some_and(|f| f.vcpus == vcpu && f.ram == memory_mib) =>
                {
                    return Ok(()); // the cloud confirms resizes by itself
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    message: format!(
                        "nova: server {} did not reach VERIFY_RESIZE within {:?}; repeat the action to confirm it",
                        s.id,
                        self.session.config().action_timeout
                    ),
                    source: None,
                });
            }
        }
    }
}

/// `<department>-<name>`: the server's and volume's name on the cloud.
pub(super) fn server_name(owner: &Owner) -> String {
    format!("{}-{}", owner.department, owner.name)
}

pub(super) fn owner_metadata(owner: &Owner) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (UID_KEY, owner.uid.clone()),
        (DEPARTMENT_KEY, owner.department.clone()),
        (NAME_KEY, owner.name.clone()),
    ])
}

pub(super) fn arch_values(traits: &[Trait]) -> Vec<String> {
    traits
        .iter()
        .filter(|t| t.key() == "arch")
        .filter_map(|t| t.value().map(str::to_owned))
        .collect()
}
