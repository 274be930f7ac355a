//! `PlacementService`: explanations and dry runs of placement. The pure
//! scheduler exists (`yunshu-scheduler`); these calls answer `UNIMPLEMENTED`
//! until the scheduling loop is wired into the runtime.

use tonic::{Request, Response, Status};
use yunshu_proto::api::v1::{self as pb, placement_service_server::PlacementService};

use crate::{Api, authz};

const NOT_YET: &str =
    "placement explanations are not served yet: the scheduling loop is not wired into this build";

#[tonic::async_trait]
impl PlacementService for Api {
    async fn explain_placement(
        &self,
        request: Request<pb::ExplainPlacementRequest>,
    ) -> Result<Response<pb::ExplainPlacementResponse>, Status> {
        authz::principal(&request)?;
        Err(Status::unimplemented(NOT_YET))
    }

    async fn dry_run_placement(
        &self,
        request: Request<pb::DryRunPlacementRequest>,
    ) -> Result<Response<pb::DryRunPlacementResponse>, Status> {
        authz::principal(&request)?;
        Err(Status::unimplemented(NOT_YET))
    }
}
