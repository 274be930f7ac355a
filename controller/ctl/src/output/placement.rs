//! Placement explanations (`explain`, `dry-run`): the decision, then every
//! foundation with the filter that removed it or its score.

use std::io::{self, Write};

use serde::Serialize;
use yunshu_proto::api::v1::{self as pb, foundation_verdict::Outcome};

use super::rfc3339;
use crate::{resource::short_foundation, table::Table};

/// A `PlacementExplanation` as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct ExplanationView {
    /// `foundations/{name}`; empty when none fits.
    pub foundation: String,
    /// The decision in one line.
    pub summary: String,
    /// `placementpolicies/{name}`.
    pub policy: String,
    /// Every foundation considered.
    pub verdicts: Vec<VerdictView>,
    /// RFC 3339 time of the decision.
    pub decide_time: Option<String>,
}

/// One foundation's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictView {
    /// `foundations/{name}`.
    pub foundation: String,
    /// The filter that removed it, if it was filtered out.
    pub filtered_out: Option<FilteredView>,
    /// Its score, if it could take the resource.
    pub scored: Option<ScoreView>,
}

/// Why a foundation was filtered out.
#[derive(Debug, Clone, Serialize)]
pub struct FilteredView {
    /// `allowed`, `capability`, `health`, `zone`, `traits`, `capacity`, `quota`.
    pub filter: String,
    /// In words.
    pub reason: String,
}

/// How a foundation scored.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreView {
    /// Weighted total in [0, 1].
    pub total: f64,
    /// 1 for the chosen foundation.
    pub rank: u32,
    /// Components: name, score, weight.
    pub components: Vec<ComponentView>,
    /// Utilization after placement.
    pub utilization: f64,
    /// Hourly cost.
    pub hourly_cost: f64,
}

/// One score component.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentView {
    /// `allocation`, `cost`, `energy`, `affinity`, `api_health`.
    pub name: String,
    /// Unweighted score.
    pub score: f64,
    /// Weight.
    pub weight: f64,
}

impl From<&pb::PlacementExplanation> for ExplanationView {
    fn from(e: &pb::PlacementExplanation) -> Self {
        Self {
            foundation: e.foundation.clone(),
            summary: e.summary.clone(),
            policy: e.policy.clone(),
            verdicts: e
                .verdicts
                .iter()
                .map(|v| VerdictView {
                    foundation: v.foundation.clone(),
                    filtered_out: match &v.outcome {
                        Some(Outcome::FilteredOut(f)) => Some(FilteredView {
                            filter: f.filter.clone(),
                            reason: f.reason.clone(),
                        }),
                        _ => None,
                    },
                    scored: match &v.outcome {
                        Some(Outcome::Scored(s)) => Some(ScoreView {
                            total: s.total,
                            rank: s.rank,
                            components: s
                                .components
                                .iter()
                                .map(|c| ComponentView {
                                    name: c.name.clone(),
                                    score: c.score,
                                    weight: c.weight,
                                })
                                .collect(),
                            utilization: s.utilization,
                            hourly_cost: s.hourly_cost,
                        }),
                        _ => None,
                    },
                })
                .collect(),
            decide_time: rfc3339(e.decide_time.as_ref()),
        }
    }
}

/// Writes an explanation: the decision, then one row per foundation.
pub fn render_explanation(e: &ExplanationView, w: &mut dyn Write) -> io::Result<()> {
    let chosen = if e.foundation.is_empty() {
        "none fits"
    } else {
        short_foundation(&e.foundation)
    };
    writeln!(w, "Decision:   {chosen}")?;
    if !e.summary.is_empty() {
        writeln!(w, "Summary:    {}", e.summary)?;
    }
    if !e.policy.is_empty() {
        writeln!(w, "Policy:     {}", e.policy)?;
    }
    writeln!(w)?;
    let mut t = Table::new(["FOUNDATION", "RANK", "SCORE", "VERDICT"]);
    for v in &e.verdicts {
        let name = short_foundation(&v.foundation).to_owned();
        match (&v.filtered_out, &v.scored) {
            (Some(f), _) => t.row([
                name,
                String::new(),
                String::new(),
                format!("filtered by {}: {}", f.filter, f.reason),
            ]),
            (None, Some(s)) => {
                let parts: Vec<String> = s
                    .components
                    .iter()
                    .filter(|c| c.weight > 0.0)
                    .map(|c| format!("{} {:.2}×{}", c.name, c.score, c.weight))
                    .collect();
                t.row([
                    name,
                    s.rank.to_string(),
                    format!("{:.3}", s.total),
                    parts.join(", "),
                ]);
            }
            (None, None) => t.row([name, String::new(), String::new(), String::new()]),
        }
    }
    t.render(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_foundation_shows_its_filter_or_score() {
        let e = pb::PlacementExplanation {
            foundation: "foundations/kunpeng-1".into(),
            summary: "kunpeng-1: best of 1 fitting foundation".into(),
            policy: "placementpolicies/default".into(),
            verdicts: vec![
                pb::FoundationVerdict {
                    foundation: "foundations/kunpeng-1".into(),
                    outcome: Some(Outcome::Scored(pb::FoundationScore {
                        total: 0.8126,
                        rank: 1,
                        components: vec![
                            pb::ScoreComponent {
                                name: "allocation".into(),
                                score: 0.9,
                                weight: 1.0,
                            },
                            pb::ScoreComponent {
                                name: "affinity".into(),
                                score: 0.0,
                                weight: 0.0,
                            },
                        ],
                        utilization: 0.3,
                        hourly_cost: 0.4,
                    })),
                },
                pb::FoundationVerdict {
                    foundation: "foundations/x86-phase1".into(),
                    outcome: Some(Outcome::FilteredOut(pb::FilteredOut {
                        filter: "traits".into(),
                        reason: "lacks xinchuang".into(),
                    })),
                },
            ],
            decide_time: None,
        };
        let mut out = Vec::new();
        render_explanation(&ExplanationView::from(&e), &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("Decision:   kunpeng-1\n"), "{text}");
        assert!(
            text.contains("kunpeng-1    1      0.813   allocation 0.90×1"),
            "{text}"
        );
        assert!(
            text.contains("x86-phase1   -      -       filtered by traits: lacks xinchuang"),
            "{text}"
        );
    }
}
