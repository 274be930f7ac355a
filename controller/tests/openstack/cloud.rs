//! The shared clouds and the `yunshu` each test runs against them: where
//! the clouds are, the lock the tests take, starting and stopping the
//! server, and driving it with `yunshuctl`.

use super::*;

pub(super) static CLOUDS: Mutex<()> = Mutex::new(());

pub(super) fn state_dir() -> Option<PathBuf> {
    if let Ok(s) = std::env::var("YUNSHU_OPENSTACK_STATE") {
        return Some(PathBuf::from(s));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "YUNSHU_OPENSTACK_STATE is not set: run `bash e2e/openstack/up.sh STATE` and export \
         YUNSHU_OPENSTACK_STATE=STATE (e2e/scripts/test.sh does both)"
    );
    eprintln!("skipped: YUNSHU_OPENSTACK_STATE is not set (bash e2e/openstack/up.sh STATE)");
    None
}

/// A running (or stopped) `yunshu` with the two clouds as foundations.
pub(super) struct Yunshu {
    served: Served,
    state: PathBuf,
    department: String,
    token: PathBuf,
    admin_token: String,
}

impl Yunshu {
    pub(super) fn new(state: &Path, department: &str) -> Self {
        let served = Served::new("3s", "info,yunshu_runtime=debug");
        let dir = served.dir().to_owned();
        let clouds: Value = serde_json::from_str(
            &std::fs::read_to_string(state.join("clouds.json")).expect("clouds.json"),
        )
        .expect("clouds.json parses");
        let mut foundations = String::new();
        for (name, arch) in [("x86-cloud", "x86_64"), ("kunpeng-cloud", "aarch64")] {
            let c = &clouds[name];
            let creds = dir.join(format!("{name}.credentials.yaml"));
            let mut map = BTreeMap::new();
            for key in [
                "username",
                "password",
                "project_name",
                "user_domain_name",
                "project_domain_name",
            ] {
                map.insert(key, c[key].as_str().expect("credential field").to_owned());
            }
            std::fs::write(&creds, serde_json::to_string(&map).expect("json"))
                .expect("write creds");
            foundations.push_str(&format!(
                "  - name: {name}\n    spec:\n      adapter: openstack\n      endpoint: \"{}\"\n      region: {}\n      traits: [\"arch:{arch}\"]\n      credentials: {{ path: \"{}\" }}\n      budget: {{ requestsPerSecond: 50, burst: 100 }}\n      capacity: {{ volume_gib: 1000 }}\n",
                c["auth_url"].as_str().expect("auth_url"),
                c["region_name"].as_str().expect("region"),
                creds.display()
            ));
        }
        let (token, identity, _) = mint(&dir, department, "operator");
        let (_, admin_identity, admin_token) = mint(&dir, "ops", "admin");
        let config = format!(
            "catalog:\n  maxDiskGib: 100\n  maxVolumeGib: 100\n  sizes:\n    - {{ name: c1m1, vcpu: 1, memoryMib: 1024 }}\n    - {{ name: c2m4, vcpu: 2, memoryMib: 4096 }}\n    - {{ name: c128m256, vcpu: 128, memoryMib: 262144 }}\n  images:\n    - {{ name: kylin-v10, architectures: [x86_64, aarch64] }}\n    - {{ name: openeuler-22.03, architectures: [x86_64, aarch64] }}\ndepartments:\n  - name: {department}\n    spec:\n      identities:\n        - {identity}\n      quota: {{ hard: {{ vcpu: 400, memory_mib: 1048576, disk_gib: 2000, volume_gib: 100 }} }}\n  - name: ops\n    spec:\n      identities:\n        - {admin_identity}\n      quota: {{ hard: {{ vcpu: 1 }} }}\nfoundations:\n{foundations}"
        );
        std::fs::write(dir.join("yunshu.yaml"), config).expect("config");
        let mut y = Self {
            served,
            state: state.to_owned(),
            department: department.to_owned(),
            token,
            admin_token,
        };
        y.start();
        y
    }

    pub(super) fn start(&mut self) {
        self.served.start();
    }

    pub(super) fn kill9(&mut self) {
        self.served.kill();
    }

    /// The embedded store's file; open it only while `yunshu` is stopped.
    pub(super) fn store_file(&self) -> PathBuf {
        self.served.store_file()
    }

    /// The department the test acts as.
    pub(super) fn department(&self) -> &str {
        &self.department
    }

    pub(super) fn logs(&self) -> String {
        let out = self.served.logs();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    pub(super) fn ctl(&self, args: &[&str]) -> Output {
        self.served.ctl(&self.department, &self.token, args)
    }

    pub(super) fn instance(&self, name: &str) -> Value {
        let out = self.ctl(&["-o", "json", "get", "instance", name]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub(super) fn wait_phase(&self, name: &str, phases: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.instance(name);
            let phase = v["status"]["phase"].as_str().unwrap_or_default().to_owned();
            if phases.iter().any(|p| phase.eq_ignore_ascii_case(p)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {phase:?}, never {phases:?}: {v}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The foundation's health word via the admin API (`HEALTH_READY`, …).
    pub(super) fn health(&self, foundation: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use yunshu_proto::api::v1::{
                GetFoundationRequest, admin_service_client::AdminServiceClient,
            };
            let Ok(mut c) =
                AdminServiceClient::connect(format!("http://127.0.0.1:{}", self.served.grpc_port))
                    .await
            else {
                return String::new();
            };
            let mut req = tonic::Request::new(GetFoundationRequest {
                name: format!("foundations/{foundation}"),
            });
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", self.admin_token)
                    .parse()
                    .expect("header"),
            );
            match c.get_foundation(req).await {
                Ok(r) => {
                    let f = r.into_inner().foundation.unwrap_or_default();
                    f.status
                        .map(|s| s.health().as_str_name().to_owned())
                        .unwrap_or_default()
                }
                Err(e) => format!("error: {e}"),
            }
        })
    }

    pub(super) fn wait_health(&self, foundation: &str, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let h = self.health(foundation);
            if h == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{foundation} is {h}, never {want}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Nova's servers on `cloud` (all projects).
    pub(super) fn servers(&self, cloud: &str) -> Vec<Value> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/openstack/lib/nova_servers.py");
        let out = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&self.state)
            .arg(cloud)
            .output()
            .expect("nova_servers.py");
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("servers json")
    }

    pub(super) fn servers_with_uid(&self, cloud: &str, uid: &str) -> Vec<Value> {
        self.servers(cloud)
            .into_iter()
            .filter(|s| s["metadata"]["yunshu-uid"].as_str() == Some(uid))
            .collect()
    }
}

pub(super) fn uid_of(v: &Value) -> String {
    v["metadata"]["uid"]
        .as_str()
        .or_else(|| v["meta"]["uid"].as_str())
        .or_else(|| v["uid"].as_str())
        .unwrap_or_default()
        .to_owned()
}

pub(super) fn create(
    y: &Yunshu,
    name: &str,
    arch: &str,
    size: (&str, &str),
    wait: bool,
) -> (Output, Duration) {
    let started = Instant::now();
    let mut args = vec![
        "create",
        "instance",
        name,
        "--vcpu",
        size.0,
        "--memory",
        size.1,
        "--disk",
        "1Gi",
        "--image",
        "kylin-v10",
    ];
    let require = format!("arch:{arch}");
    args.extend(["--require", &require]);
    if wait {
        args.extend(["--wait", "--timeout", "3m"]);
    }
    let out = y.ctl(&args);
    (out, started.elapsed())
}

pub(super) fn delete_and_wait_gone(y: &Yunshu, name: &str, cloud: &str, uid: &str) {
    let out = y.ctl(&["delete", "instance", name, "--wait", "--timeout", "2m"]);
    assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !y.servers_with_uid(cloud, uid).is_empty() {
        assert!(Instant::now() < deadline, "server {uid} still in Nova");
        std::thread::sleep(Duration::from_millis(500));
    }
}
