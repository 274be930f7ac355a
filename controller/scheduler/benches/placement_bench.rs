//! placement-bench: decisions per second and latency of `decide` over 4, 16
//! and 100 foundations, against the naive baseline in `naive.rs`, on the
//! same requests, in interleaved rounds on one thread.
//!
//! ```text
//! cargo bench -p yunshu-scheduler --bench placement-bench [-- --rounds N --jobs N]
//! placement_bench --fixed <foundations> <decisions> [naive|text]   # for callgrind, see the crate doc
//! ```
//!
//! Three variants are timed per request:
//! - `ours`: `decide`, keeping the structured explanation (the `Decision`);
//! - `ours+text`: `decide` and then rendering the whole explanation as the
//!   core `Placement` (summary plus one line per foundation), as the
//!   scheduling loop would when it writes an object's status;
//! - `naive`: every filter on every foundation, `String` verdicts, then
//!   scoring and formatting every survivor.

mod naive;
mod workload;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use workload::World;
use yunshu_core::model::PlacementPolicySpec;
use yunshu_scheduler::{Fleet, FoundationInput, Tenancy, decide};

const SIZES: [usize; 3] = [4, 16, 100];
const SEED: u64 = 0x7975_6e73_6875;
/// How many times the fleet is built to time it.
const BUILDS: u32 = 200;

/// The world compiled for our scheduler.
struct Compiled {
    fleet: Fleet,
    tenancies: Vec<Tenancy>,
    policy: PlacementPolicySpec,
}

fn compile(w: &World) -> Compiled {
    let fleet = Fleet::new(w.foundations.iter().map(|f| FoundationInput {
        name: &f.name,
        spec: &f.spec,
        status: &f.status,
        kinds: &f.kinds,
        api_error_rate: f.error_rate,
    }));
    let tenancies = w
        .departments
        .iter()
        .map(|d| Tenancy::from_department(&fleet, &d.spec, &d.usage))
        .collect();
    Compiled {
        fleet,
        tenancies,
        policy: PlacementPolicySpec::default(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Ours,
    OursText,
    Naive,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Ours, Variant::OursText, Variant::Naive];

    fn name(self) -> &'static str {
        match self {
            Variant::Ours => "ours",
            Variant::OursText => "ours+text",
            Variant::Naive => "naive",
        }
    }
}

/// One decision for job `i`; returns something that depends on its result.
#[inline(always)]
fn one(v: Variant, w: &World, c: &Compiled, i: usize) -> usize {
    let job = &w.jobs[i];
    match v {
        Variant::Ours => {
            let d = decide(
                &c.fleet,
                &c.tenancies[job.department],
                &c.policy,
                &job.request,
            );
            black_box(&d);
            d.chosen().unwrap_or(usize::MAX)
        }
        Variant::OursText => {
            let d = decide(
                &c.fleet,
                &c.tenancies[job.department],
                &c.policy,
                &job.request,
            );
            let p = d.explain(&c.fleet, &job.request).to_placement();
            black_box(&p);
            p.per_foundation.len()
        }
        Variant::Naive => {
            let dept = &w.departments[job.department];
            let d = naive::decide(
                &w.foundations,
                &dept.spec,
                &dept.usage,
                &c.policy,
                &job.request,
            );
            black_box(&d);
            d.explanations.len()
        }
    }
}

/// Times every job once; returns the wall time of the pass and each decision's latency.
fn pass(v: Variant, w: &World, c: &Compiled, lat: &mut Vec<u32>) -> Duration {
    let start = Instant::now();
    for i in 0..w.jobs.len() {
        let t = Instant::now();
        black_box(one(v, w, c, i));
        lat.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    start.elapsed()
}

/// The `--fixed` mode: `n` decisions and nothing else, for callgrind's `--toggle-collect`.
#[inline(never)]
fn run_fixed(v: Variant, w: &World, c: &Compiled, n: usize) -> usize {
    (0..n).fold(0, |acc, i| acc.wrapping_add(one(v, w, c, i % w.jobs.len())))
}

/// Checks that ours and the naive baseline agree on every job; returns how many are unschedulable.
fn agree(w: &World, c: &Compiled) -> usize {
    let mut unschedulable = 0;
    for job in &w.jobs {
        let dept = &w.departments[job.department];
        let ours = decide(
            &c.fleet,
            &c.tenancies[job.department],
            &c.policy,
            &job.request,
        );
        let base = naive::decide(
            &w.foundations,
            &dept.spec,
            &dept.usage,
            &c.policy,
            &job.request,
        );
        let name = |i: usize| c.fleet.candidates()[i].name().to_owned();
        assert_eq!(ours.chosen().map(name), base.chosen, "{:?}", job.request);
        let mut feasible: Vec<String> = ours.ranked().map(name).collect();
        feasible.sort();
        let mut base_feasible = base.feasible.clone();
        base_feasible.sort();
        assert_eq!(feasible, base_feasible, "{:?}", job.request);
        unschedulable += usize::from(ours.chosen().is_none());
    }
    unschedulable
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(i).copied().unwrap_or(0)) / 1000.0
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--fixed") {
        let size = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(16);
        let n = args
            .get(i + 2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        let v = match args.get(i + 3).map(String::as_str) {
            Some("naive") => Variant::Naive,
            Some("text") => Variant::OursText,
            _ => Variant::Ours,
        };
        let w = World::new(size, 4096, SEED ^ size as u64);
        let c = compile(&w);
        println!(
            "{} decisions over {size} foundations ({}): checksum {}",
            n,
            v.name(),
            run_fixed(v, &w, &c, n)
        );
        return;
    }
    let rounds = arg(&args, "--rounds").unwrap_or(10);
    let jobs = arg(&args, "--jobs").unwrap_or(4096);
    println!(
        "placement-bench: {jobs} requests per size (70% repeated shapes, 30% unique, 10% made infeasible),"
    );
    println!(
        "{rounds} interleaved rounds per size, one thread; latency per decision includes ~20 ns of timer."
    );
    println!();
    println!(
        "{:>11}  {:>10}  {:>12}  {:>9}  {:>9}  {:>8}",
        "foundations", "variant", "decisions/s", "p50 µs", "p99 µs", "speedup"
    );
    for size in SIZES {
        let w = World::new(size, jobs, SEED ^ size as u64);
        let build = Instant::now();
        for _ in 0..BUILDS {
            black_box(compile(&w));
        }
        let build = build.elapsed() / BUILDS;
        let c = compile(&w);
        let unschedulable = agree(&w, &c);
        let mut lat: [Vec<u32>; 3] = Default::default();
        let mut wall = [Duration::ZERO; 3];
        for v in Variant::ALL {
            pass(v, &w, &c, &mut Vec::new()); // warm-up
        }
        for round in 0..rounds {
            // Rotate which variant goes first, so none always runs on a warm cache.
            for k in 0..3 {
                let v = Variant::ALL[(round + k) % 3];
                wall[v as usize] += pass(v, &w, &c, &mut lat[v as usize]);
            }
        }
        let counts = lat.each_ref().map(Vec::len);
        let rate = |v: Variant| counts[v as usize] as f64 / wall[v as usize].as_secs_f64();
        let naive_rate = rate(Variant::Naive);
        for v in Variant::ALL {
            let l = &mut lat[v as usize];
            l.sort_unstable();
            let speedup = if v == Variant::Naive {
                String::new()
            } else {
                format!("{:.1}x", rate(v) / naive_rate)
            };
            println!(
                "{size:>11}  {:>10}  {:>12.0}  {:>9.2}  {:>9.2}  {speedup:>8}",
                v.name(),
                rate(v),
                percentile(l, 0.50),
                percentile(l, 0.99),
            );
        }
        println!(
            "{:>11}  agreement: ours and naive chose the same foundation for all {jobs} requests; unschedulable {:.1}% ({} made infeasible)",
            "",
            100.0 * unschedulable as f64 / jobs as f64,
            w.sabotaged
        );
        println!(
            "{:>11}  building the fleet and {} department views (once, outside the timings): {:.1} µs",
            "",
            w.departments.len(),
            build.as_secs_f64() * 1e6
        );
    }
}
