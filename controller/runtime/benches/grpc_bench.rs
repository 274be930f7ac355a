//! `grpc-bench`: our `CreateInstance` — the full stack as `yunshu serve`
//! runs it ([`yunshu_runtime::grpc::serve_on`]): metrics layer, API-token
//! authentication layer, validation, group-committed admission on the
//! embedded store (write-ahead log, fsync) — against a raw tonic echo that
//! decodes the same request and answers a message of the same size (a copy
//! of our first answer) with no other work, over the same kind of client,
//! in interleaved rounds. Both servers run in this process under one
//! allocator (mimalloc, as the `yunshu` binary) and one tracing setup.
//!
//! Two figures: saturation throughput (closed loop, `GRPC_BENCH_CLIENTS`
//! concurrent callers, default 64) and latency at half of echo's saturation
//! (open loop at a fixed rate, latency from each request's scheduled start,
//! so a stall is not hidden); for reference, latency at half of our own
//! saturation too. Each of our rounds ends once the store has checkpointed
//! what the round wrote, and our throughput counts that time and CPU.
//!
//! Run: `cargo bench -p yunshu-runtime --bench grpc-bench`
//! (`GRPC_BENCH_ROUNDS`, default 3; `GRPC_BENCH_SECS`, default 3;
//! `GRPC_BENCH_STORE=memory` for an in-memory store, which isolates the
//! disk's share; `GRPC_BENCH_ONLY=create` or `=echo` runs only that side's
//! saturation rounds, for profiling one side with `perf record`, or its
//! open-loop rounds at `GRPC_BENCH_RATE` calls/s when that is set).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tonic::{Request, Response, Status, transport::Channel};
use yunshu_auth::{AuthConfig, Authenticator, IdentityIndex, MintedToken, mint_api_token_with_id};
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    catalog::Catalog,
    codec, keys,
    model::{Department, DepartmentSpec, Role},
    store::{Store, StoreExt},
};
use yunshu_grpc::Api;
use yunshu_proto::api::v1::{
    self as pb,
    instance_service_client::InstanceServiceClient,
    instance_service_server::{InstanceService, InstanceServiceServer},
};
use yunshu_runtime::{grpc::serve_on, metrics::Metrics};
use yunshu_store::EmbeddedStore;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Answers `CreateInstance` with a message the size of our answer: the
/// instance our server answered the first create with, cloned. It decodes
/// the request and encodes the answer like ours, and does nothing else.
#[derive(Clone)]
struct Echo(Arc<pb::CreateInstanceResponse>);

#[tonic::async_trait]
impl InstanceService for Echo {
    async fn create_instance(
        &self,
        r: Request<pb::CreateInstanceRequest>,
    ) -> Result<Response<pb::CreateInstanceResponse>, Status> {
        drop(r.into_inner());
        Ok(Response::new((*self.0).clone()))
    }
    async fn get_instance(
        &self,
        _: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
    async fn list_instances(
        &self,
        _: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
    async fn delete_instance(
        &self,
        _: Request<pb::DeleteInstanceRequest>,
    ) -> Result<Response<pb::DeleteInstanceResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
    type WatchInstancesStream = yunshu_grpc::services::WatchStream<pb::WatchInstancesResponse>;
    async fn watch_instances(
        &self,
        _: Request<pb::WatchInstancesRequest>,
    ) -> Result<Response<Self::WatchInstancesStream>, Status> {
        Err(Status::unimplemented("echo"))
    }
    async fn start_instance(
        &self,
        _: Request<pb::StartInstanceRequest>,
    ) -> Result<Response<pb::StartInstanceResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
    async fn stop_instance(
        &self,
        _: Request<pb::StopInstanceRequest>,
    ) -> Result<Response<pb::StopInstanceResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
    async fn reboot_instance(
        &self,
        _: Request<pb::RebootInstanceRequest>,
    ) -> Result<Response<pb::RebootInstanceResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
    async fn resize_instance(
        &self,
        _: Request<pb::ResizeInstanceRequest>,
    ) -> Result<Response<pb::ResizeInstanceResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
}

async fn listener() -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

async fn start_echo(answer: pb::CreateInstanceResponse) -> anyhow::Result<SocketAddr> {
    let (l, addr) = listener().await?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(InstanceServiceServer::new(Echo(Arc::new(answer))))
            .serve_with_incoming(yunshu_runtime::grpc::incoming(l)),
    );
    Ok(addr)
}

async fn start_ours(
    dir: &std::path::Path,
    token: &MintedToken,
) -> anyhow::Result<(SocketAddr, Arc<EmbeddedStore>)> {
    // GRPC_BENCH_STORE=memory isolates the store's share of the cost.
    let embedded = Arc::new(
        if std::env::var("GRPC_BENCH_STORE").as_deref() == Ok("memory") {
            EmbeddedStore::in_memory()?
        } else {
            EmbeddedStore::open(dir.join("bench.redb"))?
        },
    );
    let store: Arc<dyn Store> = embedded.clone();
    let dept = Department::new(
        None,
        "bench",
        DepartmentSpec {
            identities: vec![token.identity(Role::Operator)],
            ..DepartmentSpec::default()
        },
    );
    store
        .put(&keys::department("bench"), codec::encode(&dept)?)
        .await?;
    let index = IdentityIndex::from_departments([&dept]);
    let auth = Authenticator::new(&AuthConfig::default(), index).await?;
    let api = Api {
        admission: Admission::new(store.clone(), AdmissionConfig::default()),
        store,
        catalog: Arc::new(Catalog::default()),
        placement: None,
        actions: None,
        crds_own_config: false,
        currency: "CNY".into(),
    };
    let (l, addr) = listener().await?;
    let metrics = Arc::new(Metrics::new());
    metrics.watch_auth(auth.clone());
    tokio::spawn(async move {
        let served = serve_on(
            tonic::transport::Server::builder(),
            api,
            &auth,
            metrics,
            l,
            std::future::pending(),
        )
        .await;
        if let Err(e) = served {
            eprintln!("create server: {e}");
        }
    });
    Ok((addr, embedded))
}

fn request(n: u64, bearer: &str) -> Request<pb::CreateInstanceRequest> {
    let mut r = Request::new(pb::CreateInstanceRequest {
        parent: "departments/bench".into(),
        instance_id: format!("vm-{n}"),
        instance: Some(pb::Instance {
            metadata: None,
            spec: Some(pb::InstanceSpec {
                vcpu: 2,
                memory_mib: 4096,
                disk_gib: 40,
                image: "kylin-v10".into(),
                ..Default::default()
            }),
            status: None,
        }),
        request_id: format!("req-{n}"),
    });
    if let Ok(v) = bearer.parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

struct Target {
    name: &'static str,
    channels: Vec<Channel>,
    bearer: String,
    next: Arc<std::sync::atomic::AtomicU64>,
    /// Our store: a round ends once its background work (checkpoints) is
    /// done, so that work counts against the round that caused it and
    /// does not slow the echo round after it.
    store: Option<Arc<EmbeddedStore>>,
}

impl Target {
    async fn new(name: &'static str, addr: SocketAddr, bearer: String) -> anyhow::Result<Self> {
        let mut channels = Vec::new();
        for _ in 0..4 {
            channels.push(
                Channel::from_shared(format!("http://{addr}"))?
                    .connect()
                    .await?,
            );
        }
        Ok(Self {
            name,
            channels,
            bearer,
            next: Arc::default(),
            store: None,
        })
    }

    /// Waits for our store's background work to finish (see `store`).
    async fn settle(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.settle().await
        {
            eprintln!("{}: settling the store failed: {e}", self.name);
        }
    }

    fn call(&self) -> impl Future<Output = Result<(), Status>> + Send + 'static {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let channel = self.channels[usize::try_from(n % 4).unwrap_or(0)].clone();
        let req = request(n, &self.bearer);
        async move {
            InstanceServiceClient::new(channel)
                .create_instance(req)
                .await?;
            Ok(())
        }
    }
}

/// CPU time this process has used (user + system), from /proc.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<u64> = s
                .rsplit(')')
                .next()?
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>())
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Closed loop: `clients` callers back to back for `secs`; returns calls/s
/// and the process CPU time per call in microseconds.
async fn saturate(t: &Target, clients: u64, secs: u64, h: &mut Histogram<u64>) -> (f64, f64) {
    let cpu0 = cpu_time();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let t = Target {
                name: t.name,
                channels: t.channels.clone(),
                bearer: t.bearer.clone(),
                next: t.next.clone(),
                store: None,
            };
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    if let Err(e) = t.call().await {
                        eprintln!("{}: {e}", t.name);
                        continue;
                    }
                    lat.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                lat
            })
        })
        .collect();
    let mut done = 0u64;
    for task in tasks {
        for l in task.await.unwrap_or_default() {
            h.saturating_record(l.max(1));
            done += 1;
        }
    }
    t.settle().await;
    let cpu = (cpu_time() - cpu0).as_secs_f64() * 1e6 / done.max(1) as f64;
    (done as f64 / start.elapsed().as_secs_f64(), cpu)
}

/// Open loop at `rate` calls/s for `secs`; latency from the scheduled start.
async fn at_rate(t: &Target, rate: f64, secs: u64, h: &mut Histogram<u64>) {
    let start = Instant::now();
    let total = (rate * secs as f64) as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
        while sent < due {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / rate);
            let call = t.call();
            let tx = tx.clone();
            tokio::spawn(async move {
                let ok = call.await.is_ok();
                let _ = tx.send((ok, scheduled.elapsed()));
            });
            sent += 1;
        }
    }
    drop(tx);
    while let Some((ok, lat)) = rx.recv().await {
        if ok {
            record(h, lat);
        }
    }
    t.settle().await;
}

/// Both servers at `rate` (open loop, interleaved rounds); prints and
/// returns their latency histograms.
async fn latency(
    echo: &Target,
    ours: &Target,
    rate: f64,
    rounds: u64,
    secs: u64,
    whose: &str,
) -> (Histogram<u64>, Histogram<u64>) {
    let (mut le, mut lo) = (hist(), hist());
    for r in 0..rounds {
        at_rate(echo, rate, secs, &mut le).await;
        at_rate(ours, rate, secs, &mut lo).await;
        eprintln!("latency round {}/{rounds} done", r + 1);
    }
    println!("\nat half of {whose} saturation ({rate:.0} calls/s, open loop)   p50 ms     p99 ms");
    for (name, h) in [("raw-echo           ", &le), ("create (full stack)", &lo)] {
        println!(
            "  {name}                          {:>10.3} {:>10.3}",
            ms(h, 0.5),
            ms(h, 0.99)
        );
    }
    (le, lo)
}

/// The latency floor a durable write has on this disk: `fdatasync` after
/// an 8 KiB write, 200 times, in the store's directory; p50 and p99 in us.
fn sync_latency(dir: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    let path = dir.join("sync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [7u8; 8192];
    let mut h = hist();
    for _ in 0..200 {
        f.write_all(&block)?;
        let t = Instant::now();
        f.sync_data()?;
        record(&mut h, t.elapsed());
    }
    drop(f);
    std::fs::remove_file(path)?;
    Ok((
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
    ))
}

/// Records a latency in microseconds (at least 1).
fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // As under `yunshu serve`, a subscriber is installed, so the libraries'
    // trace spans are off rather than forwarded to `log` (what `tracing`
    // does when no subscriber was ever set); both servers gain alike.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let rounds = env_or("GRPC_BENCH_ROUNDS", 3);
    let secs = env_or("GRPC_BENCH_SECS", 3);
    let clients = env_or("GRPC_BENCH_CLIENTS", 64);
    let dir = tempfile::tempdir()?;
    let token = mint_api_token_with_id("bench")?;
    let bearer = format!("Bearer {}", token.token.expose());
    let (addr, store) = start_ours(dir.path(), &token).await?;
    let mut ours = Target::new("create", addr, bearer.clone()).await?;
    ours.store = Some(store);
    // Echo answers with what ours answered, so both send same-size messages.
    let first = InstanceServiceClient::new(ours.channels[0].clone())
        .create_instance(request(u64::MAX, &ours.bearer))
        .await?
        .into_inner();
    let size = prost::Message::encoded_len(&first);
    let echo = Target::new("raw-echo", start_echo(first).await?, bearer).await?;
    println!(
        "grpc-bench: CreateInstance (auth + validation + admission + embedded store) vs raw tonic echo; {clients} clients; {rounds} rounds of {secs} s; answers of {size} bytes"
    );
    if std::env::var("GRPC_BENCH_STORE").as_deref() != Ok("memory") {
        let (p50, p99) = sync_latency(dir.path())?;
        println!(
            "disk under the store: fdatasync of an 8 KiB append p50 {p50:.0} us, p99 {p99:.0} us (a durable create waits for at least one)"
        );
    }

    if let Ok(only) = std::env::var("GRPC_BENCH_ONLY") {
        let t = if only == "echo" { &echo } else { &ours };
        let fixed = std::env::var("GRPC_BENCH_RATE")
            .ok()
            .and_then(|r| r.parse::<f64>().ok());
        for _ in 0..rounds {
            let mut h = hist();
            let line = match fixed {
                Some(rate) => {
                    at_rate(t, rate, secs, &mut h).await;
                    format!("{rate:>12.0} calls/s (open loop)")
                }
                None => {
                    let (rate, cpu) = saturate(t, clients, secs, &mut h).await;
                    format!("{rate:>12.0} calls/s {cpu:>8.0} us CPU/call")
                }
            };
            println!(
                "  {:<20} {line}   p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                t.name,
                ms(&h, 0.5),
                ms(&h, 0.99),
                h.max() as f64 / 1000.0
            );
        }
        return Ok(());
    }

    let (mut he, mut ho) = (hist(), hist());
    let (mut re, mut ro, mut ce, mut co) = (0.0, 0.0, 0.0, 0.0);
    for r in 0..rounds {
        let (rate, cpu) = saturate(&echo, clients, secs, &mut he).await;
        re += rate;
        ce += cpu;
        let (rate, cpu) = saturate(&ours, clients, secs, &mut ho).await;
        ro += rate;
        co += cpu;
        eprintln!("saturation round {}/{rounds} done", r + 1);
    }
    let n = rounds as f64;
    let (re, ro, ce, co) = (re / n, ro / n, ce / n, co / n);
    println!(
        "\nsaturation (closed loop)     calls/s     p50 ms     p99 ms   CPU us/call (client+server)"
    );
    println!(
        "  raw-echo              {re:>12.0} {:>10.2} {:>10.2} {ce:>10.0}",
        ms(&he, 0.5),
        ms(&he, 0.99)
    );
    println!(
        "  create (full stack)   {ro:>12.0} {:>10.2} {:>10.2} {co:>10.0}",
        ms(&ho, 0.5),
        ms(&ho, 0.99)
    );

    let (le, lo) = latency(&echo, &ours, re / 2.0, rounds, secs, "echo's").await;
    // For reference, where our side is not overloaded: half of its own
    // saturation, both servers at that rate.
    let _ = latency(&echo, &ours, ro / 2.0, rounds, secs, "create's").await;
    let ratio = ro / re;
    let dp99_us = (lo.value_at_quantile(0.99) as f64) - (le.value_at_quantile(0.99) as f64);
    let check = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!("\ntargets:");
    println!(
        "  create / echo throughput   {ratio:>8.2}x   (target >= 0.7x)     {}",
        check(ratio >= 0.7)
    );
    println!(
        "  delta p99 at half load     {dp99_us:>8.0} us  (target <= 300 us)   {}",
        check(dp99_us <= 300.0)
    );
    Ok(())
}
