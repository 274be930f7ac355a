//! The adapters compiled into the `yunshu` binary.

use std::sync::Arc;

use futures::future::BoxFuture;
use yunshu_core::{
    adapter::{Adapter, Credentials, SecretVault},
    error::Result,
    model::{AdapterKind, FoundationSpec},
};

use super::AdapterFactory;

/// OpenStack and S3 in process; `remote` reaches an adapter service over
/// `yunshu.adapter.v1` (nothing is sent until its first probe).
#[derive(Debug, Clone)]
pub struct Builtin {
    vault: Arc<dyn SecretVault>,
}

impl Builtin {
    /// A factory whose adapters seal their secrets with `vault`.
    pub fn new(vault: Arc<dyn SecretVault>) -> Self {
        Self { vault }
    }
}

impl AdapterFactory for Builtin {
    fn build(
        &self,
        name: &str,
        spec: &FoundationSpec,
        credentials: Credentials,
    ) -> BoxFuture<'static, Result<Arc<dyn Adapter>>> {
        let (name, spec, vault) = (name.to_owned(), spec.clone(), self.vault.clone());
        Box::pin(async move {
            match spec.adapter {
                AdapterKind::Openstack => Ok(Arc::new(
                    yunshu_adapter_openstack::OpenStackAdapter::new(&name, &spec, credentials)?,
                ) as Arc<dyn Adapter>),
                AdapterKind::S3 => Ok(Arc::new(yunshu_adapter_s3::S3Adapter::new(
                    &name,
                    &spec,
                    credentials,
                    vault,
                )?) as Arc<dyn Adapter>),
                AdapterKind::Remote => Ok(Arc::new(yunshu_adapter_remote::RemoteAdapter::connect(
                    &name,
                    &spec,
                    &credentials,
                )?) as Arc<dyn Adapter>),
            }
        })
    }
}
