//! Keeping Ready resources as their spec says: an instance's size and
//! power state, a volume's attachment, a bucket's usage.

use super::*;

/// How long a resize waits for its claim to grow before its instance says
/// it is waiting for room.
const RESIZE_GRACE: Duration = Duration::from_secs(2);

/// How the message of a resize waiting for room begins.
const WAITING_FOR_ROOM: &str = "waiting for room";
/// How the message of a resize the cloud failed begins.
const RESIZING: &str = "resizing";

/// Whether `message` is one a waiting resize wrote.
fn is_resize_message(message: &str) -> bool {
    message.starts_with(WAITING_FOR_ROOM) || message.starts_with(RESIZING)
}

/// Where an instance's size stands ([`Provisioner::maintain_size`]).
enum SizeState {
    /// The cloud holds what the spec says.
    Done,
    /// Resized just now, or the object moved meanwhile: look again.
    Again,
    /// The resize waits for room, or for the cloud after a failure.
    Waiting(Next),
}

impl Provisioner {
    /// Keeps a Ready resource as its spec says: an instance's size and
    /// power state, a volume's attachment, a bucket's usage.
    pub(super) async fn maintain<S: Provisioned>(
        &self,
        key: &str,
        object: Object<S>,
        foundation: &str,
    ) -> Result<Next> {
        let Some(client) = self.client(foundation).await? else {
            return Ok(Next::Done);
        };
        let any: &dyn std::any::Any = &object;
        if let Some(instance) = any.downcast_ref::<Object<InstanceSpec>>() {
            return match self.maintain_size(key, instance, &client).await? {
                SizeState::Done => self.maintain_power(key, instance, &client, true).await,
                // The power state and the Ready condition follow on the next pass.
                SizeState::Again => Ok(Next::After(Duration::ZERO)),
                // Stop and start do not wait for the resize, but the Ready
                // condition does: the spec is not in force until both are.
                SizeState::Waiting(next) => {
                    self.maintain_power(key, instance, &client, false).await?;
                    Ok(next)
                }
            };
        }
        if let Some(volume) = any.downcast_ref::<Object<VolumeSpec>>() {
            return self.maintain_attachment(key, volume, &client).await;
        }
        if let Some(bucket) = any.downcast_ref::<Object<BucketSpec>>() {
            return self.refresh_usage(key, bucket, &client).await;
        }
        Ok(Next::Done)
    }

    /// Resizes a Ready instance in the cloud when its spec's size changed,
    /// once its foundation's claim covers the new size (placement grows the
    /// claim first, so the foundation is never overcommitted; a shrink is
    /// always covered), and records what the cloud now holds.
    ///
    /// Before asking the cloud it records the size asked for in
    /// `resizing_to` (the largest asked since the last finished resize), so
    /// the claim keeps covering it whatever happens next: a crash, a
    /// timeout while the cloud goes on, or the spec changing back. A resize
    /// is finished only when the cloud answered the spec's size. Without a
    /// record of what the cloud holds (instances made before resizes), the
    /// cloud is asked anyway, which it answers at once when it already has
    /// the size.
    async fn maintain_size(
        &self,
        key: &str,
        o: &Object<InstanceSpec>,
        client: &FoundationClient,
    ) -> Result<SizeState> {
        let want = o.spec.charge();
        let uid = o.meta.uid.clone();
        if o.status.provisioned == Some(want) && o.status.resizing_to.is_none() {
            self.resize_waits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
            if is_resize_message(&o.status.message) {
                // A resize that waited was undone: it waits no more.
                mutate::<InstanceSpec>(&*self.store, key, |x| {
                    let ours = x.meta.uid == uid && is_resize_message(&x.status.message);
                    if ours {
                        x.status.message.clear();
                    }
                    ours
                })
                .await?;
            }
            return Ok(SizeState::Done);
        }
        let claim = match yunshu_placement::keys::claim_for(key) {
            Some(claim_key) => match self.store.get(&claim_key).await? {
                Some(kv) => Some(codec::decode::<ClaimRecord>(&kv.key, &kv.value)?)
                    .filter(|c| c.uid == o.meta.uid),
                None => None,
            },
            None => None,
        };
        if o.status.provisioned.is_none() && claim.is_none() {
            // Nothing says what the cloud holds, nor covers a change.
            return Ok(SizeState::Done);
        }
        let size = format!("{} vCPU and {} MiB", o.spec.vcpu, o.spec.memory_mib);
        if !claim.is_some_and(|c| c.charge.covers(&want)) {
            // Placement grows the claim within moments when the foundation
            // has room: only a resize that has waited longer says so.
            let since = *self
                .resize_waits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.to_owned())
                .or_insert_with(Instant::now);
            if since.elapsed() < RESIZE_GRACE {
                return Ok(SizeState::Waiting(Next::After(self.config.poll_min)));
            }
            let message = format!(
                "{WAITING_FOR_ROOM} on foundation {} to resize to {size}",
                client.name()
            );
            return Ok(SizeState::Waiting(
                self.wait_with_message::<InstanceSpec>(key, &uid, message)
                    .await?,
            ));
        }
        self.resize_waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        let asked = o.status.resizing_to.unwrap_or_default().max(&want);
        if o.status.resizing_to != Some(asked) {
            // Only onto the spec the claim was checked against: had it
            // changed back meanwhile, placement may have shrunk the claim.
            let generation = o.meta.generation;
            let ours =
                |x: &Object<InstanceSpec>| x.meta.uid == uid && x.meta.generation == generation;
            let written = mutate::<InstanceSpec>(&*self.store, key, |x| {
                let asked = x.status.resizing_to.unwrap_or_default().max(&want);
                ours(x) && x.status.resizing_to.replace(asked) != Some(asked)
            })
            .await?;
            let recorded = written
                .is_some_and(|x| ours(&x) && x.status.resizing_to.is_some_and(|r| r.covers(&want)));
            if !recorded {
                return Ok(SizeState::Again);
            }
        }
        let resize = InstanceAction::Resize {
            vcpu: o.spec.vcpu,
            memory_mib: o.spec.memory_mib,
        };
        if let Err(e) = client.instance_action(&owner_of(o), resize).await {
            // Tried again after a while; meanwhile the instance says why.
            self.metrics.error("provisioner", e.kind());
            let message = format!("{RESIZING} to {size} on foundation {}: {e}", client.name());
            return Ok(SizeState::Waiting(
                self.wait_with_message::<InstanceSpec>(key, &uid, message)
                    .await?,
            ));
        }
        tracing::info!(
            key,
            foundation = client.name(),
            vcpu = o.spec.vcpu,
            memory_mib = o.spec.memory_mib,
            "resized"
        );
        mutate::<InstanceSpec>(&*self.store, key, |x| {
            if x.meta.uid != uid {
                return false;
            }
            x.status.provisioned = Some(want);
            x.status.resizing_to = None;
            if is_resize_message(&x.status.message) {
                x.status.message = String::new();
            }
            true
        })
        .await?;
        Ok(SizeState::Again)
    }

    /// Brings an instance to its spec's power state; once it is there and
    /// `settle` says the rest of the spec is in force too, marks it Ready
    /// at the spec's generation.
    pub(super) async fn maintain_power(
        &self,
        key: &str,
        o: &Object<InstanceSpec>,
        client: &FoundationClient,
        settle: bool,
    ) -> Result<Next> {
        let observed = o
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition_types::READY)
            .map_or(0, |c| c.observed_generation);
        if observed >= o.meta.generation {
            return Ok(Next::Done);
        }
        let owner = owner_of(o);
        let current = client.get(Kind::Instance, &owner, Priority::User).await?;
        let (want, action) = match o.spec.power {
            PowerState::Running => ("ACTIVE", InstanceAction::Start),
            PowerState::Stopped => ("SHUTOFF", InstanceAction::Stop),
        };
        if !current.status.eq_ignore_ascii_case(want) {
            if current.ready || current.status.eq_ignore_ascii_case("SHUTOFF") {
                client.instance_action(&owner, action).await?;
            }
            return Ok(Next::After(self.config.poll_min * 2));
        }
        if !settle {
            return Ok(Next::Done);
        }
        let (uid, generation) = (o.meta.uid.clone(), o.meta.generation);
        mutate::<InstanceSpec>(&*self.store, key, |o| {
            if o.meta.uid != uid || o.meta.generation != generation {
                return false;
            }
            set_provisioned(&mut o.status, &current, client.name(), generation);
            true
        })
        .await?;
        Ok(Next::Done)
    }

    /// Brings a bucket's usage in the status up to date (on every resync).
    pub(super) async fn refresh_usage(
        &self,
        key: &str,
        b: &Object<BucketSpec>,
        client: &FoundationClient,
    ) -> Result<Next> {
        let current = client
            .get(Kind::Bucket, &owner_of(b), Priority::Background)
            .await?;
        let uid = b.meta.uid.clone();
        mutate::<BucketSpec>(&*self.store, key, |o| {
            let changed = (current.bytes_used.is_some()
                && o.status.used_bytes != current.bytes_used)
                || (current.objects_used.is_some()
                    && o.status.used_objects != current.objects_used);
            if o.meta.uid != uid || !changed {
                return false;
            }
            apply_resource(&mut o.status, &current);
            true
        })
        .await?;
        Ok(Next::Done)
    }

    pub(super) async fn maintain_attachment(
        &self,
        key: &str,
        v: &Object<VolumeSpec>,
        client: &FoundationClient,
    ) -> Result<Next> {
        let condition = v.status.conditions.iter().find(|c| c.type_ == ATTACHED);
        let attached_to = condition
            .filter(|c| c.status == ConditionStatus::True)
            .map(|c| c.message.as_str());
        // Already as the spec says: the condition is brought up to this
        // generation, so whoever waits for it sees the change was done.
        let stale = condition.is_some_and(|c| c.observed_generation < v.meta.generation);
        let Some(target) = &v.spec.attach_to else {
            // Cleared: detach from the instance it is on, if any.
            return match (attached_to, condition) {
                (Some(old), _) => self.detach(key, v, old, client).await,
                (None, Some(c)) if stale => {
                    let message = c.message.clone();
                    self.set_attached(key, v, ConditionStatus::False, "Detached", message)
                        .await?;
                    Ok(Next::Done)
                }
                (None, _) => Ok(Next::Done),
            };
        };
        if attached_to == Some(target.as_str()) {
            // Back to the instance it is on: no waiting message stays.
            if stale || !v.status.message.is_empty() {
                self.set_attached(key, v, ConditionStatus::True, "Attached", target.clone())
                    .await?;
            }
            return Ok(Next::Done);
        }
        // Attach to `target`; while it is not Ready here, the volume stays
        // where it is, so a change to an instance elsewhere strands nothing.
        let department = v.meta.department.clone().unwrap_or_default();
        let ikey = keys::object(Kind::Instance, Some(&department), target);
        let instance = match self.store.get(&ikey).await? {
            Some(kv) => codec::decode_object::<InstanceSpec>(&kv)?,
            None => {
                return self
                    .wait_with_message::<VolumeSpec>(
                        key,
                        &v.meta.uid,
                        format!("waiting for instance {target} to exist"),
                    )
                    .await;
            }
        };
        let on = instance.status.placement.foundation.as_deref();
        if on.is_some_and(|f| f != client.name())
            && !matches!(instance.status.phase, Phase::Pending | Phase::Unschedulable)
        {
            return self
                .wait_with_message::<VolumeSpec>(
                    key,
                    &v.meta.uid,
                    format!(
                        "cannot attach to instance {target}: it is on foundation {}, this volume on {}; volumes do not move between foundations",
                        on.unwrap_or_default(),
                        client.name()
                    ),
                )
                .await;
        }
        if instance.status.phase != Phase::Ready || on != Some(client.name()) {
            return self
                .wait_with_message::<VolumeSpec>(
                    key,
                    &v.meta.uid,
                    format!(
                        "waiting for instance {target} to be Ready on foundation {}",
                        client.name()
                    ),
                )
                .await;
        }
        if let Some(old) = attached_to {
            // Moving to another instance here: detach first; the attach
            // follows on the next pass.
            return self.detach(key, v, old, client).await;
        }
        client
            .attach_volume(&owner_of(v), &owner_of(&instance))
            .await?;
        self.set_attached(key, v, ConditionStatus::True, "Attached", target.clone())
            .await?;
        Ok(Next::Done)
    }

    /// Writes the volume's Attached condition and clears its message.
    async fn set_attached(
        &self,
        key: &str,
        v: &Object<VolumeSpec>,
        status: ConditionStatus,
        reason: &str,
        message: String,
    ) -> Result<()> {
        let uid = v.meta.uid.clone();
        mutate::<VolumeSpec>(&*self.store, key, |o| {
            if o.meta.uid != uid {
                return false;
            }
            o.status.message = String::new();
            let generation = o.meta.generation;
            set_condition(
                &mut o.status.conditions,
                condition(ATTACHED, status, reason, message.clone(), generation),
            );
            true
        })
        .await?;
        Ok(())
    }

    /// Detaches a volume from `from`, the instance its Attached condition
    /// names, and marks it detached. A new target is attached on the next
    /// pass, once the cloud has let go (an attach while detaching would be
    /// refused).
    async fn detach(
        &self,
        key: &str,
        v: &Object<VolumeSpec>,
        from: &str,
        client: &FoundationClient,
    ) -> Result<Next> {
        match client.detach_volume(&owner_of(v)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.set_attached(
            key,
            v,
            ConditionStatus::False,
            "Detached",
            format!("detached from {from}"),
        )
        .await?;
        Ok(match v.spec.attach_to {
            Some(_) => Next::After(self.config.poll_min * 2),
            None => Next::Done,
        })
    }
}
