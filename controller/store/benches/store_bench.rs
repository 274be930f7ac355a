//! `store-bench`: reservations per second on one hot department quota.
//!
//! Four contenders, in interleaved rounds so drift on the machine hits all of
//! them alike, each driven by the same closed loop of clients (64 unless
//! `STORE_BENCH_CLIENTS` says otherwise):
//!
//! - `naive-etcd`: each request reads the quota and usage, then commits one
//!   read-compare-write transaction, retrying on conflict;
//! - `admission-etcd`: our group-committed admission on a real etcd;
//! - `admission-embedded`: the same on the embedded redb file;
//! - `raw-batch-etcd`: the ceiling — one writer folding queued writes of the
//!   same sizes into one guarded etcd transaction, with no quota logic or
//!   encoding.
//!
//! Run: `cargo bench -p yunshu-store --bench store-bench`
//! (`STORE_BENCH_ROUNDS`, default 3, and `STORE_BENCH_SECS`, default 3, per
//! contender per round).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use yunshu_core::{
    admission::{Admission, AdmissionConfig, UsageRecord},
    codec, keys,
    meta::Kind,
    model::{Charge, Department, DepartmentSpec, Instance, InstanceSpec, Quota},
    resources::{ResourceClass, check_quota},
    store::{Compare, Op, Store, StoreExt, Txn},
};
use yunshu_store::{EmbeddedStore, EtcdConfig, EtcdStore};
use yunshu_testenv::EtcdServer;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn department(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    let dept = Department::new(
        None,
        name,
        DepartmentSpec {
            quota: Quota {
                hard: BTreeMap::from([(ResourceClass::Vcpu, 1 << 40)]),
                ..Quota::default()
            },
            ..DepartmentSpec::default()
        },
    );
    store
        .put(&keys::department(name), codec::encode(&dept)?)
        .await?;
    Ok(())
}

fn instance(dept: &str, name: &str) -> Instance {
    Instance::new(
        Some(dept),
        name,
        InstanceSpec {
            vcpu: 2,
            memory_mib: 4096,
            disk_gib: 40,
            image: "kylin-v10".into(),
            constraints: Default::default(),
            group: None,
            power: Default::default(),
        },
    )
}

#[derive(Default)]
struct Tally {
    hist: Option<Histogram<u64>>,
    done: u64,
    secs: f64,
    conflicts: u64,
}

impl Tally {
    fn hist(&mut self) -> &mut Histogram<u64> {
        self.hist.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
        })
    }
}

/// One reservation; returns how many conflicts it met.
type Reserve =
    Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, anyhow::Result<u64>> + Send + Sync>;

async fn drive(reserve: Reserve, clients: u64, secs: u64, tag: &str, tally: &mut Tally) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let reserve = reserve.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut conflicts = 0;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    match reserve(format!("{tag}-{c}-{n}")).await {
                        Ok(k) => {
                            conflicts += k;
                            lat.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                        }
                        Err(e) => eprintln!("reservation failed: {e}"),
                    }
                    n += 1;
                }
                (lat, conflicts)
            })
        })
        .collect();
    for t in tasks {
        let (lat, conflicts) = t.await.expect("client task");
        tally.done += lat.len() as u64;
        tally.conflicts += conflicts;
        for l in lat {
            tally.hist().saturating_record(l.max(1));
        }
    }
    tally.secs += start.elapsed().as_secs_f64();
}

fn naive(store: Arc<dyn Store>, dept: String) -> Reserve {
    Arc::new(move |name: String| {
        let (store, dept) = (store.clone(), dept.clone());
        Box::pin(async move {
            let obj = instance(&dept, &name);
            let record = codec::encode(&obj)?;
            let mut conflicts = 0;
            loop {
                let dkv = store
                    .get(&keys::department(&dept))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no dept"))?;
                let d: Department = codec::decode(&dkv.key, &dkv.value)?;
                let ukv = store.get(&keys::usage(&dept)).await?;
                let (urev, usage) = match &ukv {
                    Some(kv) => (
                        kv.mod_revision,
                        codec::decode::<UsageRecord>(&kv.key, &kv.value)?.usage,
                    ),
                    None => (0, Default::default()),
                };
                check_quota(&d.spec.quota.hard, &usage, &obj.spec.charge())
                    .map_err(|_| anyhow::anyhow!("quota"))?;
                let usage = usage
                    .checked_add(&obj.spec.charge())
                    .ok_or_else(|| anyhow::anyhow!("overflow"))?;
                let okey = keys::object(Kind::Instance, Some(&dept), &name);
                let rkey = keys::request(&dept, &name);
                let txn = Txn::new()
                    .when([
                        Compare::unchanged(keys::department(&dept), dkv.mod_revision),
                        Compare::unchanged(keys::usage(&dept), urev),
                        Compare::absent(&rkey),
                        Compare::absent(&okey),
                    ])
                    .and_then([
                        Op::put(okey, record.clone()),
                        Op::put(rkey, name.clone().into_bytes()),
                        Op::put(keys::usage(&dept), codec::encode(&UsageRecord { usage })?),
                    ]);
                if store.txn(txn).await?.succeeded {
                    return Ok(conflicts);
                }
                conflicts += 1;
            }
        })
    })
}

fn ours(admission: Admission, dept: String) -> Reserve {
    Arc::new(move |name: String| {
        let (admission, dept) = (admission.clone(), dept.clone());
        Box::pin(async move {
            admission.create(&name, instance(&dept, &name)).await?;
            Ok(0)
        })
    })
}

type RawJob = (String, Vec<u8>, oneshot::Sender<()>);

/// The ceiling: one writer folding queued writes into guarded transactions.
fn raw_batch(
    store: Arc<dyn Store>,
    dept: String,
    max_batch: usize,
    conflicts: Arc<AtomicU64>,
) -> Reserve {
    let (tx, mut rx) = mpsc::channel::<RawJob>(4096);
    let writer_store = store.clone();
    let guard = format!("/bench/raw/{dept}");
    tokio::spawn(async move {
        let mut guard_rev = 0;
        let usage = vec![b'u'; 40];
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let mut txn = Txn::new().when([Compare::unchanged(&guard, guard_rev)]);
            for (key, value, _) in &batch {
                txn = txn.and_then([
                    Op::put(key.clone(), value.clone()),
                    Op::put(format!("{key}/req"), key.clone().into_bytes()),
                ]);
            }
            txn = txn.and_then([Op::put(&guard, usage.clone())]);
            match writer_store.txn(txn).await {
                Ok(r) if r.succeeded => guard_rev = r.revision,
                _ => {
                    conflicts.fetch_add(1, Ordering::Relaxed);
                    guard_rev = writer_store
                        .get(&guard)
                        .await
                        .ok()
                        .flatten()
                        .map_or(0, |kv| kv.mod_revision);
                }
            }
            for (_, _, reply) in batch {
                let _ = reply.send(());
            }
        }
    });
    Arc::new(move |name: String| {
        let (tx, dept) = (tx.clone(), dept.clone());
        Box::pin(async move {
            let record = codec::encode(&instance(&dept, &name))?;
            let (reply, done) = oneshot::channel();
            tx.send((format!("/bench/raw/{dept}/{name}"), record, reply))
                .await
                .map_err(|_| anyhow::anyhow!("writer gone"))?;
            done.await?;
            Ok(0)
        })
    })
}

fn row(name: &str, t: &mut Tally) -> f64 {
    let rate = t.done as f64 / t.secs.max(1e-9);
    let h = t.hist();
    let (p50, p99) = (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    );
    let conflicts = t.conflicts;
    let done = t.done;
    println!("{name:<20} {rate:>12.0} {p50:>10.2} {p99:>10.2} {done:>10} {conflicts:>10}");
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds = env_or("STORE_BENCH_ROUNDS", 3);
    let secs = env_or("STORE_BENCH_SECS", 3);
    let clients = env_or("STORE_BENCH_CLIENTS", 64);
    let server = EtcdServer::start()?;
    let etcd: Arc<dyn Store> =
        Arc::new(EtcdStore::connect(EtcdConfig::new([server.endpoint()])).await?);
    let dir = tempfile::tempdir()?;
    let embedded: Arc<dyn Store> = if std::env::var_os("STORE_BENCH_MEMORY").is_some() {
        Arc::new(EmbeddedStore::in_memory()?)
    } else {
        Arc::new(EmbeddedStore::open(dir.path().join("bench.redb"))?)
    };
    let names = [
        "naive-etcd",
        "admission-etcd",
        "admission-embedded",
        "raw-batch-etcd",
    ];
    let mut tallies: Vec<Tally> = names.iter().map(|_| Tally::default()).collect();
    let raw_conflicts = Arc::new(AtomicU64::new(0));
    println!(
        "store-bench: {clients} clients, one hot department, {rounds} interleaved rounds of {secs} s per contender"
    );
    for round in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            let dept = format!("d{round}{i}");
            let store = if *name == "admission-embedded" {
                embedded.clone()
            } else {
                etcd.clone()
            };
            department(&*store, &dept).await?;
            let admission = Admission::new(store.clone(), AdmissionConfig::default());
            let reserve = match *name {
                "naive-etcd" => naive(store, dept.clone()),
                "raw-batch-etcd" => raw_batch(
                    store,
                    dept.clone(),
                    admission.max_batch(),
                    raw_conflicts.clone(),
                ),
                _ => ours(admission, dept.clone()),
            };
            drive(
                reserve,
                clients,
                secs,
                &format!("r{round}"),
                &mut tallies[i],
            )
            .await;
            eprintln!("round {}/{rounds}: {name} done", round + 1);
        }
    }
    println!(
        "\n{:<20} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "contender", "resv/s", "p50 ms", "p99 ms", "done", "conflicts"
    );
    let rates: Vec<f64> = names
        .iter()
        .zip(tallies.iter_mut())
        .map(|(n, t)| row(n, t))
        .collect();
    let p99_ours = tallies[1].hist().value_at_quantile(0.99) as f64 / 1000.0;
    let (naive_r, ours_r, emb_r, raw_r) = (rates[0], rates[1], rates[2], rates[3]);
    let check = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!("\nratios and targets:");
    println!(
        "  admission-etcd            {ours_r:>8.0} resv/s  (target >= 2000)      {}",
        check(ours_r >= 2000.0)
    );
    println!(
        "  admission-etcd p99        {p99_ours:>8.2} ms      (target <= 50)        {}",
        check(p99_ours <= 50.0)
    );
    println!(
        "  admission / naive         {:>8.1}x        (target >= 50x)       {}",
        ours_r / naive_r,
        check(ours_r >= 50.0 * naive_r)
    );
    println!(
        "  admission / raw ceiling   {:>8.2}x        (target >= 0.3x)      {}",
        ours_r / raw_r,
        check(ours_r >= 0.3 * raw_r)
    );
    println!(
        "  embedded / etcd           {:>8.2}x        (target >= 1.0x)      {}",
        emb_r / ours_r,
        check(emb_r >= ours_r)
    );
    drop(server);
    Ok(())
}
