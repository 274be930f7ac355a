//! `create instance|volume|bucket`, with `--wait`.

use std::collections::HashMap;

use yunshu_proto::api::v1 as pb;

use super::{Context, Io, new_request_id};
use crate::{
    cli::{
        BucketSpecArgs, CreateArgs, CreateCommand, Format, InstanceSpecArgs, PlacementArgs,
        VolumeSpecArgs,
    },
    error::Result,
    output::{emit, phase_name, resource::ResourceView},
    resource::{Kind, NewSpec},
    wait::{Until, describe, wait},
};

/// Constraints from `--require`, `--forbid`, `--zone`.
pub fn constraints(p: &PlacementArgs) -> pb::Constraints {
    pb::Constraints {
        required_traits: p.required_traits.clone(),
        forbidden_traits: p.forbidden_traits.clone(),
        zone: p.zone.clone().unwrap_or_default(),
    }
}

/// An instance spec from its flags.
pub fn instance_spec(a: &InstanceSpecArgs) -> pb::InstanceSpec {
    pb::InstanceSpec {
        vcpu: a.vcpu,
        memory_mib: a.memory,
        disk_gib: a.disk,
        image: a.image.clone(),
        constraints: Some(constraints(&a.placement)),
        group: None,
        power: pb::PowerState::Unspecified.into(),
    }
}

/// A volume spec from its flags; `attach_to` is resolved against the
/// department.
pub fn volume_spec(ctx: &Context, a: &VolumeSpecArgs) -> Result<pb::VolumeSpec> {
    let attach_to = match &a.attach_to {
        Some(i) => ctx.resource_name(Kind::Instance, i)?,
        None => String::new(),
    };
    Ok(pb::VolumeSpec {
        size_gib: a.size,
        attach_to,
        constraints: Some(constraints(&a.placement)),
    })
}

/// A bucket spec from its flags.
pub fn bucket_spec(a: &BucketSpecArgs) -> pb::BucketSpec {
    pb::BucketSpec {
        quota_bytes: a.quota_bytes,
        quota_objects: a.quota_objects,
        versioning: a.versioning,
        constraints: Some(constraints(&a.placement)),
    }
}

/// Creates the resource; with `--wait`, follows it until Ready or Failed.
pub async fn run(ctx: &Context, command: &CreateCommand, io: &mut Io<'_>) -> Result<()> {
    let (common, spec): (&CreateArgs, NewSpec) = match command {
        CreateCommand::Instance(a) => (&a.common, NewSpec::Instance(instance_spec(&a.spec))),
        CreateCommand::Volume(a) => (&a.common, NewSpec::Volume(volume_spec(ctx, &a.spec)?)),
        CreateCommand::Bucket(a) => (&a.common, NewSpec::Bucket(bucket_spec(&a.spec))),
    };
    let kind = spec.kind().as_str();
    let parent = ctx.parent()?;
    let request_id = common.request_id.clone().unwrap_or_else(new_request_id);
    let labels: HashMap<String, String> = common.labels.iter().cloned().collect();
    let created = ctx
        .client
        .create(&parent, &common.name, labels, spec, &request_id)
        .await
        .map_err(|e| e.for_mutation(&request_id))?;
    let name = created.name().to_owned();
    if !common.wait.wait {
        return emit(ctx.format, &ResourceView::from(&created), io.out, |w| {
            writeln!(w, "{kind} {name} created ({})", phase_name(created.phase()))
        });
    }
    let progress = io.progress(ctx.format);
    writeln!(
        progress,
        "{kind} {name} created; waiting {}",
        describe(Until::Settled, common.wait.timeout)
    )?;
    let done = wait(
        &ctx.client,
        created.kind(),
        created.resource_name(),
        Until::Settled,
        common.wait.timeout,
        progress,
    )
    .await?;
    match (ctx.format, done) {
        (Format::Table, _) | (_, None) => Ok(()),
        (format, Some(r)) => emit(format, &ResourceView::from(&r), io.out, |_| Ok(())),
    }
}
