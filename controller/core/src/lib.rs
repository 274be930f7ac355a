//! `yunshu-core`: the domain of Yunshu with no Kubernetes, gRPC or cloud SDK in it.
//!
//! It owns the object model (every object has the Kubernetes shape: `meta`,
//! `spec`, `status`), resource classes and traits, the error type with its
//! small `Copy` kind, the `Store` trait (etcd's data model) with the key layout
//! and record codec on top of it, the `Adapter` trait every cloud adapter
//! implements, and admission: the group-committed quota check that turns a
//! department's create request into a stored object.

pub mod adapter;
pub mod admission;
pub mod billing;
pub mod catalog;
pub mod codec;
pub mod error;
pub mod keys;
pub mod meta;
pub mod model;
pub mod principal;
pub mod requests;
pub mod resources;
pub mod store;
pub mod traits;

pub use error::{Error, ErrorKind, Result};
