//! End to end against real S3 servers (`e2e/s3`): the real `yunshu` binary on
//! the embedded store with the server registered as a foundation, two
//! departments driving it with `yunshuctl`, and a plain S3 client (boto3)
//! using the credentials Yunshu issued.
//!
//! The servers are found through `YUNSHU_S3_CEPH_STATE` and
//! `YUNSHU_S3_SEAWEEDFS_STATE`; without them the tests are skipped, except
//! in CI, where that is a failure.

#[path = "../common/mod.rs"]
mod common;
mod unrecorded;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::{Served, mint, text};
use serde_json::Value;

fn state_dir(var: &str) -> Option<PathBuf> {
    if let Ok(s) = std::env::var(var) {
        return Some(PathBuf::from(s));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{var} is not set: run `bash e2e/s3/up.sh --backend … STATE` and export {var}=STATE \
         (e2e/scripts/test.sh does both)"
    );
    eprintln!("skipped: {var} is not set (bash e2e/s3/up.sh --backend … STATE)");
    None
}

fn env_file(state: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(state.join("env"))
        .expect("STATE/env")
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("export ").split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
        .collect()
}

struct Yunshu {
    served: Served,
    tokens: BTreeMap<String, PathBuf>,
}

impl Yunshu {
    fn start(state: &Path) -> Self {
        let env = env_file(state);
        let mut served = Served::new("5s", "debug");
        let dir = served.dir().to_owned();
        let creds = dir.join("s3.credentials.json");
        std::fs::write(
            &creds,
            serde_json::json!({
                "access_key": env["S3_ADMIN_ACCESS_KEY"],
                "secret_key": env["S3_ADMIN_SECRET_KEY"],
            })
            .to_string(),
        )
        .expect("creds");
        let mut tokens = BTreeMap::new();
        let mut departments = String::new();
        for d in ["alpha", "beta"] {
            let (file, identity, _) = mint(&dir, d, "operator");
            departments.push_str(&format!(
                "  - name: {d}\n    spec:\n      identities: [ {identity} ]\n      quota: {{ hard: {{ buckets: 10, bucket_bytes: 10737418240 }} }}\n"
            ));
            tokens.insert(d.to_owned(), file);
        }
        let config = format!(
            "departments:\n{departments}foundations:\n  - name: object-store\n    spec:\n      adapter: s3\n      endpoint: \"{}\"\n      region: {}\n      settings: {{ dialect: {} }}\n      capacity: {{ buckets: 1000, bucket_bytes: 1099511627776 }}\n      credentials: {{ path: \"{}\" }}\n",
            env["S3_ENDPOINT"],
            env.get("S3_REGION").map_or("us-east-1", String::as_str),
            env["S3_DIALECT"],
            creds.display()
        );
        std::fs::write(dir.join("yunshu.yaml"), config).expect("config");
        served.start();
        Self { served, tokens }
    }

    fn logs(&self) -> String {
        self.served.logs()
    }

    /// Waits up to `within` for a logged line that `matches`; `what` names
    /// it when the wait fails.
    fn wait_for_log(&self, within: Duration, what: &str, matches: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + within;
        while !self.logs().lines().any(&matches) {
            assert!(
                Instant::now() < deadline,
                "waited {within:?} for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn ctl(&self, department: &str, args: &[&str]) -> Output {
        self.served.ctl(department, &self.tokens[department], args)
    }
}

/// Runs a boto3 snippet with the issued credentials; prints what happened.
fn s3(credentials: &Value, script: &str) -> Output {
    let python = std::env::var("YUNSHU_S3_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/yunshu/s3-tools")
        })
        .join("client/bin/python");
    // Standard retries, as any S3 client: a 5xx (SeaweedFS answers
    // InternalError while a fresh server assigns its first volume) is
    // retried, while 403s and 404s are not, so access checks see them.
    let prelude = r#"
import json, sys, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
c = json.loads(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=c["endpoints"][0], aws_access_key_id=c["accessKeyId"],
                  aws_secret_access_key=c["secretAccessKey"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"},
                                retries={"mode": "standard", "max_attempts": 5}))
def code(f):
    try:
        f()
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"] + " " + str(e.response["ResponseMetadata"]["HTTPStatusCode"])
"#;
    Command::new(python)
        .arg("-c")
        .arg(format!("{prelude}\n{script}"))
        .arg(credentials.to_string())
        .output()
        .expect("python with boto3 (bash e2e/s3/install.sh client)")
}

/// Waits up to 30 s until listing the bucket with `credentials` (`what`)
/// answers `want`: `true` for success, `false` for a refusal (401 or 403;
/// anything else, a crashed client say, is neither).
fn until_listing(credentials: &Value, want: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after = s3(
            credentials,
            r#"print(code(lambda: s3.list_objects_v2(Bucket=c["bucket"])))"#,
        );
        let out = String::from_utf8_lossy(&after.stdout);
        let got = if out.trim() == "ok" {
            Some(true)
        } else if out.contains(" 403") || out.contains(" 401") {
            Some(false)
        } else {
            None
        };
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: wanted {}, got {}",
            if want { "ok" } else { "a refusal" },
            text(&after)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn end_to_end(state: &Path, backend: &str) {
    let mut y = Yunshu::start(state);
    // Names unique per run: a bucket a failed run left behind must not
    // collide with this one's.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
    );
    let (reports, other) = (format!("reports-{run}"), format!("other-{run}"));
    let (reports, other) = (reports.as_str(), other.as_str());
    let create = y.ctl(
        "alpha",
        &[
            "create",
            "bucket",
            reports,
            "--quota-bytes",
            "1Mi",
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert!(create.status.success(), "{}\n{}", text(&create), y.logs());
    let issue = y.ctl("alpha", &issue_once(reports));
    assert!(issue.status.success(), "{}\n{}", text(&issue), y.logs());
    let alpha: Value = serde_json::from_slice(&issue.stdout).expect("credentials json");
    let secret = alpha["secretAccessKey"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(alpha["bucket"].is_string(), "{alpha}");
    // A retry under the same request id returns the same keys.
    let retry = y.ctl("alpha", &issue_once(reports));
    assert!(retry.status.success(), "{}\n{}", text(&retry), y.logs());
    let again: Value = serde_json::from_slice(&retry.stdout).expect("credentials json");
    assert_eq!(
        again["accessKeyId"], alpha["accessKeyId"],
        "a retry minted new keys"
    );
    assert_eq!(again["secretAccessKey"], alpha["secretAccessKey"]);

    // A writes and reads an object with a plain S3 client.
    let rw = s3(
        &alpha,
        r#"b = c["bucket"]
s3.put_object(Bucket=b, Key="a.txt", Body=b"health data")
print(s3.get_object(Bucket=b, Key="a.txt")["Body"].read().decode())"#,
    );
    assert!(rw.status.success(), "{}", text(&rw));
    assert_eq!(String::from_utf8_lossy(&rw.stdout).trim(), "health data");

    // B's credentials (for its own bucket) get 403 on A's bucket.
    let create = y.ctl(
        "beta",
        &[
            "create",
            "bucket",
            other,
            "--quota-bytes",
            "1Mi",
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert!(create.status.success(), "{}\n{}", text(&create), y.logs());
    let issue = y.ctl(
        "beta",
        &["-o", "json", "credentials", "issue", "bucket", other],
    );
    assert!(issue.status.success(), "{}", text(&issue));
    let mut beta: Value = serde_json::from_slice(&issue.stdout).expect("credentials json");
    let beta_bucket = beta["bucket"].clone();
    beta["bucket"] = alpha["bucket"].clone();
    let denied = s3(
        &beta,
        r#"b = c["bucket"]
print(code(lambda: s3.get_object(Bucket=b, Key="a.txt")), code(lambda: s3.put_object(Bucket=b, Key="x", Body=b"x")), code(lambda: s3.list_objects_v2(Bucket=b)))"#,
    );
    assert!(denied.status.success(), "{}", text(&denied));
    let out = String::from_utf8_lossy(&denied.stdout);
    assert_eq!(
        out.matches("403").count(),
        3,
        "B must get 403 on A's bucket {}: {out}",
        alpha["bucket"]
    );

    // Over the bucket's quota, the server refuses the write and says why.
    if backend == "ceph" {
        let over = s3(
            &alpha,
            r#"b = c["bucket"]
print(code(lambda: s3.put_object(Bucket=b, Key="big", Body=b"x" * (2 * 1024 * 1024))))"#,
        );
        let out = String::from_utf8_lossy(&over.stdout);
        assert!(out.contains("QuotaExceeded"), "{}", text(&over));
    }

    // Deleting a non-empty bucket is refused clearly and deletes nothing.
    let refused = y.ctl("alpha", &["delete", "bucket", reports]);
    assert!(!refused.status.success());
    let t = text(&refused);
    assert!(t.contains("holds") && t.contains("purge"), "{t}");
    let still = s3(
        &alpha,
        r#"print(s3.get_object(Bucket=c["bucket"], Key="a.txt")["Body"].read().decode())"#,
    );
    assert_eq!(
        String::from_utf8_lossy(&still.stdout).trim(),
        "health data",
        "{}",
        text(&still)
    );

    // A bucket deleted behind Yunshu's back is reported on its object by
    // the next sweep (every 5 s here), once.
    let env = env_file(state);
    let bucket = beta_bucket.as_str().expect("bucket name");
    if let Some(conf) = env.get("CEPH_CONF") {
        // RGW lets no other user delete a bucket; its admin tool can.
        let rm = Command::new("radosgw-admin")
            .args(["-c", conf, "bucket", "rm", "--bucket", bucket])
            .output()
            .expect("radosgw-admin");
        assert!(rm.status.success(), "{}", text(&rm));
    } else {
        let admin = serde_json::json!({
            "endpoints": [env["S3_ENDPOINT"]],
            "accessKeyId": env["S3_ADMIN_ACCESS_KEY"],
            "secretAccessKey": env["S3_ADMIN_SECRET_KEY"],
            "bucket": bucket,
        });
        let gone = s3(
            &admin,
            r#"print(code(lambda: s3.delete_bucket(Bucket=c["bucket"])))"#,
        );
        assert_eq!(
            String::from_utf8_lossy(&gone.stdout).trim(),
            "ok",
            "{}",
            text(&gone)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = y.ctl("beta", &["-o", "json", "get", "bucket", other]);
        let shown = String::from_utf8_lossy(&got.stdout);
        if shown.contains("Missing") {
            assert!(shown.contains("no longer has this resource"), "{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sweep did not report the missing bucket: {shown}\n{}",
            y.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Revocation works; purge deletes the bucket with its objects.
    let access = alpha["accessKeyId"].as_str().expect("key");
    let revoke = y.ctl(
        "alpha",
        &["credentials", "revoke", "bucket", reports, access],
    );
    assert!(revoke.status.success(), "{}", text(&revoke));
    until_listing(&alpha, false, "revoked credentials");
    // A revoke retried succeeds; an issue retried after the revocation is
    // refused rather than minting keys behind it.
    let revoke = y.ctl(
        "alpha",
        &["credentials", "revoke", "bucket", reports, access],
    );
    assert!(revoke.status.success(), "{}", text(&revoke));
    let refused = y.ctl("alpha", &issue_once(reports));
    assert!(!refused.status.success(), "{}", text(&refused));
    let t = text(&refused);
    assert!(
        t.contains("request_id") && t.contains("were revoked"),
        "{t}"
    );

    // Keys that run out are revoked by the sweep, and their request id is
    // refused from then on too.
    let short = [
        "-o",
        "json",
        "credentials",
        "issue",
        "bucket",
        reports,
        "--ttl",
        "1s",
        "--request-id=short-1",
    ];
    let issue = y.ctl("alpha", &short);
    assert!(issue.status.success(), "{}\n{}", text(&issue), y.logs());
    let issued: Value = serde_json::from_slice(&issue.stdout).expect("credentials json");
    let key = issued["accessKeyId"].as_str().expect("key").to_owned();
    y.wait_for_log(
        Duration::from_secs(30),
        &format!("the sweep to expire {key}"),
        |l| l.contains("expire-credentials") && l.contains(&key),
    );
    let refused = y.ctl("alpha", &short);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("have expired"),
        "{}",
        text(&refused)
    );
    unrecorded::keys_end_at_their_expiry(&mut y, reports);
    for (d, b) in [("alpha", reports), ("beta", other)] {
        let purge = y.ctl(
            d,
            &[
                "delete",
                "bucket",
                b,
                "--purge",
                "--wait",
                "--timeout",
                "2m",
            ],
        );
        assert!(purge.status.success(), "{}\n{}", text(&purge), y.logs());
    }

    // The issued secret appears nowhere: logs, status, errors.
    let status = y.ctl("alpha", &["-o", "json", "list", "buckets"]);
    let logs = y.logs();
    assert!(
        !logs.contains(&secret),
        "the issued secret leaked into the logs"
    );
    assert!(!text(&status).contains(&secret));
    assert!(
        logs.contains("issue-credentials") && logs.contains("reissue-credentials"),
        "the issue and its retry are in the audit log"
    );
}

/// `credentials issue bucket B`, always under one request id.
fn issue_once(bucket: &str) -> [&str; 9] {
    [
        "-o",
        "json",
        "credentials",
        "issue",
        "bucket",
        bucket,
        "--ttl",
        "1h",
        "--request-id=issue-reports-1",
    ]
}

#[test]
fn buckets_credentials_and_isolation_on_ceph_rgw() {
    let Some(state) = state_dir("YUNSHU_S3_CEPH_STATE") else {
        return;
    };
    end_to_end(&state, "ceph");
}

#[test]
fn buckets_credentials_and_isolation_on_seaweedfs() {
    let Some(state) = state_dir("YUNSHU_S3_SEAWEEDFS_STATE") else {
        return;
    };
    end_to_end(&state, "seaweedfs");
}
