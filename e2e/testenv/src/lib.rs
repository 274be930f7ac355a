//! `yunshu-testenv`: starts the real backends Yunshu's tests and benchmarks
//! run against, each on a free loopback port with its own data directory,
//! stopped (by PID) when dropped — also when the test fails.
//!
//! Binaries are found on `PATH` or at their Debian locations; when one is
//! missing the error says to run `e2e/scripts/install-deps.sh`.

mod etcd;
pub mod pki;

pub use etcd::EtcdServer;

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    time::{Duration, Instant},
};

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it next).
///
/// The kernel may hand the same ephemeral port out again once its probe
/// socket is closed, so this process never returns one port twice: two
/// servers started by parallel tests cannot be given the same address.
/// (Another process can still take the port before the server binds it;
/// callers that start a server retry on "address in use".)
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port after 64 tries")
}

/// Waits until something accepts connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("nothing listened on 127.0.0.1:{port} within {timeout:?}")
}

/// Finds an executable: `$env_var`, then `PATH`, then the given fallbacks.
pub fn find_binary(name: &str, env_var: &str, fallbacks: &[&str]) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(p));
    }
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    from_path
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!("`{name}` not found (set {env_var}, or run e2e/scripts/install-deps.sh to install it)")
        })
}
