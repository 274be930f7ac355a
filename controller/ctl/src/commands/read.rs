//! `get`, `list`, `delete` and `watch`: the verbs every kind shares.

use futures::StreamExt;
use tonic::{Code, Status};
use yunshu_proto::api::v1::{self as pb, Phase, WatchEventType};

use super::{Context, Io, new_request_id};
use crate::{
    cli::{DeleteArgs, Format, GetArgs, ListArgs, PhaseArg, WatchArgs},
    error::{Error, Result},
    output::{
        describe::{render_detail, render_list, watch_header, watch_line},
        emit, emit_streamed,
        resource::{EventView, ResourceView},
    },
    resource::Kind,
    wait::{Until, describe, wait},
};

/// The most resources asked for per page when following page tokens.
const PAGE_SIZE: usize = 500;

/// `get KIND NAME`.
pub async fn get(ctx: &Context, a: &GetArgs, io: &mut Io<'_>) -> Result<()> {
    let name = ctx.resource_name(a.kind, &a.name)?;
    let r = ctx.client.get(a.kind, &name).await?;
    emit(ctx.format, &ResourceView::from(&r), io.out, |w| {
        render_detail(&r, ctx.now, w)
    })
}

fn phase(p: PhaseArg) -> Phase {
    match p {
        PhaseArg::Pending => Phase::Pending,
        PhaseArg::Unschedulable => Phase::Unschedulable,
        PhaseArg::Scheduled => Phase::Scheduled,
        PhaseArg::Provisioning => Phase::Provisioning,
        PhaseArg::Ready => Phase::Ready,
        PhaseArg::Failed => Phase::Failed,
        PhaseArg::Deleting => Phase::Deleting,
    }
}

/// The list filter from `--phase`, `--label` and `--foundation`.
pub fn filter(a: &ListArgs) -> Option<pb::ListFilter> {
    if a.phase.is_empty() && a.labels.is_empty() && a.foundation.is_none() {
        return None;
    }
    Some(pb::ListFilter {
        phases: a.phase.iter().map(|p| phase(*p).into()).collect(),
        labels: a.labels.iter().cloned().collect(),
        foundation: match &a.foundation {
            Some(f) if f.contains('/') => f.clone(),
            Some(f) => format!("foundations/{f}"),
            None => String::new(),
        },
    })
}

/// `list KIND`: every page, or the first `--limit` resources.
pub async fn list(ctx: &Context, a: &ListArgs, io: &mut Io<'_>) -> Result<()> {
    let parent = ctx.parent()?;
    let filter = filter(a);
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let want = a
            .limit
            .map_or(PAGE_SIZE, |l| (l - items.len()).min(PAGE_SIZE));
        let page_size = i32::try_from(want).unwrap_or(i32::MAX);
        let page = ctx
            .client
            .list_page(a.kind, &parent, page_size, token, filter.clone())
            .await?;
        items.extend(page.items);
        if let Some(limit) = a.limit {
            items.truncate(limit);
            if items.len() >= limit {
                break;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    if ctx.format == Format::Table && items.is_empty() {
        writeln!(
            io.err,
            "no {} in {parent}{}",
            a.kind.collection(),
            if filter.is_some() { " match" } else { "" }
        )?;
        return Ok(());
    }
    let views: Vec<ResourceView> = items.iter().map(ResourceView::from).collect();
    emit(ctx.format, &views, io.out, |w| {
        render_list(a.kind, &items, ctx.now, w)
    })
}

/// `delete KIND NAME [--purge]`; with `--wait`, until it is gone.
pub async fn delete(ctx: &Context, a: &DeleteArgs, io: &mut Io<'_>) -> Result<()> {
    if a.purge && a.kind != Kind::Bucket {
        return Err(Error::Usage(format!(
            "--purge applies to buckets only, not to {}",
            a.kind.collection()
        )));
    }
    let name = ctx.resource_name(a.kind, &a.name)?;
    let request_id = a.request_id.clone().unwrap_or_else(new_request_id);
    let r = ctx
        .client
        .delete(a.kind, &name, &request_id, a.purge)
        .await
        .map_err(|e| refused_delete(a, e.for_mutation(&request_id)))?;
    let (kind, short) = (a.kind.as_str(), r.name().to_owned());
    if a.wait.wait {
        let progress = io.progress(ctx.format);
        writeln!(
            progress,
            "{kind} {short} deletion requested; waiting {}",
            describe(Until::Gone, a.wait.timeout)
        )?;
        wait(
            &ctx.client,
            a.kind,
            &name,
            Until::Gone,
            a.wait.timeout,
            progress,
        )
        .await?;
        return match ctx.format {
            Format::Table => Ok(()),
            format => emit(format, &ResourceView::from(&r), io.out, |_| Ok(())),
        };
    }
    let gone = match ctx.client.get(a.kind, &name).await {
        Err(e) => e.status().is_some_and(|s| s.code() == Code::NotFound),
        Ok(_) => false,
    };
    emit(ctx.format, &ResourceView::from(&r), io.out, |w| {
        if gone {
            writeln!(w, "{kind} {short} deleted")
        } else {
            writeln!(
                w,
                "{kind} {short} is being deleted (--wait waits until it is gone)"
            )
        }
    })
}

/// `watch KIND`: prints every change until interrupted (or `--count`).
pub async fn watch(ctx: &Context, a: &WatchArgs, io: &mut Io<'_>) -> Result<()> {
    let parent = ctx.parent()?;
    let start = a.since.unwrap_or(0);
    let mut stream = ctx.client.watch(a.kind, &parent, start).await?;
    if ctx.format == Format::Table {
        watch_header(io.out)?;
        io.out.flush()?;
    }
    let mut seen = 0;
    // Where a broken watch resumes: the last event's revision, which may
    // hold more changes than arrived (one transaction, several objects).
    let mut last = (start > 0).then_some((start, false));
    while a.count.is_none_or(|c| seen < c) {
        let event = match stream.next().await {
            Some(Ok(event)) => event,
            Some(Err(status)) if status.code() == Code::OutOfRange => {
                // Resuming from there would fail the same way.
                return Err(Error::from(status).with_hint(format!(
                    "the history was compacted: start the watch again without --since (it follows changes from now), then read the current state (`yunshuctl list {}`); together they miss nothing",
                    a.kind.as_str()
                )));
            }
            Some(Err(status)) => return Err(resumable(status.into(), last)),
            None => {
                let ended = Status::unavailable("the server ended the watch");
                return Err(resumable(ended.into(), last));
            }
        };
        last = Some((event.revision, true));
        if event.kind == WatchEventType::Bookmark {
            continue;
        }
        match ctx.format {
            Format::Table => watch_line(&event, io.out)?,
            format => emit_streamed(format, &EventView::from(&event), io.out)?,
        }
        io.out.flush()?;
        seen += 1;
    }
    Ok(())
}

/// A bucket deletion refused with FAILED_PRECONDITION (it holds objects)
/// keeps the server's message and its exit code (6) and gains the way out.
pub fn refused_delete(a: &DeleteArgs, e: Error) -> Error {
    let refused = e
        .status()
        .is_some_and(|s| s.code() == Code::FailedPrecondition);
    if refused && a.kind == Kind::Bucket && !a.purge {
        e.with_hint(format!(
            "to delete the bucket with its objects, run `yunshuctl delete bucket {} --purge`",
            a.name
        ))
    } else {
        e
    }
}

/// The hint to resume from `last`: a revision, and whether a change of it
/// was shown.
fn resumable(e: Error, last: Option<(i64, bool)>) -> Error {
    match last {
        Some((r, true)) => e.with_hint(format!(
            "resume with --since {r} (changes at revision {r} already shown appear again)"
        )),
        Some((r, false)) => e.with_hint(format!("resume with --since {r}")),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn list_args(args: &[&str]) -> ListArgs {
        let cli = Cli::try_parse_from(["yunshuctl", "list"].iter().chain(args)).expect("parses");
        match cli.command {
            Command::List(a) => a,
            other => panic!("wrong command {other:?}"),
        }
    }

    fn delete_args(args: &[&str]) -> DeleteArgs {
        let cli = Cli::try_parse_from(["yunshuctl", "delete"].iter().chain(args)).expect("parses");
        match cli.command {
            Command::Delete(a) => a,
            other => panic!("wrong command {other:?}"),
        }
    }

    fn rendered(e: &Error) -> String {
        let mut out = Vec::new();
        e.render(&mut out).expect("render");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_refused_bucket_deletion_prints_the_servers_message_and_exits_6() {
        let message = "bucket scans holds 3 objects; nothing was deleted. \
                       Delete them first, or delete with purge to remove them too";
        let refused = || Error::from(Status::failed_precondition(message));
        let e = refused_delete(&delete_args(&["bucket", "scans"]), refused());
        assert_eq!(e.exit(), crate::error::Exit::Conflict);
        assert_eq!(e.exit().code(), 6);
        assert_eq!(
            rendered(&e),
            format!(
                "error: {message}\nhint: to delete the bucket with its objects, \
                 run `yunshuctl delete bucket scans --purge`\n"
            )
        );
        // With --purge, or for other kinds and codes, no advice to purge.
        let purged = refused_delete(&delete_args(&["bucket", "scans", "--purge"]), refused());
        assert_eq!(rendered(&purged), format!("error: {message}\n"));
        assert_eq!(purged.exit().code(), 6);
        let volume = refused_delete(&delete_args(&["volume", "data"]), refused());
        assert!(!rendered(&volume).contains("--purge"));
        let missing = refused_delete(
            &delete_args(&["bucket", "scans"]),
            Status::not_found("no bucket scans").into(),
        );
        assert_eq!(rendered(&missing), "error: no bucket scans\n");
    }

    /// One revision may hold several changes, and a stream may break
    /// between them: a resumed watch starts at the last revision shown,
    /// not after it, so it misses none.
    #[test]
    fn a_broken_watch_resumes_at_the_last_revision_shown() {
        let broken = || Error::from(Status::unavailable("the server ended the watch"));
        assert_eq!(
            rendered(&resumable(broken(), Some((42, true)))),
            "error: the server ended the watch
hint: resume with --since 42 \
             (changes at revision 42 already shown appear again)\n"
        );
        assert!(rendered(&resumable(broken(), Some((42, false)))).ends_with("--since 42\n"));
        assert!(!rendered(&resumable(broken(), None)).contains("resume"));
    }

    #[test]
    fn no_flags_no_filter() {
        assert_eq!(filter(&list_args(&["instances"])), None);
    }

    #[test]
    fn filters_use_api_names() {
        let f = filter(&list_args(&[
            "instances",
            "--phase",
            "ready",
            "--phase",
            "unschedulable",
            "-l",
            "app=web",
            "--foundation",
            "kunpeng-1",
        ]))
        .expect("a filter");
        assert_eq!(
            f.phases,
            [i32::from(Phase::Ready), i32::from(Phase::Unschedulable)]
        );
        assert_eq!(f.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(f.foundation, "foundations/kunpeng-1");
    }
}
