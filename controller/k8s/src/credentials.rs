//! Foundation credentials from Kubernetes Secrets, published to the runtime.
//!
//! A Foundation names its Secret (`spec.credentialsSecretRef`); the
//! Foundation reconciler reads it, turns its data into
//! [`Credentials`] and publishes them on the [`CredentialsHub`]. The
//! reconciler also watches Secrets, so a rotated Secret is read and
//! published again within one reconcile. The runtime holds one
//! [`watch::Receiver`] per foundation ([`CredentialsHub::subscribe`]) and
//! rebuilds its adapter client whenever the value changes; `None` means the
//! foundation has no usable credentials (no Secret, or it was removed).
//!
//! Values never leave this module in text: errors name the Secret and the
//! key, and [`Credentials`]' `Debug` redacts every value.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::Secret;
use tokio::sync::watch;
use yunshu_core::adapter::Credentials;

/// Why a Secret's data are not usable as credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A value is not UTF-8 text.
    #[error("key {key} of the Secret is not UTF-8 text")]
    NotText {
        /// The offending key.
        key: String,
    },
    /// The Secret holds no data at all.
    #[error("the Secret has no data")]
    Empty,
}

/// The credentials a Secret holds: every key of `data` (and of `stringData`,
/// which the API server folds into `data` but a client may still send) with
/// its value as text.
pub fn credentials_from_secret(secret: &Secret) -> Result<Credentials, CredentialsError> {
    let mut out = BTreeMap::new();
    for (key, value) in secret.data.iter().flatten() {
        let text = String::from_utf8(value.0.clone())
            .map_err(|_| CredentialsError::NotText { key: key.clone() })?;
        out.insert(key.clone(), text);
    }
    for (key, value) in secret.string_data.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    if out.is_empty() {
        return Err(CredentialsError::Empty);
    }
    Ok(Credentials(out))
}

/// Where the operator publishes each foundation's credentials and the
/// runtime subscribes to them. Cheap to clone; all clones share one map.
#[derive(Debug, Clone, Default)]
pub struct CredentialsHub {
    channels: Arc<Mutex<HashMap<String, watch::Sender<Option<Credentials>>>>>,
}

impl CredentialsHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn sender(&self, foundation: &str) -> watch::Sender<Option<Credentials>> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels
            .entry(foundation.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }

    /// The foundation's credentials as they change; the current value
    /// (possibly `None`) is there at once.
    pub fn subscribe(&self, foundation: &str) -> watch::Receiver<Option<Credentials>> {
        self.sender(foundation).subscribe()
    }

    /// The foundation's current credentials, if any.
    pub fn current(&self, foundation: &str) -> Option<Credentials> {
        self.sender(foundation).borrow().clone()
    }

    /// Publishes the foundation's credentials; returns whether they changed
    /// (subscribers are woken only then).
    pub fn publish(&self, foundation: &str, credentials: Credentials) -> bool {
        self.sender(foundation).send_if_modified(|slot| {
            if slot.as_ref() == Some(&credentials) {
                false
            } else {
                *slot = Some(credentials);
                true
            }
        })
    }

    /// Withdraws the foundation's credentials (its Secret is gone or the
    /// foundation was deleted); returns whether there were any.
    pub fn withdraw(&self, foundation: &str) -> bool {
        self.sender(foundation)
            .send_if_modified(|slot| slot.take().is_some())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(pairs: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn secret_data_become_credentials() {
        let creds =
            credentials_from_secret(&secret(&[("username", b"admin"), ("password", b"s3cret")]))
                .expect("text values");
        assert_eq!(creds.get("username"), Some("admin"));
        assert_eq!(creds.get("password"), Some("s3cret"));
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn binary_values_are_refused_by_key_without_the_value() {
        let err = credentials_from_secret(&secret(&[("password", &[0xff, 0xfe])]))
            .expect_err("not UTF-8");
        assert_eq!(
            err.to_string(),
            "key password of the Secret is not UTF-8 text"
        );
        assert_eq!(
            credentials_from_secret(&Secret::default()),
            Err(CredentialsError::Empty)
        );
    }

    #[test]
    fn subscribers_see_changes_only() {
        let hub = CredentialsHub::new();
        let mut rx = hub.subscribe("kunpeng-1");
        assert!(rx.borrow_and_update().is_none());
        let creds = Credentials(BTreeMap::from([("k".to_owned(), "v1".to_owned())]));
        assert!(hub.publish("kunpeng-1", creds.clone()));
        assert!(rx.has_changed().expect("open"));
        assert_eq!(rx.borrow_and_update().as_ref(), Some(&creds));
        assert!(!hub.publish("kunpeng-1", creds), "same value: no wake-up");
        assert!(!rx.has_changed().expect("open"));
        assert!(hub.withdraw("kunpeng-1"));
        assert!(rx.borrow_and_update().is_none());
        assert!(!hub.withdraw("kunpeng-1"));
    }
}
