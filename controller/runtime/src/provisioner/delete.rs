//! Deletion through the finalizer: delete the cloud resource, wait until
//! the cloud no longer has it, then release the object and its charge.

use super::*;

impl Provisioner {
    /// Deletion through the finalizer.
    pub(super) async fn finalize<S: Provisioned>(
        &self,
        key: &str,
        object: Object<S>,
    ) -> Result<Next> {
        let ours = object.meta.finalizers.iter().any(|f| f == FINALIZER);
        if !ours {
            if object.meta.finalizers.is_empty() {
                self.release(key, &object).await?;
            }
            return Ok(Next::Done);
        }
        let uid = object.meta.uid.clone();
        if object.status.phase != Phase::Deleting {
            mutate::<S>(&*self.store, key, |o| {
                if o.meta.uid != uid || o.status.phase == Phase::Deleting {
                    return false;
                }
                o.status.phase = Phase::Deleting;
                true
            })
            .await?;
        }
        if let Some(foundation) = object.status.placement.foundation.clone() {
            let Some(client) = self.client(&foundation).await? else {
                return self
                    .wait_with_message::<S>(
                        key,
                        &uid,
                        format!(
                            "deleting: waiting for foundation {foundation}'s adapter credentials"
                        ),
                    )
                    .await;
            };
            let owner = owner_of(&object);
            if S::KIND == Kind::Volume {
                match client.detach_volume(&owner).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return self.deletion_wait::<S>(key, &uid, &foundation, &e).await,
                }
            }
            let purge = object
                .meta
                .labels
                .get(PURGE_LABEL)
                .is_some_and(|v| v == "true");
            if let Err(e) = client
                .delete(S::KIND, &owner, DeleteOptions { purge })
                .await
            {
                return self.deletion_wait::<S>(key, &uid, &foundation, &e).await;
            }
            match client.get(S::KIND, &owner, Priority::User).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Ok(r) => {
                    let _ = self
                        .wait_with_message::<S>(
                            key,
                            &uid,
                            format!("deleting: {} on foundation {foundation}", r.status),
                        )
                        .await;
                    return Ok(Next::After(self.poll_delay(key)));
                }
                Err(e) => return self.deletion_wait::<S>(key, &uid, &foundation, &e).await,
            }
        }
        // The cloud resource is gone: return the charge and remove the object.
        let current = mutate::<S>(&*self.store, key, |_| false).await?;
        if let Some(current) = current
            && current.meta.uid == uid
        {
            self.release(key, &current).await?;
        }
        Ok(Next::Done)
    }

    pub(super) async fn deletion_wait<S: Provisioned>(
        &self,
        key: &str,
        uid: &str,
        foundation: &str,
        e: &Error,
    ) -> Result<Next> {
        self.metrics.error("provisioner", e.kind());
        self.wait_with_message::<S>(
            key,
            uid,
            format!("deleting on foundation {foundation}: {e}"),
        )
        .await
    }

    pub(super) async fn release<S: Provisioned>(
        &self,
        key: &str,
        object: &Object<S>,
    ) -> Result<()> {
        // A conflict (the object moved) comes back as an error and the
        // reconcile runs again on the new revision.
        self.admission.release(object).await?;
        tracing::info!(key, "deleted");
        self.forget(key);
        Ok(())
    }
}
