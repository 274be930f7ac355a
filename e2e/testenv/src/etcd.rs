//! A real etcd server for tests.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use crate::{find_binary, free_port, wait_for_port};

/// A running etcd, killed and its data removed on drop.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    data: TempDir,
    client_port: u16,
    peer_port: u16,
    binary: PathBuf,
}

impl EtcdServer {
    /// Starts etcd on free loopback ports with a fresh data directory.
    pub fn start() -> anyhow::Result<Self> {
        let binary = find_binary("etcd", "YUNSHU_ETCD_BIN", &["/usr/bin/etcd"])?;
        let data = tempfile::Builder::new().prefix("yunshu-etcd-").tempdir()?;
        let mut server = Self {
            child: None,
            data,
            client_port: free_port()?,
            peer_port: free_port()?,
            binary,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.data.path().join("etcd.log"))?;
        let child = Command::new(&self.binary)
            .arg("--name=default")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .arg("--log-level=error")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        if let Err(e) = wait_for_port(self.client_port, Duration::from_secs(20)) {
            let log =
                std::fs::read_to_string(self.data.path().join("etcd.log")).unwrap_or_default();
            anyhow::bail!("etcd did not start: {e}\n{log}");
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory's parent (holds `etcd.log`).
    pub fn dir(&self) -> &Path {
        self.data.path()
    }

    /// Kills the server with SIGKILL, keeping its data.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
