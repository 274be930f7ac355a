//! `create instance|volume|bucket`, with `--wait`.

use std::collections::HashMap;

use yunshu_proto::api::v1 as pb;

use super::{Context, Io, new_request_id};
use crate::{
    cli::{
        BucketSpecArgs, CreateArgs, CreateCommand, Format, InstanceSpecArgs, PlacementArgs,
        VolumeSpecArgs,
    },
    error::{Error, Result},
    output::{emit, phase_name, resource::ResourceView},
    resource::{Kind, NewSpec, Resource},
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
    let began = std::time::Instant::now();
    let done = wait(
        &ctx.client,
        created.kind(),
        created.resource_name(),
        Until::Settled,
        common.wait.timeout,
        progress,
    )
    .await;
    let done = match done {
        // A volume asked to attach is done once attached: Ready comes first.
        Ok(Some(Resource::Volume(v))) if attach_target(&v).is_some() => {
            let target = attach_target(&v);
            let left = common.wait.timeout.saturating_sub(began.elapsed());
            let progress = io.progress(ctx.format);
            super::volume::follow(ctx, v, target.as_deref(), left, progress)
                .await
                .map(|v| Some(Resource::Volume(v)))
        }
        other => other,
    };
    match (ctx.format, done) {
        // Scripts reading JSON or YAML get the failed resource too.
        (Format::Json | Format::Yaml, Err(e @ Error::Failed { .. })) => {
            if let Ok(r) = ctx
                .client
                .get(created.kind(), created.resource_name())
                .await
            {
                emit(ctx.format, &ResourceView::from(&r), io.out, |_| Ok(()))?;
            }
            Err(e)
        }
        (_, Err(e)) => Err(e),
        (Format::Table, Ok(_)) | (_, Ok(None)) => Ok(()),
        (format, Ok(Some(r))) => emit(format, &ResourceView::from(&r), io.out, |_| Ok(())),
    }
}

/// The instance (short name) a volume's spec asks it to be attached to.
fn attach_target(v: &pb::Volume) -> Option<String> {
    v.spec
        .as_ref()
        .map(|s| {
            s.attach_to
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|t| !t.is_empty())
}
