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
//! Each package has its messages, and per service a client module
//! (`instance_service_client`, …) and a server module
//! (`instance_service_server`, …). [`FILE_DESCRIPTOR_SET`] describes every
//! file, for gRPC reflection. Conversions between these messages and the
//! domain types live in the crates that use both, never here.
//!
//! The generated modules allow lints: the code is not ours to fix, and
//! documentation is enforced on the protos themselves by `buf lint`'s
//! `COMMENTS` rules (see `README.md`).

pub mod api {
    //! The department and admin API.

    pub mod v1 {
        //! `yunshu.api.v1`: messages, clients and servers, generated.
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]

        tonic::include_proto!("yunshu.api.v1");
    }
}

pub mod adapter {
    //! The adapter protocol.

    pub mod v1 {
        //! `yunshu.adapter.v1`: messages, client and server, generated.
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]

        tonic::include_proto!("yunshu.adapter.v1");
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every Yunshu proto and
/// the well-known types they import, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("yunshu_descriptor");

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::FILE_DESCRIPTOR_SET;

    fn descriptor_set() -> FileDescriptorSet {
        FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
    }

    #[test]
    fn descriptor_set_serves_every_service_to_reflection() {
        let set = descriptor_set();
        let mut got: Vec<_> = set
            .file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .map(move |s| format!("{}.{}", f.package(), s.name()))
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "yunshu.adapter.v1.AdapterService",
                "yunshu.api.v1.AdminService",
                "yunshu.api.v1.BucketService",
                "yunshu.api.v1.DepartmentService",
                "yunshu.api.v1.InstanceService",
                "yunshu.api.v1.PlacementService",
                "yunshu.api.v1.VolumeService",
            ]
        );
    }

    #[test]
    fn descriptor_set_includes_imported_well_known_types() {
        let set = descriptor_set();
        let names: Vec<_> = set.file.iter().map(|f| f.name()).collect();
        for wkt in ["timestamp", "duration"].map(|t| format!("google/protobuf/{t}.proto")) {
            assert!(
                names.contains(&wkt.as_str()),
                "{wkt} missing from {names:?}"
            );
        }
    }

    #[test]
    fn zero_limit_stays_distinct_from_no_limit_on_the_wire() {
        use crate::api::v1::{ResourceClass, ResourceUsage};

        for limit in [None, Some(0), Some(48)] {
            let usage = ResourceUsage {
                resource_class: ResourceClass::Vcpu.into(),
                limit,
                used: 3,
            };
            let back = ResourceUsage::decode(usage.encode_to_vec().as_slice()).expect("decodes");
            assert_eq!(back, usage);
        }
    }
}
