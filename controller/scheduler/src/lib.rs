//! `yunshu-scheduler`: pure placement. Given a request, the candidate
//! foundations, the department's standing on each and a placement policy, it
//! decides which foundation takes the request and says why, for every
//! foundation. No I/O, no async, no clock.
//!
//! ```text
//! Fleet::new(foundations)            once per change of the foundations' specs
//!   Fleet::observe / set_inventory   after each probe or committed allocation
//! Tenancy::new(&fleet, quota, usage, allowed)   per department; charge() on commit
//! decide(&fleet, &tenancy, &policy, &request) -> Decision
//!   decision.chosen(), .ranked(), .verdicts()   structured, no strings
//!   decision.explain(&fleet, &request)          renders text on demand
//! ```
//!
//! **Filters** ([`Filter`], in order; the first rejection is kept as a
//! [`Reason`]): capability (the adapter creates the kind), health (Ready, or
//! Degraded if the policy allows), allowed (the department's allowed
//! foundations), zone (and region), traits (required present,
//! `security-level:N` as a minimum, forbidden absent), capacity (free amount
//! *and* largest free unit of every requested class), quota (the department's
//! limit on that foundation).
//!
//! **Scores** ([`score`], each in `[0, 1]`): allocation (spread or bin-pack),
//! cost, energy, affinity, API health, combined by the policy's weights. Equal
//! totals go to the foundation whose name sorts first.
//!
//! An explanation line reads
//! `kunpeng-1: filters ok, spread 0.71, cost 0.55, energy 0.77, api 0.91, total 0.83, rank 1`
//! or `phase-1: rejected by capacity: vcpu: largest free unit 2 < 8 requested (100 free in all)`.
//!
//! # Benchmark
//!
//! `cargo bench -p yunshu-scheduler --bench placement-bench` times decisions
//! over 4, 16 and 100 foundations against a naive filter-all-then-score-all
//! baseline and prints decisions/s, p50 and p99 and the speedup.
//!
//! For a stable figure, count instructions per decision with callgrind: the
//! bench's `--fixed <foundations> <decisions> [naive|text]` mode runs a fixed
//! number of decisions once (ours by default), and `--toggle-collect` counts
//! only the function `run_fixed`, so setup is excluded:
//!
//! ```text
//! cargo bench -p yunshu-scheduler --bench placement-bench --no-run
//! BIN=$(ls -t ${CARGO_TARGET_DIR:-target}/release/deps/placement_bench-* | grep -v '\.d$' | head -1)
//! valgrind --tool=callgrind --toggle-collect='*run_fixed*' --callgrind-out-file=/tmp/cg.out \
//!   $BIN --fixed 16 10000
//! # valgrind prints "Collected : <Ir>"; Ir / 10000 is instructions per decision.
//! callgrind_annotate /tmp/cg.out | head -40   # where they go
//! ```

mod decide;
mod explain;
pub mod filter;
pub mod fleet;
pub mod request;
pub mod score;
pub mod tenancy;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;

pub use decide::{Decision, Verdict, decide};
pub use explain::{Explanation, Line, Summary};
pub use filter::{Filter, Reason};
pub use fleet::{Candidate, ClassInventory, Fleet, FoundationInput};
pub use request::{AttachTo, GroupRequest, Request};
pub use score::{EffectiveWeights, Scores};
pub use tenancy::{Standing, Tenancy};
