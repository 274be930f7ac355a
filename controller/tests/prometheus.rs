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

mod common;

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

// ---------------------------------------------------------------- HTTP

/// A GET over HTTP/1.0 (no chunking to undo); the status and the body.
fn http_get(port: u16, target: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn metrics_text(serving: &Serving) -> String {
    let (code, body) = http_get(serving.port, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// Sample lines of a metrics text (no comments).
fn samples(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A sample's labels as a map, and its value.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
    let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
    let labels = labels
        .trim_end_matches('}')
        .split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once("=\""))
        .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
        .collect();
    (name.to_owned(), labels, value.parse().unwrap_or(f64::NAN))
}

/// `yunshu_resources` summed by phase.
fn phases(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, labels, v) in samples(text).map(parse_sample) {
        if name == "yunshu_resources" {
            *out.entry(labels["phase"].clone()).or_default() += v;
        }
    }
    out
}

// ---------------------------------------------------------------- the fleet

/// A running `yunshu` with declared foundations and departments.
struct Fleet {
    _dir: tempfile::TempDir,
    serving: Serving,
    tokens: BTreeMap<String, MintedToken>,
}

/// (name, adapter, arch, vCPU capacity)
type FoundationDecl = (&'static str, &'static str, Option<&'static str>, u64);

/// The real foundations to add, as config YAML, and the per-foundation
/// quota entries that keep resources off them; empty when none is set up.
fn real_foundations(dir: &Path) -> (String, String) {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let (mut yaml, mut fences) = (String::new(), Vec::new());
    match std::env::var("YUNSHU_OPENSTACK_STATE") {
        Ok(state) => {
            let clouds: Value = serde_json::from_str(
                &std::fs::read_to_string(Path::new(&state).join("clouds.json"))
                    .expect("clouds.json"),
            )
            .expect("clouds.json parses");
            for (name, arch) in [("x86-cloud", "x86_64"), ("kunpeng-cloud", "aarch64")] {
                let c = &clouds[name];
                let creds = dir.join(format!("{name}.json"));
                let keys = [
                    "username",
                    "password",
                    "project_name",
                    "user_domain_name",
                    "project_domain_name",
                ];
                let map: BTreeMap<&str, &str> = keys
                    .iter()
                    .map(|k| (*k, c[*k].as_str().unwrap_or_default()))
                    .collect();
                std::fs::write(&creds, serde_json::to_string(&map).expect("json")).expect("creds");
                yaml += &format!(
                    "  - name: {name}\n    spec: {{ adapter: openstack, endpoint: \"{}\", region: {}, traits: [\"arch:{arch}\"], credentials: {{ path: \"{}\" }} }}\n",
                    c["auth_url"].as_str().unwrap_or_default(),
                    c["region_name"].as_str().unwrap_or_default(),
                    creds.display()
                );
                fences.push(format!("{name}: {{ vcpu: 0, memory_mib: 0 }}"));
            }
        }
        Err(_) => assert!(
            !ci,
            "YUNSHU_OPENSTACK_STATE is required in CI (e2e/scripts/test.sh sets it)"
        ),
    }
    match std::env::var("YUNSHU_S3_CEPH_STATE") {
        Ok(state) => {
            let env: BTreeMap<String, String> =
                std::fs::read_to_string(Path::new(&state).join("env"))
                    .expect("env")
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
            let creds = dir.join("ceph.json");
            std::fs::write(
                &creds,
                serde_json::json!({"access_key": env["S3_ADMIN_ACCESS_KEY"], "secret_key": env["S3_ADMIN_SECRET_KEY"]})
                    .to_string(),
            )
            .expect("creds");
            yaml += &format!(
                "  - name: ceph-rgw\n    spec: {{ adapter: s3, endpoint: \"{}\", settings: {{ dialect: {} }}, capacity: {{ buckets: 100, bucket_bytes: 1000000000000 }}, credentials: {{ path: \"{}\" }} }}\n",
                env["S3_ENDPOINT"],
                env["S3_DIALECT"],
                creds.display()
            );
            fences.push("ceph-rgw: { buckets: 0, bucket_bytes: 0 }".to_owned());
        }
        Err(_) => assert!(
            !ci,
            "YUNSHU_S3_CEPH_STATE is required in CI (e2e/scripts/test.sh sets it)"
        ),
    }
    (yaml, fences.join(", "))
}

fn start_fleet(
    departments: &[&str],
    vcpu_quota: u64,
    foundations: &[FoundationDecl],
    with_real: bool,
) -> Fleet {
    let dir = tempfile::tempdir().expect("tempdir");
    let (real, fences) = if with_real {
        real_foundations(dir.path())
    } else {
        (String::new(), String::new())
    };
    let mut config = String::from("departments:\n");
    let mut tokens = BTreeMap::new();
    for d in departments {
        let token = mint_api_token_with_id(&format!("{d}-ci")).expect("mint");
        config += &format!(
            "  - name: {d}\n    spec:\n      identities:\n        - {{ type: apiToken, id: {}, sha256: \"{}\", role: operator }}\n      quota: {{ hard: {{ vcpu: {vcpu_quota}, memory_mib: {}, buckets: 10 }}, perFoundation: {{ {fences} }} }}\n",
            token.id,
            token.sha256,
            vcpu_quota * 2048
        );
        tokens.insert((*d).to_owned(), token);
    }
    config += "foundations:\n";
    for (name, adapter, arch, vcpu) in foundations {
        let (traits, capacity) = match arch {
            Some(a) => (
                format!("[\"arch:{a}\"]"),
                format!(
                    "{{ vcpu: {vcpu}, memory_mib: {}, disk_gib: 1000000 }}",
                    vcpu * 2048
                ),
            ),
            None => (
                "[]".to_owned(),
                "{ buckets: 100, bucket_bytes: 10000000000000 }".to_owned(),
            ),
        };
        config += &format!(
            "  - name: {name}\n    spec: {{ adapter: {adapter}, endpoint: \"http://127.0.0.1:9/\", traits: {traits}, capacity: {capacity} }}\n"
        );
    }
    config += &real;
    let path = dir.path().join("yunshu.yaml");
    std::fs::write(&path, config).expect("write config");
    let serving = Serving::start(&[
        "--store",
        "memory",
        "--probe-interval",
        "1s",
        "--sweep-interval",
        "2s",
        "--config",
        path.to_str().expect("utf8"),
    ]);
    Fleet {
        _dir: dir,
        serving,
        tokens,
    }
}

fn authorized<T>(token: Option<&MintedToken>, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(t) = token {
        let value = format!("Bearer {}", t.token.expose());
        r.metadata_mut()
            .insert("authorization", value.parse().expect("ascii"));
    }
    r
}

async fn create_instance(
    channel: Channel,
    token: Option<&MintedToken>,
    department: &str,
    name: &str,
    (vcpu, required): (u32, Option<&str>),
) -> Result<(), tonic::Status> {
    let request = pb::CreateInstanceRequest {
        parent: format!("departments/{department}"),
        instance_id: name.into(),
        instance: Some(pb::Instance {
            metadata: None,
            spec: Some(pb::InstanceSpec {
                vcpu,
                memory_mib: u64::from(vcpu) * 2048,
                disk_gib: 10,
                image: "kylin-v10".into(),
                constraints: required.map(|t| pb::Constraints {
                    required_traits: vec![t.to_owned()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }),
        request_id: format!("req-{name}"),
    };
    InstanceServiceClient::new(channel)
        .create_instance(authorized(token, request))
        .await
        .map(|_| ())
}

/// Waits until no resource is Pending and `total` exist; returns the metrics text.
fn settle(serving: &Serving, total: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = metrics_text(serving);
        let p = phases(&text);
        if p.values().sum::<f64>() == total && !p.contains_key("Pending") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "resources did not settle at {total}: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------- Prometheus

/// A real Prometheus scraping one target, stopped by PID when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &Path, target_port: u16, rules: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = yunshu_testenv::free_port().expect("port");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: yunshu\n    static_configs: [{{ targets: [\"127.0.0.1:{target_port}\"] }}]\n",
                rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(port, "/-/ready") {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: the `data` on success, the error otherwise.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (code, body) =
            http_get(self.port, &format!("/api/v1/{path}")).map_err(|e| e.to_string())?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {code}: {e}: {body}"))?;
        match v["status"].as_str() {
            Some("success") => Ok(v["data"].clone()),
            _ => Err(format!(
                "HTTP {code}: {}",
                v["error"].as_str().unwrap_or(&body)
            )),
        }
    }

    /// An instant query: how many series (or 1 for a scalar) it returned.
    fn query(&self, expr: &str) -> Result<usize, String> {
        let data = self.api(&format!("query?query={}", encode(expr)))?;
        Ok(match data["resultType"].as_str() {
            Some("vector" | "matrix") => data["result"].as_array().map_or(0, Vec::len),
            _ => 1,
        })
    }

    /// The single value of an instant query, if it returned one series.
    fn value(&self, expr: &str) -> Option<f64> {
        let data = self.api(&format!("query?query={}", encode(expr))).ok()?;
        data["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- dashboards

/// The `yunshu_*` metric names an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("yunshu_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// The family a sample or query name belongs to.
fn family(name: &str, families: &BTreeSet<String>) -> String {
    for suffix in ["_total", "_bucket", "_sum", "_count", "_created", ""] {
        if let Some(base) = name.strip_suffix(suffix)
            && (families.contains(base) || PENDING.contains(&base))
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

/// Every (dashboard, panel, expression) with `$variable` bound to each of
/// its values, and the variable values themselves.
fn panel_queries(
    prom: &Prometheus,
    failures: &mut Vec<String>,
    driven: Option<&BTreeSet<String>>,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(chart_dir().join("dashboards"))
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "four dashboards: {files:?}");
    for file in files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
            .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        // One bound variable per dashboard at most (foundation or department).
        let mut bindings: Vec<Option<(String, String)>> = vec![None];
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] != "query" {
                continue;
            }
            let var_name = var["name"].as_str().expect("variable name");
            let q = var["query"]["query"].as_str().expect("variable query");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.split_once(", ").expect("two arguments");
            let values = prom
                .api(&format!("label/{label}/values?match[]={}", encode(metric)))
                .map(|v| v.as_array().cloned().unwrap_or_default())
                .unwrap_or_default();
            if values.is_empty() {
                failures.push(format!("{name}: variable ${var_name} ({q}) has no values"));
            }
            bindings = values
                .iter()
                .filter_map(Value::as_str)
                // With real foundations, a foundation's detail dashboard is
                // checked for the foundations Yunshu drives.
                .filter(|v| var_name != "foundation" || driven.is_none_or(|d| d.contains(*v)))
                .map(|v| Some((var_name.to_owned(), v.to_owned())))
                .collect();
        }
        for panel in d["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("expr");
                for binding in &bindings {
                    let mut e = expr.replace("$__rate_interval", "20s");
                    let mut label = format!("{name} / {title}");
                    if let Some((var, value)) = binding {
                        e = e
                            .replace(&format!("${{{var}}}"), value)
                            .replace(&format!("${var}"), value);
                        label += &format!(" [{var}={value}]");
                    }
                    out.push((label, expr.to_owned(), e));
                }
            }
        }
    }
    out
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
