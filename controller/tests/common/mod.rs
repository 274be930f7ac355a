//! Running the real `yunshu` binary in tests: start it on free ports, wait
//! until ready, stop it with SIGTERM (or kill it when the test fails).

#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use yunshu_testenv::free_port;

pub const BIN: &str = env!("CARGO_BIN_EXE_yunshu");
pub const CTL: &str = env!("CARGO_BIN_EXE_yunshuctl");

/// `yunshu serve` on the embedded store under `dir` (data in `dir/data`,
/// configuration in `dir/yunshu.yaml`), probing and metering every second, sweeping
/// every `sweep`, on the given loopback ports, logging at `filter` to `log`.
pub fn spawn_serve(
    dir: &std::path::Path,
    (admin_port, grpc_port): (u16, u16),
    sweep: &str,
    filter: &str,
    log: std::fs::File,
) -> Child {
    Command::new(BIN)
        .arg("serve")
        .args([
            "--store",
            "embedded",
            "--probe-interval",
            "1s",
            "--meter-interval",
            "1s",
            "--sweep-interval",
            sweep,
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("yunshu.yaml"))
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .arg(format!("--grpc-addr=127.0.0.1:{grpc_port}"))
        .env("YUNSHU_LOG", filter)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn yunshu")
}

/// Waits up to 30 s until `yunshu` answers `/readyz` on `admin_port`; if
/// `child` exits first or never gets ready, kills it and panics with
/// `logs()`.
pub fn wait_ready(admin_port: u16, child: &mut Child, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(admin_port, "/readyz").map(|r| r.0) != Some(200) {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("yunshu not ready ({exited:?}):\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `yunshu serve` in a temporary directory that a test can kill, as a
/// crash would, and start again on the same ports and data; each start
/// logs to a file of its own. Write `yunshu.yaml` into [`Served::dir`]
/// before the first [`Served::start`]. Killed when dropped.
pub struct Served {
    dir: tempfile::TempDir,
    pub admin_port: u16,
    pub grpc_port: u16,
    sweep: &'static str,
    filter: &'static str,
    child: Option<Child>,
    starts: u32,
}

impl Served {
    /// Not started yet: sweeping every `sweep`, logging at `filter`.
    pub fn new(sweep: &'static str, filter: &'static str) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            admin_port: free_port().expect("port"),
            grpc_port: free_port().expect("port"),
            sweep,
            filter,
            child: None,
            starts: 0,
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts it and waits until it is ready.
    pub fn start(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_file(self.starts)).expect("log");
        let mut child = spawn_serve(
            self.dir(),
            (self.admin_port, self.grpc_port),
            self.sweep,
            self.filter,
            log,
        );
        wait_ready(self.admin_port, &mut child, || self.logs());
        self.child = Some(child);
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_file(&self, start: u32) -> std::path::PathBuf {
        self.dir().join(format!("yunshu.{start}.log"))
    }

    /// What every start logged, in order.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| std::fs::read_to_string(self.log_file(i)).unwrap_or_default())
            .collect()
    }

    /// The embedded store's file; open it only while killed.
    pub fn store_file(&self) -> std::path::PathBuf {
        self.dir().join("data").join("yunshu.redb")
    }

    /// Runs `yunshuctl` against it as `department` with `token_file`.
    pub fn ctl(
        &self,
        department: &str,
        token_file: &std::path::Path,
        args: &[&str],
    ) -> std::process::Output {
        Command::new(CTL)
            .args([
                "--endpoint",
                &format!("http://127.0.0.1:{}", self.grpc_port),
                "--department",
                department,
                "--token-file",
            ])
            .arg(token_file)
            .args(args)
            .env_remove("YUNSHU_TOKEN")
            .env_remove("YUNSHUCTL_CONFIG")
            .env("XDG_CONFIG_HOME", self.dir())
            .output()
            .expect("yunshuctl")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A finished command's stdout and stderr, for assertion messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A plain HTTP GET; returns the status code and body.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split(' ').nth(1)?.parse().ok()?;
    Some((
        code,
        resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    ))
}

pub struct Serving {
    pub child: Child,
    pub port: u16,
    pub grpc_port: u16,
}

impl Serving {
    /// Starts `yunshu serve <args>` on free loopback ports and waits until
    /// `/readyz` answers 200. A port taken by another process between
    /// choosing and binding it is retried on fresh ports; any other early
    /// exit fails the test with the server's own log.
    pub fn start(args: &[&str]) -> Self {
        for _ in 0..5 {
            match Self::try_start(args) {
                Ok(s) => return s,
                Err(logs) if logs.contains("in use") => continue,
                Err(logs) => panic!("{logs}"),
            }
        }
        panic!("yunshu found its ports taken five times in a row");
    }

    fn try_start(args: &[&str]) -> Result<Self, String> {
        let port = free_port().expect("port");
        let grpc_port = free_port().expect("port");
        let child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .arg(format!("--admin-addr=127.0.0.1:{port}"))
            .arg(format!("--grpc-addr=127.0.0.1:{grpc_port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn yunshu");
        let mut s = Self {
            child,
            port,
            grpc_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some((200, _)) = get(port, "/readyz") {
                return Ok(s);
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                let mut logs = String::new();
                if let Some(mut e) = s.child.stderr.take() {
                    let _ = e.read_to_string(&mut logs);
                }
                return Err(format!(
                    "yunshu exited with {status} before becoming ready:\n{logs}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("yunshu did not become ready");
    }

    /// `http://127.0.0.1:<grpc port>`.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Sends SIGTERM and returns the exit status and the logs.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut logs = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut logs);
                }
                return (status, logs);
            }
            assert!(
                Instant::now() < deadline,
                "yunshu did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mints an API token with `yunshu token` into `dir/<id>.token`; returns
/// the file, the identity line for the department's spec, and the token.
pub fn mint(dir: &std::path::Path, id: &str, role: &str) -> (std::path::PathBuf, String, String) {
    let file = dir.join(format!("{id}.token"));
    let out = Command::new(BIN)
        .args(["token", "--id", id, "--role", role, "--out"])
        .arg(&file)
        .output()
        .expect("yunshu token");
    assert!(out.status.success(), "{}", text(&out));
    let identity = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("apiToken"))
        .expect("identity line")
        .trim()
        .trim_start_matches("- ")
        .to_owned();
    let token = std::fs::read_to_string(&file)
        .expect("token")
        .trim()
        .to_owned();
    (file, identity, token)
}
