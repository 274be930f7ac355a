//! `--wait`: follow one resource through its phases until it settles.
//!
//! Reads the resource, then watches from its revision + 1, so no change in
//! between is missed; when the stream ends, is compacted away or the server
//! is briefly unavailable, it reads again and resumes. Each phase change
//! prints one line with the elapsed time and, when present, the placement
//! summary (or the addresses once Ready, or the message once Failed).
//! `Unschedulable` is not final: a foundation may free up, so waiting goes
//! on until Ready, Failed or the timeout.
//!
//! A change to an existing resource (`start`, `stop`, `resize`) bumps its
//! generation, and the phase may well stay `Ready` throughout: the old
//! state was Ready too. So such waits ([`Until::Applied`]) end only when
//! the `Ready` condition is `True` *and* has observed the new generation —
//! the controller's word that the cloud now matches the changed spec — and
//! while it has not, the Ready line says which generation it is at.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures::StreamExt;
use tonic::Code;
use yunshu_proto::api::v1::{ConditionStatus, Phase, WatchEventType};

use crate::{
    client::Client,
    error::{Error, Result},
    output::phase_name,
    resource::{Kind, Resource},
    units::{format_duration, format_elapsed},
};

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// `Ready` (success) or `Failed` (error).
    Settled,
    /// The resource is gone.
    Gone,
    /// `Ready` with the `Ready` condition `True` at this generation or
    /// later (success), or `Failed` (error).
    Applied {
        /// The generation the change produced.
        generation: u64,
    },
}

impl Until {
    /// The generation the `Ready` condition must have observed, if any.
    const fn target(self) -> Option<u64> {
        match self {
            Self::Applied { generation } => Some(generation),
            Self::Settled | Self::Gone => None,
        }
    }
}

/// How long to pause before reading again after a transient failure.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What a progress line is printed for a change of: the phase, the
/// placement summary, the message (what the resource waits for, or why it
/// cannot go on) and, while applying a change, the observed generation.
type ProgressKey = (Phase, String, String, u64);

/// Prints one line per phase change.
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    start: Instant,
    target: Option<u64>,
    last: Option<ProgressKey>,
}

impl<'a> Progress<'a> {
    /// Progress lines on `out`, timed from now.
    pub fn new(out: &'a mut dyn Write) -> Self {
        Self {
            out,
            start: Instant::now(),
            target: None,
            last: None,
        }
    }

    /// Also prints a line when the `Ready` condition's observed generation
    /// changes, and shows it while it is below `generation`.
    pub fn applying(mut self, generation: u64) -> Self {
        self.target = Some(generation);
        self
    }

    /// Prints a line if the phase, its summary, the message or (while
    /// applying a change) the observed generation changed.
    pub fn observe(&mut self, r: &Resource) -> Result<()> {
        let observed = self.target.map_or(0, |_| observed_generation(r));
        let key = (
            r.phase(),
            r.placement_summary().to_owned(),
            r.message().to_owned(),
            observed,
        );
        if self.last.as_ref() == Some(&key) {
            return Ok(());
        }
        self.last = Some(key);
        let line = applying_line(self.start.elapsed(), r, self.target);
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }

    fn line(&mut self, text: &str) -> Result<()> {
        writeln!(
            self.out,
            "{:>7}  {text}",
            format_elapsed(self.start.elapsed())
        )?;
        self.out.flush()?;
        Ok(())
    }

    /// The last state seen, for a timeout: the phase, the generation not
    /// yet applied, and the message (what it waits for).
    fn last_phase(&self) -> String {
        let Some((phase, _, why, observed)) = &self.last else {
            return "unknown".to_owned();
        };
        let state = match self.target {
            Some(target) if *observed < target => format!(
                "{}, generation {target} not yet applied",
                phase_name(*phase)
            ),
            _ => phase_name(*phase).to_owned(),
        };
        if why.is_empty() {
            state
        } else {
            format!("{state} ({why})")
        }
    }

    fn last_is(&self, phase: Phase) -> bool {
        self.last.as_ref().is_some_and(|(p, ..)| *p == phase)
    }
}

/// The generation the resource's `Ready` condition observed; 0 without one.
pub fn observed_generation(r: &Resource) -> u64 {
    r.ready_condition().map_or(0, |c| c.observed_generation)
}

/// Whether the `Ready` condition is `True` at `generation` or later.
pub fn is_applied(r: &Resource, generation: u64) -> bool {
    r.ready_condition().is_some_and(|c| {
        c.observed_generation >= generation && c.status == i32::from(ConditionStatus::True)
    })
}

/// `  2.1s  Scheduled      kunpeng-1: best fit for xinchuang`
pub fn transition_line(elapsed: Duration, r: &Resource) -> String {
    applying_line(elapsed, r, None)
}

/// [`transition_line`] while waiting for `target` to be applied: a Ready
/// resource that has not applied it says so (`applying generation 3,
/// observed 2`), with its message if it has one (what it waits for); once
/// applied, the Ready condition's message (e.g. `SHUTOFF on foundation
/// kunpeng-1`) or the addresses.
pub fn applying_line(elapsed: Duration, r: &Resource, target: Option<u64>) -> String {
    let phase = r.phase();
    let ready_detail = match target {
        Some(generation) if phase == Phase::Ready && !is_applied(r, generation) => {
            let pending = format!(
                "applying generation {generation}, observed {}",
                observed_generation(r)
            );
            Some(match r.message() {
                "" => pending,
                why => format!("{pending}: {why}"),
            })
        }
        Some(_) => r
            .ready_condition()
            .map(|c| c.message.clone())
            .filter(|m| !m.is_empty()),
        None => None,
    };
    let detail = match (phase, ready_detail) {
        (Phase::Ready, Some(detail)) => detail,
        (Phase::Ready, None) if !r.addresses().is_empty() => r.addresses().join(", "),
        (Phase::Failed, _) if !r.message().is_empty() => r.message().to_owned(),
        _ => {
            let (foundation, summary) = (r.foundation(), r.placement_summary());
            let base = if summary.is_empty() {
                foundation.to_owned()
            } else if foundation.is_empty() || summary.starts_with(foundation) {
                summary.to_owned()
            } else {
                format!("{foundation}: {summary}")
            };
            // What it waits for (credentials, a cloud's answer) or why a
            // delete cannot finish, unless the summary says it already.
            match r.message() {
                "" => base,
                why if base.contains(why) => base,
                why if base.is_empty() => why.to_owned(),
                why => format!("{base}; {why}"),
            }
        }
    };
    let line = format!(
        "{:>7}  {:<14} {detail}",
        format_elapsed(elapsed),
        phase_name(phase)
    );
    line.trim_end().to_owned()
}

/// `departments/health/instances/web-1` → `departments/health`.
fn parent_of(name: &str) -> String {
    name.splitn(3, '/').take(2).collect::<Vec<_>>().join("/")
}

/// Waits for the resource `name` (a full resource name) of `kind`.
/// Returns its final state, or `None` once it is gone.
pub async fn wait(
    client: &Client,
    kind: Kind,
    name: &str,
    until: Until,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<Option<Resource>> {
    let mut progress = Progress::new(progress);
    if let Some(generation) = until.target() {
        progress = progress.applying(generation);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let short = name.rsplit('/').next().unwrap_or(name).to_owned();
    let timed_out = |p: &Progress<'_>| {
        let e = Error::Timeout {
            after: timeout,
            waiting: format!(
                "waiting for {} {short} (still {})",
                kind.as_str(),
                p.last_phase()
            ),
        };
        if p.last_is(Phase::Unschedulable) {
            e.with_hint(format!(
                "`yunshuctl explain {} {short}` shows each foundation and what rules it out",
                kind.as_str()
            ))
        } else {
            e
        }
    };
    let vanished = || Error::Vanished {
        kind: kind.as_str(),
        name: short.clone(),
    };
    let parent = parent_of(name);
    loop {
        let read = tokio::time::timeout_at(deadline, client.get(kind, name)).await;
        let current = match read {
            Err(_) => return Err(timed_out(&progress)),
            Ok(Ok(r)) => r,
            Ok(Err(e)) => match e.status().map(tonic::Status::code) {
                Some(Code::NotFound) if until == Until::Gone => {
                    progress.line("Deleted")?;
                    return Ok(None);
                }
                Some(Code::NotFound) => return Err(vanished()),
                _ if is_transient(&e) => {
                    pause(deadline).await;
                    continue;
                }
                _ => return Err(e),
            },
        };
        progress.observe(&current)?;
        if let Some(done) = settled(until, &current, &short)? {
            return Ok(Some(done));
        }
        let from = current.meta().revision + 1;
        let stream = tokio::time::timeout_at(deadline, client.watch(kind, &parent, from)).await;
        let mut stream = match stream {
            Err(_) => return Err(timed_out(&progress)),
            Ok(Ok(s)) => s,
            Ok(Err(e)) if is_transient(&e) => {
                pause(deadline).await;
                continue;
            }
            Ok(Err(e)) => return Err(e),
        };
        loop {
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => return Err(timed_out(&progress)),
                Ok(next) => next,
            };
            let event = match next {
                // The stream ended or broke in a way a fresh read fixes.
                None => {
                    pause(deadline).await;
                    break;
                }
                Some(Err(status)) if is_transient(&Error::from(status.clone())) => {
                    pause(deadline).await;
                    break;
                }
                Some(Err(status)) => return Err(status.into()),
                Some(Ok(event)) => event,
            };
            let Some(r) = &event.resource else {
                continue;
            };
            if r.resource_name() != name {
                continue;
            }
            if event.kind == WatchEventType::Deleted {
                return match until {
                    Until::Gone => {
                        progress.line("Deleted")?;
                        Ok(None)
                    }
                    Until::Settled | Until::Applied { .. } => Err(vanished()),
                };
            }
            progress.observe(r)?;
            if let Some(done) = settled(until, r, &short)? {
                return Ok(Some(done));
            }
        }
    }
}

/// Whether waiting is over: `Some` on success, an error on failure.
fn settled(until: Until, r: &Resource, short: &str) -> Result<Option<Resource>> {
    if until == Until::Gone {
        return Ok(None);
    }
    match r.phase() {
        Phase::Ready => match until.target() {
            Some(generation) if !is_applied(r, generation) => Ok(None),
            _ => Ok(Some(r.clone())),
        },
        Phase::Failed => Err(Error::Failed {
            kind: r.kind().as_str(),
            name: short.to_owned(),
            message: if r.message().is_empty() {
                "no reason given".to_owned()
            } else {
                r.message().to_owned()
            },
        }),
        Phase::Deleting => Err(Error::Vanished {
            kind: r.kind().as_str(),
            name: short.to_owned(),
        }),
        _ => Ok(None),
    }
}

/// Whether a read failed for a moment: retrying it may succeed.
pub(crate) fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Timeout { .. })
        || e.status()
            .is_some_and(|s| matches!(s.code(), Code::Unavailable | Code::OutOfRange))
}

async fn pause(deadline: tokio::time::Instant) {
    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + RETRY_PAUSE)).await;
}

/// "until Ready or Failed (timeout 15m)"
pub fn describe(until: Until, timeout: Duration) -> String {
    match until {
        Until::Settled => format!(
            "until Ready or Failed (timeout {})",
            format_duration(timeout)
        ),
        Until::Gone => format!("until it is gone (timeout {})", format_duration(timeout)),
        Until::Applied { generation } => format!(
            "until Ready at generation {generation} or Failed (timeout {})",
            format_duration(timeout)
        ),
    }
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
