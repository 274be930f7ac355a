//! The Python example adapter (`adapters/remote/examples/python`) as a
//! child process on a free port; shared by the remote adapter's tests and
//! the `yunshu` end-to-end test that registers it as a foundation.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// The Python example adapter on a free port, killed when dropped.
pub struct PythonAdapter {
    child: Child,
    pub port: u16,
}

impl PythonAdapter {
    #[allow(dead_code)] // not every test that includes this module uses it
    pub fn start(token_file: &Path) -> Self {
        Self::start_with(token_file, &[])
    }

    /// With more of the adapter's flags, e.g. `["--vcpu", "5"]` for a
    /// smaller cloud.
    pub fn start_with(token_file: &Path, flags: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find_map(|d| {
                let s = d.join("adapters/remote/examples/python/adapter.py");
                s.exists().then_some(s)
            })
            .expect("adapters/remote/examples/python/adapter.py above the crate");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--token-file"])
            .arg(token_file)
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 (grpcio and grpcio-tools: e2e/scripts/install-deps.sh)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        // An early exit leaves the line empty, which is reported below.
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the example adapter did not start: {line:?}")
            });
        Self { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PythonAdapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
