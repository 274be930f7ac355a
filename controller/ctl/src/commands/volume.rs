//! `attach volume NAME --to INSTANCE` and `detach volume NAME`.
//!
//! Both change the volume's spec (`attach_to`); the provisioner then has the
//! cloud attach or detach it and reports that in the volume's `Attached`
//! condition, which `--wait` follows.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use yunshu_proto::api::v1 as pb;

use super::{Context, Io, new_request_id};
use crate::{
    cli::{AttachCommand, AttachWaitArgs, DetachCommand},
    error::{Error, Result},
    output::{emit, resource::ResourceView},
    resource::{Kind, Resource, attached_condition},
    wait::is_transient,
};

/// `attach volume NAME --to INSTANCE`.
pub async fn attach(ctx: &Context, c: &AttachCommand, io: &mut Io<'_>) -> Result<()> {
    let AttachCommand::Volume(a) = c;
    let name = ctx.resource_name(Kind::Volume, &a.name)?;
    let instance = ctx.resource_name(Kind::Instance, &a.instance)?;
    let request_id = a.request_id.clone().unwrap_or_else(new_request_id);
    let req = pb::AttachVolumeRequest {
        name: name.clone(),
        instance: instance.clone(),
        request_id: request_id.clone(),
    };
    let c = &ctx.client;
    let volume = c
        .unary(c.volumes.clone().attach_volume(req))
        .await
        .map_err(|e| e.for_mutation(&request_id))?
        .volume;
    let short = instance.rsplit('/').next().unwrap_or(&instance).to_owned();
    finish(ctx, volume, &name, Some(&short), &a.wait, io).await
}

/// `detach volume NAME`.
pub async fn detach(ctx: &Context, c: &DetachCommand, io: &mut Io<'_>) -> Result<()> {
    let DetachCommand::Volume(a) = c;
    let name = ctx.resource_name(Kind::Volume, &a.name)?;
    let request_id = a.request_id.clone().unwrap_or_else(new_request_id);
    let req = pb::DetachVolumeRequest {
        name: name.clone(),
        request_id: request_id.clone(),
    };
    let c = &ctx.client;
    let volume = c
        .unary(c.volumes.clone().detach_volume(req))
        .await
        .map_err(|e| e.for_mutation(&request_id))?
        .volume;
    finish(ctx, volume, &name, None, &a.wait, io).await
}

/// Whether the volume's `Attached` condition shows `target` (an instance's
/// short name, or `None` for detached) at `generation` or later.
fn reached(v: &pb::Volume, target: Option<&str>, generation: u64) -> bool {
    let Some(c) = attached_condition(v) else {
        // Never attached: detached already.
        return target.is_none();
    };
    let is = c.status == pb::ConditionStatus::True as i32;
    c.observed_generation >= generation
        && match target {
            Some(t) => is && c.message == t,
            None => !is,
        }
}

/// Prints the changed volume; with `--wait`, first follows its `Attached`
/// condition until it shows `target`.
async fn finish(
    ctx: &Context,
    volume: Option<pb::Volume>,
    name: &str,
    target: Option<&str>,
    wait: &AttachWaitArgs,
    io: &mut Io<'_>,
) -> Result<()> {
    let mut volume = volume
        .ok_or_else(|| Error::from(tonic::Status::internal("the server's answer has no volume")))?;
    let short = name.rsplit('/').next().unwrap_or(name).to_owned();
    let what = target.map_or_else(|| "detach".to_owned(), |t| format!("attach to {t}"));
    if wait.wait {
        let progress = io.progress(ctx.format);
        writeln!(
            progress,
            "volume {short}: {what} requested; waiting for the cloud"
        )?;
        volume = follow(ctx, volume, target, wait.timeout, progress).await?;
    }
    let done = if wait.wait { "done" } else { "requested" };
    let resource = Resource::Volume(volume);
    emit(ctx.format, &ResourceView::from(&resource), io.out, |w| {
        writeln!(w, "volume {short}: {what} {done}")
    })
}

/// Follows a volume's `Attached` condition until it shows `target` (an
/// instance's short name, or `None` for detached) at the volume's current
/// generation, printing each change of the condition and of the volume's
/// message (what the provisioner waits for, or why it cannot); returns the
/// volume then. Reads that fail for a moment are retried until `timeout`.
pub(super) async fn follow(
    ctx: &Context,
    mut volume: pb::Volume,
    target: Option<&str>,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<pb::Volume> {
    let name = volume
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let short = name.rsplit('/').next().unwrap_or(&name).to_owned();
    let what = target.map_or_else(|| "detach".to_owned(), |t| format!("attach to {t}"));
    let generation = volume.metadata.as_ref().map_or(0, |m| m.generation);
    let began = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = |why: &str| Error::Timeout {
        after: timeout,
        waiting: if why.is_empty() {
            format!("waiting for volume {short} to {what}")
        } else {
            format!("waiting for volume {short} to {what} ({why})")
        },
    };
    let mut last = (None, String::new());
    while !reached(&volume, target, generation) {
        let status = volume.status.clone().unwrap_or_default();
        if status.phase == pb::Phase::Failed as i32 {
            return Err(Error::Failed {
                kind: "volume",
                name: short,
                message: status.message,
            });
        }
        let now = (
            attached_condition(&volume).map(|c| (c.reason.clone(), c.message.clone())),
            status.message,
        );
        if now != last {
            let at = began.elapsed().as_secs_f64();
            if now.0 != last.0
                && let Some((reason, message)) = &now.0
            {
                writeln!(progress, "{at:>6.1}s  {reason:<12}  {message}")?;
            }
            if now.1 != last.1 && !now.1.is_empty() {
                writeln!(progress, "{at:>6.1}s  {:<12}  {}", "Waiting", now.1)?;
            }
            progress.flush()?;
            last = now;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out(&last.1));
        }
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + POLL)).await;
        let c = &ctx.client;
        let mut volumes = c.volumes.clone();
        let read = c.unary(volumes.get_volume(pb::GetVolumeRequest { name: name.clone() }));
        match tokio::time::timeout_at(deadline, read).await {
            Err(_) => return Err(timed_out(&last.1)),
            Ok(Ok(r)) => {
                volume = r.volume.ok_or_else(|| {
                    Error::from(tonic::Status::internal("the server's answer has no volume"))
                })?;
            }
            Ok(Err(e)) if is_transient(&e) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(volume)
}

/// How often a volume is read again while following its attachment.
const POLL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(generation: u64, condition: Option<(bool, &str, u64)>) -> pb::Volume {
        pb::Volume {
            metadata: Some(pb::ObjectMeta {
                generation,
                ..Default::default()
            }),
            spec: None,
            status: Some(pb::VolumeStatus {
                conditions: condition
                    .map(|(on, to, observed)| pb::Condition {
                        r#type: crate::resource::ATTACHED_CONDITION.into(),
                        status: if on {
                            pb::ConditionStatus::True as i32
                        } else {
                            pb::ConditionStatus::False as i32
                        },
                        message: to.into(),
                        observed_generation: observed,
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn waits_end_when_the_cloud_has_done_it() {
        assert!(!reached(&volume(2, None), Some("web-1"), 2));
        assert!(!reached(
            &volume(2, Some((true, "web-1", 1))),
            Some("web-1"),
            2
        ));
        assert!(!reached(
            &volume(2, Some((true, "web-2", 2))),
            Some("web-1"),
            2
        ));
        assert!(reached(
            &volume(2, Some((true, "web-1", 2))),
            Some("web-1"),
            2
        ));
        assert!(reached(&volume(2, None), None, 2));
        assert!(!reached(&volume(3, Some((true, "web-1", 2))), None, 3));
        assert!(reached(&volume(3, Some((false, "", 3))), None, 3));
    }
}
