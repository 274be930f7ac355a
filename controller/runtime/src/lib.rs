//! `yunshu-runtime`: the one crate that sees everything. It owns the command
//! line and configuration, opens the store, wires admission (and, as they
//! land, the gRPC API, scheduler, provisioner and operator), serves the admin
//! HTTP endpoints, and shuts down gracefully on SIGTERM/SIGINT.

pub mod actions;
pub mod adapters;
pub mod admin;
pub mod cli;
pub mod config;
pub mod drivers;
pub mod grpc;
pub mod meter;
pub mod metrics;
pub mod prober;
pub mod provisioner;
pub mod reconcile;
pub mod retention;
pub mod serve;
pub mod singleton;
pub mod sweeper;
pub mod telemetry;
pub mod token;
