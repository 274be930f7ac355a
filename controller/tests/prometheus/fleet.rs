//! The fleet under test: `yunshu serve` with declared and real foundations,
//! departments creating resources over gRPC, and its metrics read over HTTP.

use super::*;

/// A GET over HTTP/1.0 (no chunking to undo); the status and the body.
pub(super) fn http_get(port: u16, target: &str) -> std::io::Result<(u16, String)> {
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
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn metrics_text(serving: &Serving) -> String {
    let (code, body) = http_get(serving.port, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// Sample lines of a metrics text (no comments).
pub(super) fn samples(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A sample's labels as a map, and its value.
pub(super) fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
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
pub(super) fn phases(text: &str) -> BTreeMap<String, f64> {
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
pub(super) struct Fleet {
    pub(super) _dir: tempfile::TempDir,
    pub(super) serving: Serving,
    pub(super) tokens: BTreeMap<String, MintedToken>,
}

/// (name, adapter, arch, vCPU capacity)
type FoundationDecl = (&'static str, &'static str, Option<&'static str>, u64);

/// The real foundations to add, as config YAML, and the per-foundation
/// quota entries that keep resources off them; empty when none is set up.
pub(super) fn real_foundations(dir: &Path) -> (String, String) {
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

pub(super) fn start_fleet(
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

pub(super) fn authorized<T>(token: Option<&MintedToken>, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(t) = token {
        let value = format!("Bearer {}", t.token.expose());
        r.metadata_mut()
            .insert("authorization", value.parse().expect("ascii"));
    }
    r
}

pub(super) async fn create_instance(
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
pub(super) fn settle(serving: &Serving, total: f64) -> String {
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
