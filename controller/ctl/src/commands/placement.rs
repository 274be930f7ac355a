//! `explain` and `dry-run`: why a resource is (or would be) where it is.
//! Until the server's scheduling loop is wired, both answer UNIMPLEMENTED,
//! which prints as the server's message and exits 1.

use yunshu_proto::api::v1::{self as pb, dry_run_placement_request::Spec};

use super::{
    Context, Io,
    create::{bucket_spec, instance_spec, volume_spec},
};
use crate::{
    cli::{DryRunCommand, ExplainArgs},
    error::{Error, Result},
    output::{
        emit,
        placement::{ExplanationView, render_explanation},
    },
};

fn show(ctx: &Context, e: Option<pb::PlacementExplanation>, io: &mut Io<'_>) -> Result<()> {
    let e =
        e.ok_or_else(|| Error::from(tonic::Status::internal("the server sent no explanation")))?;
    let view = ExplanationView::from(&e);
    emit(ctx.format, &view, io.out, |w| render_explanation(&view, w))
}

/// `explain KIND NAME`.
pub async fn explain(ctx: &Context, a: &ExplainArgs, io: &mut Io<'_>) -> Result<()> {
    let name = ctx.resource_name(a.kind, &a.name)?;
    let r = ctx
        .client
        .unary(
            ctx.client
                .placement
                .clone()
                .explain_placement(pb::ExplainPlacementRequest { name }),
        )
        .await?;
    show(ctx, r.explanation, io)
}

/// `dry-run instance|volume|bucket …`.
pub async fn dry_run(ctx: &Context, c: &DryRunCommand, io: &mut Io<'_>) -> Result<()> {
    let parent = ctx.parent()?;
    let spec = match c {
        DryRunCommand::Instance(a) => Spec::Instance(instance_spec(a)),
        DryRunCommand::Volume(a) => Spec::Volume(volume_spec(ctx, a)?),
        DryRunCommand::Bucket(a) => Spec::Bucket(bucket_spec(a)),
    };
    let r = ctx
        .client
        .unary(
            ctx.client
                .placement
                .clone()
                .dry_run_placement(pb::DryRunPlacementRequest {
                    parent,
                    spec: Some(spec),
                }),
        )
        .await?;
    show(ctx, r.explanation, io)
}
