//! The tonic routes: every `yunshu.api.v1` service, gRPC health checking and
//! reflection.

use tonic::service::Routes;
use tonic_health::ServingStatus;
use yunshu_proto::api::v1::{
    admin_service_server::AdminServiceServer, bucket_service_server::BucketServiceServer,
    department_service_server::DepartmentServiceServer,
    instance_service_server::InstanceServiceServer,
    placement_service_server::PlacementServiceServer, volume_service_server::VolumeServiceServer,
};

use crate::Api;

/// The names of the served services, as health checking reports them.
pub const SERVICES: [&str; 6] = [
    "yunshu.api.v1.InstanceService",
    "yunshu.api.v1.VolumeService",
    "yunshu.api.v1.BucketService",
    "yunshu.api.v1.DepartmentService",
    "yunshu.api.v1.PlacementService",
    "yunshu.api.v1.AdminService",
];

/// Every service, health and reflection, ready to serve behind the auth layer.
pub async fn routes(api: Api) -> Result<Routes, Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    for name in SERVICES {
        health_reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(yunshu_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Ok(Routes::new(InstanceServiceServer::new(api.clone()))
        .add_service(VolumeServiceServer::new(api.clone()))
        .add_service(BucketServiceServer::new(api.clone()))
        .add_service(DepartmentServiceServer::new(api.clone()))
        .add_service(PlacementServiceServer::new(api.clone()))
        .add_service(AdminServiceServer::new(api))
        .add_service(health)
        .add_service(reflection))
}
