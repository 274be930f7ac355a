//! `yunshu-adapter-remote`: the `Adapter` trait over `yunshu.adapter.v1`, so
//! a cloud with no in-tree adapter can be driven by a process written in
//! any language (journey 4 of the user journeys).
//!
//! - [`RemoteAdapter`] is what the runtime builds for a Foundation with
//!   `adapter: remote`: every trait call becomes one RPC, and statuses come
//!   back as the error kinds the runtime acts on ([`status`]).
//! - [`AdapterServer`] serves any `Adapter` over the same protocol, for an
//!   integrator writing the adapter in Rust.
//! - The `yunshu-adapter-conformance` binary runs `yunshu-adapter-testkit`'s
//!   conformance suite against an adapter service at an endpoint.
//!
//! `examples/python/adapter.py` is a whole adapter in Python (grpcio), the
//! starting point for an integrator; CI runs the conformance suite and a
//! department's create, wait and delete against it.

mod client;
pub mod convert;
mod server;
pub mod status;

pub use client::RemoteAdapter;
pub use server::AdapterServer;
use yunshu_core::model::{AdapterKind, FoundationSpec};

/// The spec of a remote foundation whose adapter service is at `endpoint`,
/// with nothing else set: what the conformance tool connects with.
pub fn foundation_spec(endpoint: &str) -> FoundationSpec {
    FoundationSpec {
        adapter: AdapterKind::Remote,
        endpoint: endpoint.to_owned(),
        region: None,
        zones: vec![],
        credentials: None,
        traits: vec![],
        allocation_ratios: Default::default(),
        tariff: Default::default(),
        pue: None,
        budget: Default::default(),
        capacity: None,
        settings: Default::default(),
    }
}
