//! `weed shell`: the only way SeaweedFS offers to set bucket quotas and read
//! bucket sizes (its IAM API has no quota calls).
//!
//! Quotas there are size-only, in whole MiB, and enforced lazily: the server
//! re-evaluates buckets about once a minute and marks an over-quota bucket
//! read-only, after which writes fail with `500 InternalError`.
//! `s3.bucket.quota.enforce -apply` applies the marks at once; the adapter
//! runs it on every probe so the lag is the probe interval at most.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use tokio::{io::AsyncWriteExt, process::Command};
use yunshu_core::{Error, Result};

use crate::config::WeedShell;

/// Size and owner of one bucket as `s3.bucket.list` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeedBucket {
    /// Bytes stored (lags behind writes by volume heartbeats).
    pub size: u64,
    /// The identity that created it.
    pub owner: Option<String>,
}

/// Runs `weed shell` commands against one cluster.
#[derive(Debug, Clone)]
pub struct Weed {
    shell: WeedShell,
    timeout: Duration,
}

impl Weed {
    /// A runner for `shell`, each invocation bounded by `timeout`.
    pub fn new(shell: WeedShell, timeout: Duration) -> Self {
        Self { shell, timeout }
    }

    /// Runs `commands` in one shell session; returns what it printed.
    pub async fn run(&self, commands: &[String], what: &str) -> Result<String> {
        let mut child = Command::new(&self.shell.binary)
            .arg("shell")
            .arg(format!("-master={}", self.shell.master))
            .arg(format!("-filer={}", self.shell.filer))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::unavailable(format!("{what}: cannot start `weed shell`"), e))?;
        let mut script = commands.join("\n");
        script.push_str("\nexit\n");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).await.map_err(|e| {
                Error::unavailable(format!("{what}: cannot talk to `weed shell`"), e)
            })?;
        }
        let output = tokio::time::timeout(self.timeout * 2, child.wait_with_output())
            .await
            .map_err(|_| Error::Unavailable {
                message: format!("{what}: `weed shell` timed out"),
                source: None,
            })?
            .map_err(|e| Error::unavailable(format!("{what}: `weed shell` failed"), e))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            return Err(Error::Unavailable {
                message: format!("{what}: `weed shell` exited with {}", output.status),
                source: None,
            });
        }
        Ok(text)
    }

    /// Sets a size quota on `bucket`, rounded up to whole MiB.
    pub async fn set_quota(&self, bucket: &str, max_bytes: u64) -> Result<u64> {
        check(bucket)?;
        let mib = max_bytes.div_ceil(1024 * 1024).max(1);
        let what = format!("set the quota of bucket {bucket}");
        let out = self
            .run(
                &[
                    format!("s3.bucket.quota -name={bucket} -op=set -sizeMB={mib}"),
                    format!("s3.bucket.quota -name={bucket} -op=get"),
                ],
                &what,
            )
            .await?;
        if out.to_ascii_lowercase().contains("error") {
            return Err(Error::internal(format!(
                "{what}: `weed shell` reported an error"
            )));
        }
        Ok(mib)
    }

    /// Lifts the quota and the read-only mark of `bucket` and drops its
    /// entry from the filer configuration, which would outlive the bucket.
    pub async fn release(&self, bucket: &str) -> Result<()> {
        check(bucket)?;
        self.run(
            &[
                format!("s3.bucket.quota -name={bucket} -op=remove"),
                "s3.bucket.quota.enforce -apply".to_owned(),
                format!("fs.configure -locationPrefix=/buckets/{bucket}/ -delete -apply"),
            ],
            &format!("release bucket {bucket}"),
        )
        .await
        .map(drop)
    }

    /// Applies every bucket's quota now.
    pub async fn enforce(&self) -> Result<()> {
        self.run(
            &["s3.bucket.quota.enforce -apply".to_owned()],
            "enforce bucket quotas",
        )
        .await
        .map(drop)
    }

    /// Every bucket's size and owner.
    pub async fn buckets(&self) -> Result<BTreeMap<String, WeedBucket>> {
        let out = self
            .run(&["s3.bucket.list".to_owned()], "list bucket sizes")
            .await?;
        Ok(parse_bucket_list(&out))
    }
}

/// Bucket names go into shell command lines: allow S3's characters only.
fn check(bucket: &str) -> Result<()> {
    if !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Ok(())
    } else {
        Err(Error::invalid("bucket", "must be a valid S3 bucket name"))
    }
}

/// Parses `s3.bucket.list` lines: `name\tsize:N\tlogical:N\tchunk:N\towner:"id"`.
fn parse_bucket_list(out: &str) -> BTreeMap<String, WeedBucket> {
    let mut buckets = BTreeMap::new();
    for line in out.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let mut size = None;
        let mut owner = None;
        for f in fields {
            if let Some(v) = f.strip_prefix("size:") {
                size = v.parse::<u64>().ok();
            } else if let Some(v) = f.strip_prefix("owner:") {
                owner = Some(v.trim_matches('"').to_owned());
            }
        }
        if let Some(size) = size {
            buckets.insert(name.to_owned(), WeedBucket { size, owner });
        }
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bucket_list() {
        let out = "> \n  ys-a-docs-1\tsize:152\tlogical:152\tchunk:2\towner:\"yunshu-a\"\n  other\tsize:0\tlogical:0\tchunk:0\n> exit\n";
        let b = parse_bucket_list(out);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b["ys-a-docs-1"],
            WeedBucket {
                size: 152,
                owner: Some("yunshu-a".into())
            }
        );
        assert_eq!(b["other"].owner, None);
    }

    #[test]
    fn refuses_names_that_could_break_the_command_line() {
        assert!(check("ys-a-1").is_ok());
        assert!(check("a b").is_err());
        assert!(check("a;rm").is_err());
        assert!(check("").is_err());
    }
}
