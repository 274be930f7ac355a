//! `yunshu-proto`: Yunshu's gRPC APIs as Rust, generated from the protos in
//! this crate's `yunshu/` directory by `build.rs`.
//!
//! - [`api::v1`] — `yunshu.api.v1`, the API departments and admins call:
//!   instances, volumes and buckets (create, get, list, delete, watch), the
//!   department's quota and catalog, placement explanations and dry runs, and
//!   the standalone admin service for foundations, departments and placement
//!   policies.
//! - [`adapter::v1`] — `yunshu.adapter.v1`, the protocol of out-of-process
//!   adapters, mirroring the `Adapter` trait of `yunshu-core`.
//!
//! Each package has messages, a client (`*_service_client`) and a server
//! (`*_service_server`) per service. [`FILE_DESCRIPTOR_SET`] describes every
//! file, for gRPC reflection. Conversions between these messages and the
//! domain types live in the crates that use both (`yunshu-grpc`,
//! `yunshu-adapter-remote`), never here.

pub mod api {
    //! The department and admin API.

    pub mod v1 {
        //! `yunshu.api.v1`: messages, clients and servers, generated.
        #![allow(clippy::all)]

        tonic::include_proto!("yunshu.api.v1");
    }
}

pub mod adapter {
    //! The adapter protocol.

    pub mod v1 {
        //! `yunshu.adapter.v1`: messages, client and server, generated.
        #![allow(clippy::all)]

        tonic::include_proto!("yunshu.adapter.v1");
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every Yunshu proto and
/// the well-known types they import, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("yunshu_descriptor");
