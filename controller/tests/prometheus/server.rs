//! A real Prometheus scraping the fleet, stopped by PID when dropped.

use super::*;

/// A real Prometheus scraping one target, stopped by PID when dropped.
pub(super) struct Prometheus {
    pub(super) child: Child,
    pub(super) port: u16,
    pub(super) dir: tempfile::TempDir,
}

impl Prometheus {
    pub(super) fn start(bin: &Path, target_port: u16, rules: &Path) -> Self {
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

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: the `data` on success, the error otherwise.
    pub(super) fn api(&self, path: &str) -> Result<Value, String> {
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
    pub(super) fn query(&self, expr: &str) -> Result<usize, String> {
        let data = self.api(&format!("query?query={}", encode(expr)))?;
        Ok(match data["resultType"].as_str() {
            Some("vector" | "matrix") => data["result"].as_array().map_or(0, Vec::len),
            _ => 1,
        })
    }

    /// The single value of an instant query, if it returned one series.
    pub(super) fn value(&self, expr: &str) -> Option<f64> {
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
