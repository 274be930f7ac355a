//! Provisioning: record the intent, make sure the department has a tenant,
//! create the cloud resource under the object's uid, and poll it until the
//! cloud says Ready or Failed.

use super::*;

impl Provisioner {
    pub(super) async fn record_intent<S: Provisioned>(
        &self,
        key: &str,
        object: &Object<S>,
        foundation: &str,
    ) -> Result<Next> {
        if self.client(foundation).await?.is_none() {
            return Ok(Next::Done);
        }
        let uid = object.meta.uid.clone();
        let foundation = foundation.to_owned();
        mutate::<S>(&*self.store, key, |o| {
            if o.meta.uid != uid
                || o.status.phase != Phase::Scheduled
                || o.meta.deletion_timestamp.is_some()
            {
                return false;
            }
            if !o.meta.finalizers.iter().any(|f| f == FINALIZER) {
                o.meta.finalizers.push(FINALIZER.to_owned());
            }
            o.status.phase = Phase::Provisioning;
            o.status.message = format!("creating on {foundation}");
            let generation = o.meta.generation;
            set_condition(
                &mut o.status.conditions,
                condition(
                    condition_types::READY,
                    ConditionStatus::False,
                    "Provisioning",
                    format!("creating on foundation {foundation}"),
                    generation,
                ),
            );
            true
        })
        .await?;
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), Instant::now());
        Ok(Next::Done)
    }

    pub(super) async fn ensure_tenant(
        &self,
        client: &FoundationClient,
        department: &str,
    ) -> Result<()> {
        let id = (client.name().to_owned(), department.to_owned());
        let mut tenants = self.tenants.lock().await;
        if tenants.contains_key(&id) {
            return Ok(());
        }
        let mapping = client.ensure_tenant(department, Priority::User).await?;
        let foundation = client.name().to_owned();
        let dkey = keys::object(Kind::Department, None, department);
        mutate::<DepartmentSpec>(&*self.store, &dkey, |d| {
            if d.status.tenants.get(&foundation) == Some(&mapping) {
                return false;
            }
            d.status.tenants.insert(foundation.clone(), mapping.clone());
            true
        })
        .await?;
        tenants.insert(id, ());
        Ok(())
    }

    pub(super) fn poll_delay(&self, key: &str) -> Duration {
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_insert_with(Instant::now)
            .elapsed();
        // Fast while a create usually finishes, slower for long ones.
        let step = if elapsed < Duration::from_secs(15) {
            self.config.poll_min
        } else if elapsed < Duration::from_secs(60) {
            self.config.poll_min * 4
        } else {
            self.config.poll_max
        };
        step.min(self.config.poll_max)
    }

    pub(super) async fn wait_with_message<S: Provisioned>(
        &self,
        key: &str,
        uid: &str,
        message: String,
    ) -> Result<Next> {
        mutate::<S>(&*self.store, key, |o| {
            if o.meta.uid != uid || o.status.message == message {
                return false;
            }
            o.status.message = message.clone();
            true
        })
        .await?;
        Ok(Next::After(self.config.retry_after))
    }

    pub(super) async fn provision<S: Provisioned>(
        &self,
        key: &str,
        object: Object<S>,
        foundation: &str,
    ) -> Result<Next> {
        let uid = object.meta.uid.clone();
        let Some(client) = self.client(foundation).await? else {
            return self
                .wait_with_message::<S>(
                    key,
                    &uid,
                    format!("waiting: foundation {foundation} has no adapter credentials"),
                )
                .await;
        };
        let owner = owner_of(&object);
        let result = match self.ensure_tenant(&client, &owner.department).await {
            Err(e) => Err(e),
            Ok(()) if object.status.cloud_id.is_none() => {
                S::create(&client, &owner, &object.spec).await
            }
            Ok(()) => client.get(S::KIND, &owner, Priority::User).await,
        };
        let resource = match result {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound && object.status.cloud_id.is_some() => {
                // The resource vanished while being created: create again.
                mutate::<S>(&*self.store, key, |o| {
                    o.meta.uid == uid && o.status.cloud_id.take().is_some()
                })
                .await?;
                return Ok(Next::After(self.config.poll_min));
            }
            Err(e) if waits(e.kind()) => {
                self.metrics.error("provisioner", e.kind());
                return self
                    .wait_with_message::<S>(
                        key,
                        &uid,
                        format!("waiting for foundation {foundation}: {e}"),
                    )
                    .await;
            }
            Err(e) => {
                self.metrics.error("provisioner", e.kind());
                let message = format!("foundation {foundation} refused the request: {e}");
                self.set_failed::<S>(key, &uid, None, message).await?;
                return Ok(Next::Done);
            }
        };
        if resource.failed {
            let message = if resource.message.is_empty() {
                format!(
                    "foundation {foundation} reports the resource as {}",
                    resource.status
                )
            } else {
                format!("foundation {foundation}: {}", resource.message)
            };
            self.set_failed::<S>(key, &uid, Some(resource.id.clone()), message)
                .await?;
            return Ok(Next::Done);
        }
        if resource.ready {
            // Resizes wait for Ready, so the spec read here is the one the
            // resource was made to.
            let made = object.spec.charge();
            let written = mutate::<S>(&*self.store, key, |o| {
                if o.meta.uid != uid || o.status.phase != Phase::Provisioning {
                    return false;
                }
                o.status.phase = Phase::Ready;
                o.status.message = String::new();
                o.status.provisioned = Some(made);
                set_provisioned(&mut o.status, &resource, foundation, o.meta.generation);
                true
            })
            .await?;
            if let Some(started) = self
                .started
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key)
            {
                tracing::info!(key, foundation, took = ?started.elapsed(), "provisioned");
            }
            // A Ready volume may have an attachment to make.
            return Ok(match written {
                Some(_) if S::KIND == Kind::Volume => Next::After(Duration::ZERO),
                _ => Next::Done,
            });
        }
        let status = resource.status.clone();
        mutate::<S>(&*self.store, key, |o| {
            let message = format!("{status} on foundation {foundation}");
            if o.meta.uid != uid
                || (o.status.cloud_id.as_deref() == Some(resource.id.as_str())
                    && o.status.message == message)
            {
                return false;
            }
            o.status.cloud_id = Some(resource.id.clone());
            o.status.message = message;
            true
        })
        .await?;
        Ok(Next::After(self.poll_delay(key)))
    }

    pub(super) async fn set_failed<S: Provisioned>(
        &self,
        key: &str,
        uid: &str,
        cloud_id: Option<String>,
        message: String,
    ) -> Result<()> {
        tracing::warn!(key, message, "provisioning failed");
        mutate::<S>(&*self.store, key, |o| {
            if o.meta.uid != uid || o.status.phase == Phase::Failed {
                return false;
            }
            o.status.phase = Phase::Failed;
            if cloud_id.is_some() {
                o.status.cloud_id.clone_from(&cloud_id);
            }
            o.status.message = message.clone();
            let generation = o.meta.generation;
            set_condition(
                &mut o.status.conditions,
                condition(
                    condition_types::READY,
                    ConditionStatus::False,
                    "ProvisioningFailed",
                    message.clone(),
                    generation,
                ),
            );
            true
        })
        .await?;
        self.forget(key);
        Ok(())
    }
}
