//! Monitoring through the real binaries: `yunshu serve` with declared
//! foundations and departments creating resources over gRPC, scraped by a
//! real Prometheus (1 s interval, its own port and data directory, stopped
//! by PID). Every panel query of every dashboard in `charts/yunshu/dashboards`
//! is evaluated through Prometheus's HTTP API, for every value of the
//! dashboard's template variable, and must return series; every alert rule of
//! `charts/yunshu/files/alerts.yaml` is loaded by Prometheus and must
//! evaluate without error. A second test shows the series count does not
//! grow with the number of resources.
//!
//! The real OpenStack clouds and Ceph RGW (`YUNSHU_OPENSTACK_STATE`,
//! `YUNSHU_S3_CEPH_STATE`, required under `CI=true`) join the fleet beside
//! declared-capacity foundations: they are probed, swept and measured
//! through the adapter stack, while a zero per-foundation quota keeps this
//! test's resources off them so nothing is left on the clouds.

#[path = "../common/mod.rs"]
mod common;
mod dashboards;
mod fleet;
mod server;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::Serving;
use serde_json::Value;
use tonic::{Request, transport::Channel};
use yunshu_auth::{MintedToken, mint_api_token_with_id};
use yunshu_proto::api::v1::{
    self as pb, bucket_service_client::BucketServiceClient,
    instance_service_client::InstanceServiceClient,
};

use dashboards::*;
use fleet::*;
use server::*;

/// Families that other components export once they run against real clouds
/// (the adapter call stack, the prober, the provisioner and the sweeper). A
/// panel reading one of them may come back empty while the family has no
/// samples; as soon as it has samples, its panels must return series too.
const PENDING: [&str; 7] = [
    "yunshu_adapter_calls",
    "yunshu_adapter_call_duration_seconds",
    "yunshu_adapter_throttles",
    "yunshu_adapter_circuit_state",
    "yunshu_reconcile_errors",
    "yunshu_orphans",
    "yunshu_foundation_probe_latency_seconds",
];

/// The alerts `charts/yunshu/files/alerts.yaml` must define.
const ALERTS: [&str; 7] = [
    "FoundationDown",
    "FoundationDegraded",
    "CapacityLow",
    "QuotaNearLimit",
    "ProvisioningStuck",
    "ReconcileErrors",
    "HighAuthFailures",
];

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/yunshu")
}

/// `prometheus`, or `None` (with the one-line skip) when it is not installed
/// and this is not CI.
fn prometheus_binary() -> Option<PathBuf> {
    match yunshu_testenv::find_binary("prometheus", "YUNSHU_PROMETHEUS", &["/usr/bin/prometheus"]) {
        Ok(p) => Some(p),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "prometheus is not installed: run `bash e2e/monitoring/test.sh` (installs the Debian package `prometheus`) or `apt-get install prometheus`, or set YUNSHU_PROMETHEUS"
        ),
        Err(_) => {
            eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
            None
        }
    }
}

#[test]
fn every_panel_and_alert_evaluates_on_a_real_prometheus() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let fleet = start_fleet(
        &["health", "transport", "education"],
        8,
        &[
            ("x86-phase1", "openstack", Some("x86_64"), 64),
            ("kunpeng-1", "openstack", Some("aarch64"), 32),
            ("ceph-1", "s3", None, 0),
        ],
        true,
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let grpc = fleet.serving.grpc_url();
    let created = rt.block_on(async {
        let ch = Channel::from_shared(grpc)
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let t = |d: &str| fleet.tokens.get(d);
        let mut created = 0.0;
        for (dept, name, size) in [
            ("health", "web-1", (2, Some("arch:x86_64"))),
            ("health", "web-2", (2, Some("arch:x86_64"))),
            ("health", "arm-1", (4, Some("arch:aarch64"))),
            // The quota is 8 vCPU: full now.
            ("transport", "db-1", (8, Some("arch:aarch64"))),
            ("education", "big-1", (4, Some("arch:aarch64"))),
            // No foundation has the trait: Unschedulable.
            ("education", "xc-1", (2, Some("xinchuang"))),
        ] {
            create_instance(ch.clone(), t(dept), dept, name, size)
                .await
                .expect("create");
            created += 1.0;
        }
        // Repeated request id: the same object back.
        create_instance(
            ch.clone(),
            t("health"),
            "health",
            "web-1",
            (2, Some("arch:x86_64")),
        )
        .await
        .expect("repeat");
        let err = create_instance(ch.clone(), t("transport"), "transport", "db-2", (1, None))
            .await
            .expect_err("over quota");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        let err = create_instance(ch.clone(), None, "health", "anon", (1, None))
            .await
            .expect_err("no credentials");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
        let bucket = pb::CreateBucketRequest {
            parent: "departments/health".into(),
            bucket_id: "reports".into(),
            bucket: Some(pb::Bucket {
                spec: Some(pb::BucketSpec {
                    quota_bytes: 1 << 30,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: "req-bucket".into(),
        };
        BucketServiceClient::new(ch.clone())
            .create_bucket(authorized(t("health"), bucket))
            .await
            .expect("bucket");
        created + 1.0
    });
    let settled = settle(&fleet.serving, created);
    assert_eq!(
        phases(&settled).get("Unschedulable"),
        Some(&1.0),
        "{settled}"
    );
    drop(rt);

    let rules = chart_dir().join("files/alerts.yaml");
    let prom = Prometheus::start(&bin, fleet.serving.port, &rules);
    let deadline = Instant::now() + Duration::from_secs(60);
    while prom
        .value("count_over_time(yunshu_build_info{job=\"yunshu\"}[20s])")
        .is_none_or(|n| n < 6.0)
    {
        assert!(Instant::now() < deadline, "no scrapes:\n{}", prom.log());
        std::thread::sleep(Duration::from_millis(500));
    }

    let text = metrics_text(&fleet.serving);
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let sampled: BTreeSet<String> = samples(&text)
        .map(|l| family(&parse_sample(l).0, &families))
        .collect();

    let mut failures = Vec::new();
    let mut pending = Vec::new();
    // With real foundations every family has samples: no panel may be empty.
    let real_fleet = std::env::var("YUNSHU_OPENSTACK_STATE").is_ok()
        && std::env::var("YUNSHU_S3_CEPH_STATE").is_ok();
    let driven: Option<BTreeSet<String>> = real_fleet.then(|| {
        prom.api(&format!(
            "label/foundation/values?match[]={}",
            encode("yunshu_adapter_circuit_state")
        ))
        .map(|v| {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    });
    let queries = panel_queries(&prom, &mut failures, driven.as_ref());
    for (label, raw, expr) in &queries {
        let names = metric_names(raw);
        for n in &names {
            let f = family(n, &families);
            if !families.contains(&f) && !PENDING.contains(&f.as_str()) {
                failures.push(format!("{label}: unknown metric {n}"));
            }
        }
        match prom.query(expr) {
            Err(e) => failures.push(format!("{label}: `{expr}` failed: {e}")),
            Ok(0) => {
                let waiting: Vec<_> = names
                    .iter()
                    .map(|n| family(n, &families))
                    .filter(|f| PENDING.contains(&f.as_str()) && !sampled.contains(f))
                    .collect();
                if waiting.is_empty() || real_fleet {
                    failures.push(format!("{label}: `{expr}` returned no series"));
                } else {
                    pending.push(format!("{label} (waits for {})", waiting.join(", ")));
                }
            }
            Ok(_) => {}
        }
    }

    // The rules Prometheus loaded from the same file the chart renders.
    let deadline = Instant::now() + Duration::from_secs(30);
    let loaded = loop {
        let groups = prom.api("rules?type=alert").expect("rules");
        let rules: Vec<Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if !rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown") {
            break rules;
        }
        assert!(Instant::now() < deadline, "rules never evaluated: {groups}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let names: BTreeSet<&str> = loaded.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ALERTS.into_iter().collect(), "alerts loaded");
    for rule in &loaded {
        let (name, query) = (
            rule["name"].as_str().unwrap_or_default(),
            rule["query"].as_str().unwrap_or_default(),
        );
        if rule["health"] != "ok" {
            failures.push(format!(
                "alert {name}: {} {}",
                rule["health"], rule["lastError"]
            ));
        }
        if let Err(e) = prom.query(query) {
            failures.push(format!("alert {name}: `{query}` failed: {e}"));
        }
        for n in metric_names(query) {
            let f = family(&n, &families);
            if !families.contains(&f) && !PENDING.contains(&f.as_str()) {
                failures.push(format!("alert {name}: unknown metric {n}"));
            }
        }
    }
    eprintln!(
        "evaluated {} panel queries and {} alerts; {} panels wait for metrics of components not running here:\n  {}",
        queries.len(),
        loaded.len(),
        pending.len(),
        pending.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drop(prom);
    let (status, _) = fleet.serving.stop();
    assert!(status.success());
}

#[test]
fn series_do_not_grow_with_resources() {
    const DEPARTMENTS: usize = 10;
    const RESOURCES: usize = 1000;
    let names: Vec<String> = (0..DEPARTMENTS).map(|i| format!("dept-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let foundations = [
        ("x86-phase1", "openstack", Some("x86_64"), 600),
        ("kunpeng-1", "openstack", Some("aarch64"), 300),
        ("ceph-1", "s3", None, 0),
    ];
    let fleet = start_fleet(&refs, 1000, &foundations, false);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ch = rt.block_on(async {
        Channel::from_shared(fleet.serving.grpc_url())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    });
    let create = |range: std::ops::Range<usize>| {
        rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            // 50 streams; resource n goes to department n % 10.
            for stream in 0..50 {
                let (ch, tokens) = (ch.clone(), fleet.tokens.clone());
                let range = range.clone();
                tasks.spawn(async move {
                    for n in range.filter(|n| n % 50 == stream) {
                        let dept = format!("dept-{}", n % DEPARTMENTS);
                        create_instance(
                            ch.clone(),
                            tokens.get(&dept),
                            &dept,
                            &format!("vm-{n}"),
                            (1, None),
                        )
                        .await
                        .expect("create");
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.expect("task");
            }
        });
    };
    // One resource per department first, so every method and code the
    // creates use has its series; then 990 more.
    create(0..DEPARTMENTS);
    let before = settle(&fleet.serving, DEPARTMENTS as f64);
    let started = Instant::now();
    create(DEPARTMENTS..RESOURCES);
    let after = settle(&fleet.serving, RESOURCES as f64);
    let (n_before, n_after) = (samples(&before).count(), samples(&after).count());
    // Only the state families may grow: a resources series per kind, phase
    // and foundation (or none), and an oldest-age series per kind and moving phase.
    let (kinds, phases_n, moving) = (3, 7, 4);
    let bound = kinds * phases_n * (foundations.len() + 1) + kinds * moving;
    eprintln!(
        "{DEPARTMENTS} resources: {n_before} series; {RESOURCES} resources (created and scheduled in {:?}): {n_after} series; bound on growth {bound}; phases {:?}",
        started.elapsed(),
        phases(&after)
    );
    assert!(
        n_after <= n_before + bound,
        "series grew by {} for {} more resources (bound {bound})",
        n_after - n_before,
        RESOURCES - DEPARTMENTS
    );
    assert!(
        !after.contains("vm-"),
        "no label names a resource:\n{}",
        after
            .lines()
            .filter(|l| l.contains("vm-"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Capacity is 900 vCPU: 100 of the 1000 cannot be placed.
    let p = phases(&after);
    assert_eq!(p.get("Scheduled").copied(), Some(900.0), "{p:?}");
    assert_eq!(p.get("Unschedulable").copied(), Some(100.0), "{p:?}");
    drop(rt);
    let (status, _) = fleet.serving.stop();
    assert!(status.success());
}
