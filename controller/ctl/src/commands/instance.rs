//! `start`, `stop`, `reboot` and `resize` an instance.
//!
//! Start, stop and resize change the instance's spec (its desired power
//! state, or its vCPUs and memory), so the server answers with the
//! instance at a new generation and the provisioner converges the cloud to
//! it. `--wait` therefore waits for the `Ready` condition to observe that
//! generation ([`Until::Applied`]), not merely for phase `Ready`, which a
//! running instance already has before it is stopped. A reboot changes no
//! spec: there is nothing to observe afterwards, so it is just the call.
//!
//! Every call carries a request id (a new UUID, or `--request-id`), so a
//! retry after a broken connection cannot reboot twice or charge a resize
//! twice.

use yunshu_proto::api::v1 as pb;

use super::{Context, Io, new_request_id};
use crate::{
    cli::{
        ApplyWaitArgs, PowerArgs, RebootCommand, ResizeArgs, ResizeCommand, StartCommand,
        StopCommand,
    },
    error::{Error, Result},
    output::{emit, resource::ResourceView},
    resource::{Kind, Resource},
    units::format_mib,
    wait::{Until, describe, wait},
};

/// One of the spec-changing instance actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Power on.
    Start,
    /// Power off.
    Stop,
    /// New vCPUs and memory (MiB).
    Resize {
        /// vCPUs.
        vcpu: u32,
        /// Memory in MiB.
        memory_mib: u64,
    },
}

impl Change {
    /// The verb of the line printed when the change was requested:
    /// `start`, `stop`, `resize to 4 vCPU, 8Gi`.
    pub fn requested(self) -> String {
        match self {
            Self::Start => "start".to_owned(),
            Self::Stop => "stop".to_owned(),
            Self::Resize { vcpu, memory_mib } => {
                format!("resize to {vcpu} vCPU, {}", format_mib(memory_mib))
            }
        }
    }

    /// The participle of the line printed once it is applied: `started`,
    /// `stopped`, `resized to 4 vCPU, 8Gi`.
    pub fn done(self) -> String {
        match self {
            Self::Start => "started".to_owned(),
            Self::Stop => "stopped".to_owned(),
            Self::Resize { vcpu, memory_mib } => {
                format!("resized to {vcpu} vCPU, {}", format_mib(memory_mib))
            }
        }
    }
}

/// `start instance NAME`.
pub async fn start(ctx: &Context, c: &StartCommand, io: &mut Io<'_>) -> Result<()> {
    let StartCommand::Instance(a) = c;
    power(ctx, a, Change::Start, io).await
}

/// `stop instance NAME`.
pub async fn stop(ctx: &Context, c: &StopCommand, io: &mut Io<'_>) -> Result<()> {
    let StopCommand::Instance(a) = c;
    power(ctx, a, Change::Stop, io).await
}

/// `resize instance NAME --vcpu N --memory SIZE`.
pub async fn resize(ctx: &Context, c: &ResizeCommand, io: &mut Io<'_>) -> Result<()> {
    let ResizeCommand::Instance(a) = c;
    let ResizeArgs {
        name,
        vcpu,
        memory,
        request_id,
        wait,
    } = a;
    let change = Change::Resize {
        vcpu: *vcpu,
        memory_mib: *memory,
    };
    apply(ctx, name, request_id.as_deref(), change, wait, io).await
}

async fn power(ctx: &Context, a: &PowerArgs, change: Change, io: &mut Io<'_>) -> Result<()> {
    apply(ctx, &a.name, a.request_id.as_deref(), change, &a.wait, io).await
}

/// Sends `change`; with `--wait`, follows the instance until it is Ready
/// at the generation the change produced.
async fn apply(
    ctx: &Context,
    name: &str,
    request_id: Option<&str>,
    change: Change,
    wait_args: &ApplyWaitArgs,
    io: &mut Io<'_>,
) -> Result<()> {
    let name = ctx.resource_name(Kind::Instance, name)?;
    let request_id = request_id.map_or_else(new_request_id, str::to_owned);
    let changed = send(ctx, &name, &request_id, change)
        .await
        .map_err(|e| e.for_mutation(&request_id))?;
    let short = changed.name().to_owned();
    if !wait_args.wait {
        return emit(ctx.format, &ResourceView::from(&changed), io.out, |w| {
            writeln!(w, "instance {short} {} requested", change.requested())
        });
    }
    let until = Until::Applied {
        generation: changed.meta().generation,
    };
    let progress = io.progress(ctx.format);
    writeln!(
        progress,
        "instance {short} {} requested; waiting {}",
        change.requested(),
        describe(until, wait_args.timeout)
    )?;
    let done = wait(
        &ctx.client,
        Kind::Instance,
        &name,
        until,
        wait_args.timeout,
        progress,
    )
    .await?
    .unwrap_or(changed);
    emit(ctx.format, &ResourceView::from(&done), io.out, |w| {
        writeln!(w, "instance {short} {}", change.done())
    })
}

/// Calls Start-, Stop- or ResizeInstance; returns the instance as changed.
async fn send(ctx: &Context, name: &str, request_id: &str, change: Change) -> Result<Resource> {
    let (name, request_id) = (name.to_owned(), request_id.to_owned());
    let c = &ctx.client;
    let instance = match change {
        Change::Start => {
            let req = pb::StartInstanceRequest { name, request_id };
            c.unary(c.instances.clone().start_instance(req))
                .await?
                .instance
        }
        Change::Stop => {
            let req = pb::StopInstanceRequest { name, request_id };
            c.unary(c.instances.clone().stop_instance(req))
                .await?
                .instance
        }
        Change::Resize { vcpu, memory_mib } => {
            let req = pb::ResizeInstanceRequest {
                name,
                vcpu,
                memory_mib,
                request_id,
            };
            c.unary(c.instances.clone().resize_instance(req))
                .await?
                .instance
        }
    };
    instance.map(Resource::Instance).ok_or_else(no_instance)
}

fn no_instance() -> Error {
    tonic::Status::internal("the server's answer has no instance").into()
}

/// `reboot instance NAME`: the call, nothing to wait for afterwards.
pub async fn reboot(ctx: &Context, c: &RebootCommand, io: &mut Io<'_>) -> Result<()> {
    let RebootCommand::Instance(a) = c;
    let name = ctx.resource_name(Kind::Instance, &a.name)?;
    let request_id = a.request_id.clone().unwrap_or_else(new_request_id);
    let req = pb::RebootInstanceRequest {
        name,
        request_id: request_id.clone(),
    };
    let c = &ctx.client;
    let rebooted = c
        .unary(c.instances.clone().reboot_instance(req))
        .await
        .map_err(|e| e.for_mutation(&request_id))?
        .instance
        .map(Resource::Instance)
        .ok_or_else(no_instance)?;
    let short = rebooted.name().to_owned();
    emit(ctx.format, &ResourceView::from(&rebooted), io.out, |w| {
        writeln!(w, "instance {short} reboot requested")
    })?;
    if a.wait {
        // Say why nothing more happens rather than leave the user guessing.
        writeln!(
            io.err,
            "note: a reboot changes no spec, so there is nothing to wait for after the call"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_change() {
        let resize = Change::Resize {
            vcpu: 8,
            memory_mib: 16384,
        };
        assert_eq!(resize.requested(), "resize to 8 vCPU, 16Gi");
        assert_eq!(resize.done(), "resized to 8 vCPU, 16Gi");
        assert_eq!(Change::Stop.requested(), "stop");
        assert_eq!(Change::Stop.done(), "stopped");
        assert_eq!(Change::Start.done(), "started");
    }
}
