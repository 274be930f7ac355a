//! `PlacementService`: why an object was placed where it was (or could not
//! be), and where a request would go, per foundation: the filter that
//! removed it, or how each score contributed.

use tonic::{Request, Response, Status};
use yunshu_core::{error::FieldViolation, meta::Kind};
use yunshu_placement::{Report, Request as PlacementRequest, VerdictReport};
use yunshu_proto::api::v1::{self as pb, placement_service_server::PlacementService};

use crate::{
    Api, authz, convert, names,
    status::{invalid, to_status},
    validate,
};

impl Api {
    /// Keeps the verdicts on the foundations `department` may use: the
    /// others are as hidden here as in its catalog.
    async fn only_allowed(
        &self,
        p: &yunshu_core::principal::Principal,
        department: &str,
        report: &mut Report,
    ) -> Result<(), Status> {
        let dept = self
            .department(p, &format!("departments/{department}"))
            .await?;
        let allowed = &dept.spec.allowed_foundations;
        if !allowed.is_empty() {
            report.verdicts.retain(|v| allowed.contains(&v.foundation));
        }
        Ok(())
    }

    fn scheduler(&self) -> Result<&yunshu_placement::Scheduler, Status> {
        self.placement.as_ref().ok_or_else(|| {
            Status::unimplemented(
                "placement is not served by this process: it runs without a scheduler",
            )
        })
    }
}

/// The wire form of a placement report.
pub fn explanation(r: &Report) -> pb::PlacementExplanation {
    pb::PlacementExplanation {
        foundation: r
            .foundation
            .as_ref()
            .map(|f| convert::foundation_name(f))
            .unwrap_or_default(),
        summary: r.summary.clone(),
        policy: r
            .policy
            .as_ref()
            .map(|p| format!("placementpolicies/{p}"))
            .unwrap_or_default(),
        verdicts: r
            .verdicts
            .iter()
            .map(|v| pb::FoundationVerdict {
                foundation: convert::foundation_name(&v.foundation),
                outcome: Some(match &v.verdict {
                    VerdictReport::FilteredOut { filter, reason } => {
                        pb::foundation_verdict::Outcome::FilteredOut(pb::FilteredOut {
                            filter: filter.clone(),
                            reason: reason.clone(),
                        })
                    }
                    VerdictReport::Text(text) => {
                        pb::foundation_verdict::Outcome::FilteredOut(pb::FilteredOut {
                            filter: String::new(),
                            reason: text.clone(),
                        })
                    }
                    VerdictReport::Scored(s) => {
                        pb::foundation_verdict::Outcome::Scored(pb::FoundationScore {
                            total: s.total,
                            rank: s.rank,
                            components: s
                                .components
                                .iter()
                                .map(|c| pb::ScoreComponent {
                                    name: c.name.to_owned(),
                                    score: c.score,
                                    weight: c.weight,
                                })
                                .collect(),
                            utilization: s.utilization.unwrap_or_default(),
                            hourly_cost: s.hourly_cost.unwrap_or_default(),
                        })
                    }
                }),
            })
            .collect(),
        decide_time: r.decided_at.map(convert::timestamp),
    }
}

/// A department resource's kind from its full name.
fn kind_of(name: &str) -> Result<(Kind, String, String), Status> {
    for (kind, collection) in [
        (Kind::Instance, "instances"),
        (Kind::Volume, "volumes"),
        (Kind::Bucket, "buckets"),
    ] {
        if let Ok((d, n)) = names::parse_name("name", name, collection) {
            return Ok((kind, d, n));
        }
    }
    Err(crate::status::invalid_field(
        "name",
        format!(
            "must be `departments/{{department}}/instances|volumes|buckets/{{name}}`, got `{name}`"
        ),
    ))
}

#[tonic::async_trait]
impl PlacementService for Api {
    async fn explain_placement(
        &self,
        request: Request<pb::ExplainPlacementRequest>,
    ) -> Result<Response<pb::ExplainPlacementResponse>, Status> {
        let p = authz::principal(&request)?;
        let (kind, department, name) = kind_of(&request.get_ref().name)?;
        authz::read(&p, &department)?;
        let report = self
            .scheduler()?
            .explain(kind, &department, &name)
            .await
            .map_err(to_status)?;
        match report {
            Some(mut r) => {
                self.only_allowed(&p, &department, &mut r).await?;
                Ok(Response::new(pb::ExplainPlacementResponse {
                    explanation: Some(explanation(&r)),
                }))
            }
            None => Err(Status::failed_precondition(format!(
                "{} has not been placed yet: it is waiting for the scheduler",
                request.get_ref().name
            ))),
        }
    }

    async fn dry_run_placement(
        &self,
        request: Request<pb::DryRunPlacementRequest>,
    ) -> Result<Response<pb::DryRunPlacementResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let department = names::parse_parent("parent", &r.parent)?;
        authz::read(&p, &department)?;
        let mut out: Vec<FieldViolation> = Vec::new();
        let placement_request = match &r.spec {
            Some(pb::dry_run_placement_request::Spec::Instance(s)) => {
                let spec = convert::instance_spec_from("instance", s, &mut out);
                validate::instance("instance", &spec, &self.catalog, &mut out);
                PlacementRequest::instance(&spec)
            }
            Some(pb::dry_run_placement_request::Spec::Volume(s)) => {
                let spec = convert::volume_spec_from("volume", &department, s, &mut out);
                validate::volume("volume", &spec, &self.catalog, &mut out);
                PlacementRequest::volume(&spec)
            }
            Some(pb::dry_run_placement_request::Spec::Bucket(s)) => {
                let spec = convert::bucket_spec_from("bucket", s, &mut out);
                validate::bucket("bucket", &spec, &mut out);
                PlacementRequest::bucket(&spec)
            }
            None => {
                out.push(FieldViolation::new(
                    "spec",
                    "must set one of instance, volume, bucket",
                ));
                return Err(invalid(&out));
            }
        };
        if !out.is_empty() {
            return Err(invalid(&out));
        }
        let mut report = self
            .scheduler()?
            .dry_run(&department, placement_request)
            .await
            .map_err(to_status)?;
        self.only_allowed(&p, &department, &mut report).await?;
        Ok(Response::new(pb::DryRunPlacementResponse {
            explanation: Some(explanation(&report)),
        }))
    }
}
