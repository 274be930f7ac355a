//! `yunshu-store`: the two backends of `yunshu_core::store::Store`.
//!
//! - [`etcd::EtcdStore`]: production; several replicas share one etcd cluster.
//! - [`embedded::EmbeddedStore`]: a single-process redb file (the zero-setup
//!   default), or an in-memory database for tests.
//!
//! Both implement the same model — a global revision bumped once per writing
//! transaction, per-key create/mod revisions and versions, revision-guarded
//! transactions, watches from a revision that resume without gaps or
//! duplicates, compaction, and leases — and [`conformance`] is the one suite
//! that checks them, run against both (etcd being a real server).

pub mod conformance;
pub mod embedded;
pub mod etcd;

use std::sync::Arc;

pub use embedded::EmbeddedStore;
pub use etcd::{EtcdConfig, EtcdStore};
use yunshu_core::store::Store;

/// Which backend to open, as chosen on the command line or in config.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// A redb file at this path.
    Embedded {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// An in-memory redb database (tests).
    Memory,
    /// An etcd cluster.
    Etcd(EtcdConfig),
}

/// Opens the configured backend.
pub async fn open(config: &StoreConfig) -> yunshu_core::Result<Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Embedded { path } => Arc::new(EmbeddedStore::open(path)?),
        StoreConfig::Memory => Arc::new(EmbeddedStore::in_memory()?),
        StoreConfig::Etcd(c) => Arc::new(EtcdStore::connect(c.clone()).await?),
    })
}
