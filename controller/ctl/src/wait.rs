//! `--wait`: follow one resource through its phases until it settles.
//!
//! Reads the resource, then watches from its revision + 1, so no change in
//! between is missed; when the stream ends, is compacted away or the server
//! is briefly unavailable, it reads again and resumes. Each phase change
//! prints one line with the elapsed time and, when present, the placement
//! summary (or the addresses once Ready, or the message once Failed).
//! `Unschedulable` is not final: a foundation may free up, so waiting goes
//! on until Ready, Failed or the timeout.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures::StreamExt;
use tonic::Code;
use yunshu_proto::api::v1::{Phase, WatchEventType};

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
}

/// How long to pause before reading again after a transient failure.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Prints one line per phase change.
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    start: Instant,
    last: Option<(Phase, String)>,
}

impl<'a> Progress<'a> {
    /// Progress lines on `out`, timed from now.
    pub fn new(out: &'a mut dyn Write) -> Self {
        Self {
            out,
            start: Instant::now(),
            last: None,
        }
    }

    /// Prints a line if the phase (or its summary) changed.
    pub fn observe(&mut self, r: &Resource) -> Result<()> {
        let key = (r.phase(), r.placement_summary().to_owned());
        if self.last.as_ref() == Some(&key) {
            return Ok(());
        }
        self.last = Some(key);
        let line = transition_line(self.start.elapsed(), r);
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

    fn last_phase(&self) -> &'static str {
        self.last
            .as_ref()
            .map_or("unknown", |(p, _)| phase_name(*p))
    }
}

/// `  2.1s  Scheduled      kunpeng-1: best fit for xinchuang`
pub fn transition_line(elapsed: Duration, r: &Resource) -> String {
    let phase = r.phase();
    let detail = match phase {
        Phase::Ready if !r.addresses().is_empty() => r.addresses().join(", "),
        Phase::Failed if !r.message().is_empty() => r.message().to_owned(),
        _ => {
            let (foundation, summary) = (r.foundation(), r.placement_summary());
            if summary.is_empty() {
                foundation.to_owned()
            } else if foundation.is_empty() || summary.starts_with(foundation) {
                summary.to_owned()
            } else {
                format!("{foundation}: {summary}")
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
    let deadline = tokio::time::Instant::now() + timeout;
    let short = name.rsplit('/').next().unwrap_or(name).to_owned();
    let timed_out = |p: &Progress<'_>| Error::Timeout {
        after: timeout,
        waiting: format!(
            "waiting for {} {short} (still {})",
            kind.as_str(),
            p.last_phase()
        ),
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
                    Until::Settled => Err(vanished()),
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
        Phase::Ready => Ok(Some(r.clone())),
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

fn is_transient(e: &Error) -> bool {
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
    }
}

#[cfg(test)]
mod tests {
    use yunshu_proto::api::v1 as pb;

    use super::*;

    fn instance(phase: Phase, foundation: &str, summary: &str) -> Resource {
        Resource::Instance(pb::Instance {
            metadata: Some(pb::ObjectMeta {
                name: "departments/health/instances/web-1".into(),
                ..Default::default()
            }),
            spec: None,
            status: Some(pb::InstanceStatus {
                phase: phase.into(),
                foundation: foundation.into(),
                placement_summary: summary.into(),
                addresses: if phase == Phase::Ready {
                    vec!["10.2.0.14".into()]
                } else {
                    vec![]
                },
                message: if phase == Phase::Failed {
                    "no valid host".into()
                } else {
                    String::new()
                },
                ..Default::default()
            }),
        })
    }

    #[test]
    fn transition_lines_carry_what_matters_in_each_phase() {
        let t = Duration::from_millis(2100);
        assert_eq!(
            transition_line(t, &instance(Phase::Pending, "", "")),
            "   2.1s  Pending"
        );
        assert_eq!(
            transition_line(
                t,
                &instance(
                    Phase::Scheduled,
                    "foundations/kunpeng-1",
                    "highest score 0.82"
                )
            ),
            "   2.1s  Scheduled      kunpeng-1: highest score 0.82"
        );
        assert_eq!(
            transition_line(
                t,
                &instance(
                    Phase::Scheduled,
                    "foundations/kunpeng-1",
                    "kunpeng-1 fits best"
                )
            ),
            "   2.1s  Scheduled      kunpeng-1 fits best"
        );
        assert_eq!(
            transition_line(
                t,
                &instance(Phase::Unschedulable, "", "no foundation has xinchuang")
            ),
            "   2.1s  Unschedulable  no foundation has xinchuang"
        );
        assert_eq!(
            transition_line(
                Duration::from_secs(41),
                &instance(Phase::Ready, "foundations/kunpeng-1", "s")
            ),
            "  41.0s  Ready          10.2.0.14"
        );
        assert_eq!(
            transition_line(t, &instance(Phase::Failed, "foundations/kunpeng-1", "s")),
            "   2.1s  Failed         no valid host"
        );
    }

    #[test]
    fn progress_prints_only_changes() {
        let mut out = Vec::new();
        let mut p = Progress::new(&mut out);
        for phase in [
            Phase::Pending,
            Phase::Pending,
            Phase::Scheduled,
            Phase::Scheduled,
            Phase::Ready,
        ] {
            p.observe(&instance(phase, "", "")).expect("prints");
        }
        let text = String::from_utf8(out).expect("utf-8");
        let phases: Vec<_> = text
            .lines()
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
            .collect();
        assert_eq!(phases, ["Pending", "Scheduled", "Ready"]);
    }

    #[test]
    fn failed_is_an_error_and_ready_is_done() {
        let ready = settled(Until::Settled, &instance(Phase::Ready, "", ""), "web-1").expect("ok");
        assert!(ready.is_some());
        assert!(
            settled(
                Until::Settled,
                &instance(Phase::Unschedulable, "", ""),
                "web-1"
            )
            .expect("ok")
            .is_none()
        );
        let failed =
            settled(Until::Settled, &instance(Phase::Failed, "", ""), "web-1").expect_err("failed");
        assert_eq!(failed.exit(), crate::error::Exit::Failed);
        assert_eq!(failed.to_string(), "instance web-1 failed: no valid host");
    }

    #[test]
    fn parents() {
        assert_eq!(
            parent_of("departments/health/instances/web-1"),
            "departments/health"
        );
    }
}
