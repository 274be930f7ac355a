//! Rendering a [`Decision`] as text, on demand: a one-line summary, one line
//! per foundation, and the core [`Placement`] kept on scheduled objects.
//!
//! Decisions hold only structured data; nothing here runs unless someone
//! reads the explanation.

use std::fmt::{self, Display, Formatter, Write};

use yunshu_core::model::{GroupPolicy, Health, Placement, Strategy};

use crate::{
    decide::{Decision, Verdict},
    filter::{Filter, Reason},
    fleet::Fleet,
    request::Request,
};

/// A decision with what it needs to be rendered. `Display` prints the
/// summary and then one line per foundation.
#[derive(Debug, Clone, Copy)]
pub struct Explanation<'a> {
    decision: &'a Decision,
    fleet: &'a Fleet,
    request: &'a Request,
}

impl Decision {
    /// The decision's explanation; `fleet` and `request` must be the ones it was made with.
    pub const fn explain<'a>(&'a self, fleet: &'a Fleet, request: &'a Request) -> Explanation<'a> {
        Explanation {
            decision: self,
            fleet,
            request,
        }
    }
}

impl<'a> Explanation<'a> {
    /// One line: the choice (or that nothing fits) and rejection counts per filter.
    pub const fn summary(&self) -> Summary<'a> {
        Summary(*self)
    }

    /// The line for foundation `index`, e.g.
    /// `kunpeng-1: filters ok, spread 0.71, cost 0.55, energy 0.77, api 0.91, total 0.83, rank 1`.
    pub const fn line(&self, index: usize) -> Line<'a> {
        Line {
            e: *self,
            index,
            with_name: true,
        }
    }

    /// Every foundation's line, in name order.
    pub fn lines(&self) -> impl Iterator<Item = Line<'a>> + '_ {
        (0..self.decision.verdicts().len()).map(|i| self.line(i))
    }

    /// The placement record for the object's status.
    pub fn to_placement(&self) -> Placement {
        let per_foundation = (0..self.decision.verdicts().len())
            .map(|index| {
                let line = Line {
                    e: *self,
                    index,
                    with_name: false,
                };
                let mut text = String::with_capacity(LINE_CAPACITY);
                // Writing into a String cannot fail.
                let _ = write!(text, "{line}");
                (self.name(index).to_owned(), text)
            })
            .collect();
        Placement {
            foundation: self.decision.chosen().map(|i| self.name(i).to_owned()),
            summary: self.summary().to_string(),
            per_foundation,
        }
    }

    fn name(&self, index: usize) -> &'a str {
        self.fleet.candidates().get(index).map_or("?", |c| c.name())
    }

    fn reason(&self, f: &mut Formatter<'_>, index: usize, reason: &Reason) -> fmt::Result {
        let trait_at = |list: &'a [yunshu_core::traits::Trait], i: u32| {
            list.get(i as usize).map_or("?", |t| t.as_str())
        };
        match *reason {
            Reason::Unsupported { kind } => write!(f, "adapter cannot create {}", kind.plural()),
            Reason::Unhealthy {
                health: Health::Degraded,
            } => f.write_str("Degraded, and the policy does not allow degraded foundations"),
            Reason::Unhealthy { health } => write!(f, "health is {health:?}"),
            Reason::NotAllowed => f.write_str("not among the department's allowed foundations"),
            Reason::StaleTenancy => {
                f.write_str("the department's view was built for another fleet")
            }
            Reason::ZoneNotOffered => {
                write!(
                    f,
                    "zone `{}` not offered (offers ",
                    self.request.zone.as_deref().unwrap_or("?")
                )?;
                let zones = self
                    .fleet
                    .candidates()
                    .get(index)
                    .map_or(&[][..], |c| &c.zones);
                if zones.is_empty() {
                    f.write_str("none")?;
                }
                for (n, z) in zones.iter().enumerate() {
                    let sep = if n == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", self.fleet.zones.name(*z))?;
                }
                f.write_str(")")
            }
            Reason::RegionMismatch => {
                write!(
                    f,
                    "region `{}` requested, ",
                    self.request.region.as_deref().unwrap_or("?")
                )?;
                match self.fleet.candidates().get(index).and_then(|c| c.region) {
                    Some(r) => write!(f, "foundation is in `{}`", self.fleet.regions.name(r)),
                    None => f.write_str("foundation declares no region"),
                }
            }
            Reason::InstanceElsewhere => {
                let a = self.request.attach_to.as_ref();
                write!(
                    f,
                    "instance `{}` to attach to is on `{}`",
                    a.map_or("?", |a| a.instance.as_str()),
                    a.and_then(|a| a.foundation.as_deref()).unwrap_or("?")
                )
            }
            Reason::InstanceNotPlaced | Reason::InstanceMissing => write!(
                f,
                "instance `{}` to attach to {}",
                self.request
                    .attach_to
                    .as_ref()
                    .map_or("?", |a| a.instance.as_str()),
                if *reason == Reason::InstanceMissing {
                    "does not exist"
                } else {
                    "is not placed yet"
                }
            ),
            Reason::MissingTrait { index } => {
                write!(
                    f,
                    "lacks required trait `{}`",
                    trait_at(&self.request.required_traits, index)
                )
            }
            Reason::ForbiddenTrait { index } => {
                write!(
                    f,
                    "has forbidden trait `{}`",
                    trait_at(&self.request.forbidden_traits, index)
                )
            }
            Reason::SecurityLevel {
                have: Some(have),
                need,
            } => {
                write!(f, "security level {have} is below the required {need}")
            }
            Reason::SecurityLevel { have: None, need } => {
                write!(f, "no security level, {need} required")
            }
            Reason::NoInventory { class } => write!(f, "no {class} inventory"),
            Reason::Insufficient {
                class,
                requested,
                free,
            } => {
                write!(f, "{class}: {requested} requested, {free} free")
            }
            Reason::Fragmented {
                class,
                requested,
                max_unit,
                free,
            } => write!(
                f,
                "{class}: largest free unit {max_unit} < {requested} requested ({free} free in all)"
            ),
            Reason::OverQuota {
                class,
                requested,
                used,
                limit,
            } => write!(
                f,
                "{class} requested {requested}, used {used}, limit {limit} on this foundation"
            ),
        }
    }
}

impl Display for Explanation<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary())?;
        self.lines().try_for_each(|l| write!(f, "\n{l}"))
    }
}

/// See [`Explanation::summary`].
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a>(Explanation<'a>);

impl Display for Summary<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (e, d) = (&self.0, self.0.decision);
        // Foundations the department may not use are not its business: not
        // counted, not named (the department's explain leaves them out too).
        let hidden = d
            .verdicts()
            .iter()
            .filter(|v| v.reason() == Some(&Reason::NotAllowed))
            .count();
        let n = d.verdicts().len() - hidden;
        if n == 0 {
            return f.write_str(if hidden == 0 {
                "unschedulable: no foundations"
            } else {
                "unschedulable: the department may use no foundation"
            });
        }
        match d.chosen().and_then(|i| Some((i, d.verdict(i)?.scores()?))) {
            Some((i, s)) => write!(f, "{} chosen, total {}", e.name(i), Fixed2(s.total))?,
            None => f.write_str("unschedulable")?,
        }
        write!(f, "; {} of {n} feasible", d.ranked().len())?;
        let mut counts = d.rejections();
        counts[Filter::Allowed as usize] -= u32::try_from(hidden).unwrap_or(u32::MAX);
        let mut first = true;
        for (filter, count) in Filter::ALL.iter().zip(counts).filter(|(_, c)| *c > 0) {
            let sep = if first { "; rejected by " } else { ", " };
            write!(f, "{sep}{} {count}", filter.name())?;
            first = false;
        }
        Ok(())
    }
}

/// See [`Explanation::line`].
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    e: Explanation<'a>,
    index: usize,
    with_name: bool,
}

impl Display for Line<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (e, d) = (&self.e, self.e.decision);
        if self.with_name {
            write!(f, "{}: ", e.name(self.index))?;
        }
        match d.verdict(self.index) {
            None => f.write_str("not in this decision"),
            Some(Verdict::Rejected(r)) => {
                write!(f, "rejected by {}: ", r.filter().name())?;
                e.reason(f, self.index, r)
            }
            Some(Verdict::Feasible(s)) => {
                let alloc = match d.strategy {
                    Strategy::Spread => "spread",
                    Strategy::Binpack => "binpack",
                };
                let (a, c, e) = (Fixed2(s.allocation), Fixed2(s.cost), Fixed2(s.energy));
                write!(f, "filters ok, {alloc} {a}, cost {c}, energy {e}")?;
                match d.group {
                    Some(GroupPolicy::Affinity) => write!(f, ", affinity {}", Fixed2(s.affinity))?,
                    Some(GroupPolicy::AntiAffinity) => {
                        write!(f, ", anti-affinity {}", Fixed2(s.affinity))?
                    }
                    None => {}
                }
                let (api, total) = (Fixed2(s.api_health), Fixed2(s.total));
                write!(f, ", api {api}, total {total}, rank {}", s.rank)
            }
        }
    }
}

/// Room for a typical line, so rendering does not grow the string.
const LINE_CAPACITY: usize = 128;

/// A score in `[0, 1]` with two decimals, without float formatting.
struct Fixed2(f64);

impl Display for Fixed2 {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // The clamp makes the cast exact: 0..=100.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let hundredths = (self.0.clamp(0.0, 1.0) * 100.0).round() as u8;
        let digits = [
            b'0' + hundredths / 100,
            b'.',
            b'0' + hundredths / 10 % 10,
            b'0' + hundredths % 10,
        ];
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
