//! Decisions in structured form, for `PlacementService.Explain` and
//! `DryRun` and for `yunshuctl`'s per-foundation table.
//!
//! A dry run has the scheduler's whole [`Decision`]. An explanation has only
//! what was kept on the object (the [`Placement`]: a summary and one line per
//! foundation), so [`Report::from_kept`] reads the lines back; the weights
//! shown then are the policy's current ones, and utilization and hourly cost
//! are not known.

use chrono::{DateTime, Utc};
use yunshu_core::model::{Placement, Weights};
use yunshu_scheduler::{Decision, EffectiveWeights, Fleet, Request, Scores};

/// A placement decision: the choice, the one-line summary and a verdict for
/// every foundation, in name order.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The chosen foundation; `None` when nothing fits.
    pub foundation: Option<String>,
    /// The decision in one line.
    pub summary: String,
    /// The placement policy applied; `None` for the built-in default.
    pub policy: Option<String>,
    /// One verdict per foundation considered.
    pub verdicts: Vec<FoundationReport>,
    /// When the decision was made: now for a dry run, the `Scheduled`
    /// condition's last transition for a kept one; `None` if unknown.
    pub decided_at: Option<DateTime<Utc>>,
}

/// What the scheduler made of one foundation.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundationReport {
    /// The foundation's name.
    pub foundation: String,
    /// Filtered out or scored.
    pub verdict: VerdictReport,
}

/// Filtered out or scored.
#[derive(Debug, Clone, PartialEq)]
pub enum VerdictReport {
    /// A filter removed the foundation.
    FilteredOut {
        /// The filter's name (`capability`, `health`, … `quota`).
        filter: String,
        /// The reason in words, e.g. `vcpu: 4 requested, 2 free`.
        reason: String,
    },
    /// The foundation could take the request.
    Scored(ScoreReport),
    /// A kept line this build cannot read back, as written.
    Text(String),
}

/// How a feasible foundation scored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReport {
    /// The weighted total in `[0, 1]`.
    pub total: f64,
    /// 1 for the chosen foundation, 2 for the runner-up, …
    pub rank: u32,
    /// Each component with its weight.
    pub components: Vec<Component>,
    /// Mean utilization of the requested classes after placement (dry runs only).
    pub utilization: Option<f64>,
    /// The hourly price of the request here (dry runs only).
    pub hourly_cost: Option<f64>,
}

/// One score component.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// `allocation`, `cost`, `energy`, `affinity` or `api_health`.
    pub name: &'static str,
    /// The score before weighting, in `[0, 1]`.
    pub score: f64,
    /// Its weight in the total.
    pub weight: f64,
}

fn components(s: &Scores, w: &EffectiveWeights) -> Vec<Component> {
    let mut out = vec![
        Component {
            name: "allocation",
            score: s.allocation,
            weight: w.allocation,
        },
        Component {
            name: "cost",
            score: s.cost,
            weight: w.cost,
        },
        Component {
            name: "energy",
            score: s.energy,
            weight: w.energy,
        },
    ];
    if w.affinity > 0.0 {
        out.push(Component {
            name: "affinity",
            score: s.affinity,
            weight: w.affinity,
        });
    }
    out.push(Component {
        name: "api_health",
        score: s.api_health,
        weight: w.api_health,
    });
    out
}

impl Report {
    /// From a decision the scheduler just made over `fleet` for `request`.
    pub fn from_decision(
        decision: &Decision,
        fleet: &Fleet,
        request: &Request,
        policy: Option<String>,
    ) -> Self {
        let placement = decision.explain(fleet, request).to_placement();
        let verdicts = fleet
            .candidates()
            .iter()
            .zip(decision.verdicts())
            .map(|(c, v)| {
                let verdict = match (v.scores(), v.reason()) {
                    (Some(s), _) => VerdictReport::Scored(ScoreReport {
                        total: s.total,
                        rank: s.rank,
                        components: components(s, decision.weights()),
                        utilization: Some(s.utilization),
                        hourly_cost: Some(s.hourly_cost),
                    }),
                    (None, Some(r)) => {
                        let line = placement
                            .per_foundation
                            .get(c.name())
                            .map_or("", String::as_str);
                        let filter = r.filter().name();
                        let reason = line
                            .strip_prefix("rejected by ")
                            .and_then(|l| l.strip_prefix(filter))
                            .and_then(|l| l.strip_prefix(": "))
                            .unwrap_or(line);
                        VerdictReport::FilteredOut {
                            filter: filter.to_owned(),
                            reason: reason.to_owned(),
                        }
                    }
                    (None, None) => VerdictReport::Text(String::new()),
                };
                FoundationReport {
                    foundation: c.name().to_owned(),
                    verdict,
                }
            })
            .collect();
        Self {
            foundation: placement.foundation,
            summary: placement.summary,
            policy,
            verdicts,
            decided_at: None,
        }
    }

    /// From the decision kept on an object, with the weights of the policy
    /// in force now.
    pub fn from_kept(placement: &Placement, policy: Option<String>, weights: &Weights) -> Self {
        let verdicts = placement
            .per_foundation
            .iter()
            .map(|(name, line)| FoundationReport {
                foundation: name.clone(),
                verdict: parse_line(line, weights),
            })
            .collect();
        Self {
            foundation: placement.foundation.clone(),
            summary: placement.summary.clone(),
            policy,
            verdicts,
            decided_at: None,
        }
    }
}

/// Reads back one kept line (see `yunshu_scheduler::Explanation::line`).
pub fn parse_line(line: &str, weights: &Weights) -> VerdictReport {
    if let Some((filter, reason)) = line
        .strip_prefix("rejected by ")
        .and_then(|l| l.split_once(": "))
    {
        return VerdictReport::FilteredOut {
            filter: filter.to_owned(),
            reason: reason.to_owned(),
        };
    }
    parse_scores(line, weights).map_or_else(
        || VerdictReport::Text(line.to_owned()),
        VerdictReport::Scored,
    )
}

fn parse_scores(line: &str, weights: &Weights) -> Option<ScoreReport> {
    let rest = line.strip_prefix("filters ok, ")?;
    let grouped = rest.contains("affinity ");
    let w = EffectiveWeights::new(weights, grouped);
    let (mut total, mut rank, mut components) = (None, None, Vec::new());
    for part in rest.split(", ") {
        let (name, value) = part.rsplit_once(' ')?;
        let (name, weight) = match name {
            "spread" | "binpack" => ("allocation", w.allocation),
            "cost" => ("cost", w.cost),
            "energy" => ("energy", w.energy),
            "affinity" | "anti-affinity" => ("affinity", w.affinity),
            "api" => ("api_health", w.api_health),
            "total" => {
                total = Some(value.parse().ok()?);
                continue;
            }
            "rank" => {
                rank = Some(value.parse().ok()?);
                continue;
            }
            _ => return None,
        };
        components.push(Component {
            name,
            score: value.parse().ok()?,
            weight,
        });
    }
    Some(ScoreReport {
        total: total?,
        rank: rank?,
        components,
        utilization: None,
        hourly_cost: None,
    })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
