"""What Yunshu's S3 adapter will ask of a server, tried once against a live one.

Run by smoke.sh with the variables of STATE_DIR/env in the environment. For two
"departments" it creates a user with keys through the server's admin dialect,
has the first create a bucket and round-trip an object with a plain S3 client
(boto3), checks that the second is refused with 403, sets a bucket quota and
watches an over-quota write being refused, reads usage, and removes everything
it made. Prints one PASS/FAIL/INFO line per step and "N passed, N failed".

Admin dialects:
  rgw-admin  Ceph RGW Admin Ops (/admin/user, /admin/bucket, /admin/usage), signed
             here with a small SigV4 implementation using UNSIGNED-PAYLOAD, which
             RGW 16 requires for requests that carry a body.
  iam        the IAM query API that SeaweedFS embeds on its S3 port (boto3 "iam").
             Bucket quotas and sizes are handled here through `weed shell`.
"""

import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"].rstrip("/")
REGION = os.environ.get("S3_REGION", "us-east-1")
DIALECT = os.environ["S3_DIALECT"]
ADMIN_KEY = os.environ["S3_ADMIN_ACCESS_KEY"]
ADMIN_SECRET = os.environ["S3_ADMIN_SECRET_KEY"]
QUOTA_WAIT = int(os.environ.get("SMOKE_QUOTA_WAIT", "180"))
QUICK = os.environ.get("SMOKE_QUICK") == "1"

results = {"pass": 0, "fail": 0}
T_START = time.monotonic()


def report(ok, what, detail=""):
    results["pass" if ok else "fail"] += 1
    tail = f"  [{str(detail)[:300]}]" if detail and not ok else ""
    print(f"{'PASS' if ok else 'FAIL'} {what}{tail}", flush=True)
    return ok


def info(what):
    print(f"INFO {what}", flush=True)


def s3_client(key, secret):
    # Path-style addressing for a loopback endpoint, and checksums only where an
    # operation requires one: the same settings the Rust adapter has to use.
    return boto3.client(
        "s3", endpoint_url=ENDPOINT, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required",
                      retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))


def error_of(fn):
    """Run fn; return None on success, else (http status, S3 error code)."""
    try:
        fn()
        return None
    except ClientError as e:
        return (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code"))


def retry(fn, seconds=15):
    """Credentials made through an admin API can take a moment to reach the
    S3 front end; retry an AccessDenied/InvalidAccessKeyId until they do."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except ClientError as e:
            code = e.response["Error"].get("Code")
            if code not in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ---------------------------------------------------------------------------
# SigV4 for RGW Admin Ops, written out so the steps are visible.

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def sigv4_headers(method, url, region, key, secret):
    parts = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(pairs))
    headers = {"host": parts.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([
        method, urllib.parse.quote(parts.path or "/"), query,
        "".join(f"{h}:{headers[h]}\n" for h in sorted(headers)), signed, "UNSIGNED-PAYLOAD"])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    return headers


class AdminError(Exception):
    pass


class RgwAdmin:
    """Ceph RGW Admin Ops API: every RGW user is its own owner of buckets."""

    def _call(self, method, path, params, body=None):
        url = ENDPOINT + path + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        headers = sigv4_headers(method, url, REGION, ADMIN_KEY, ADMIN_SECRET)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as e:
            raise AdminError(f"{method} {path} {params}: HTTP {e.code} {e.read().decode()[:200]}")
        return json.loads(text) if text.strip() else None

    def create_user(self, name):
        u = self._call("PUT", "/admin/user", {"uid": name, "display-name": f"department {name}"})
        k = u["keys"][0]
        return k["access_key"], k["secret_key"]

    def grant_own_buckets(self, name, prefix):
        pass  # RGW: the owner of a bucket has access to it, nobody else does

    def delete_user(self, name):
        self._call("DELETE", "/admin/user", {"uid": name, "purge-data": "true"})

    def user_exists(self, name):
        return name in (self._call("GET", "/admin/metadata/user", {}) or [])

    def set_bucket_quota(self, owner, bucket, max_bytes, max_objects):
        # the quota goes as a JSON body, signed with UNSIGNED-PAYLOAD (with the
        # body's hash in the signature RGW 16 answers 501 NotImplemented)
        self._call("PUT", "/admin/bucket", {"quota": "", "uid": owner, "bucket": bucket},
                   {"enabled": True, "max_size": max_bytes, "max_objects": max_objects})
        q = self._call("GET", "/admin/bucket", {"bucket": bucket})["bucket_quota"]
        return q

    def set_user_quota(self, owner, max_bytes, max_objects):
        self._call("PUT", "/admin/user", {"quota": "", "uid": owner, "quota-type": "user"},
                   {"enabled": True, "max_size": max_bytes, "max_objects": max_objects})
        return self._call("GET", "/admin/user", {"quota": "", "uid": owner, "quota-type": "user"})

    def bucket_usage(self, bucket):
        b = self._call("GET", "/admin/bucket", {"bucket": bucket, "stats": "true"})
        main = b.get("usage", {}).get("rgw.main", {})
        return main.get("size", 0), main.get("num_objects", 0)

    def user_usage_log(self, owner):
        u = self._call("GET", "/admin/usage", {"uid": owner, "show-summary": "true", "show-entries": "false"})
        summary = (u or {}).get("summary") or []
        ops = sum(c.get("ops", 0) for s in summary for c in s.get("categories", []))
        sent = sum(c.get("bytes_received", 0) for s in summary for c in s.get("categories", []))
        return ops, sent


class IamAdmin:
    """SeaweedFS: one account, IAM users that reach only what their policy allows."""

    def __init__(self):
        self.iam = boto3.client(
            "iam", endpoint_url=ENDPOINT, region_name=REGION,
            aws_access_key_id=ADMIN_KEY, aws_secret_access_key=ADMIN_SECRET,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
        self.weed = [os.environ["SEAWEEDFS_WEED"], "shell",
                     "-master=" + os.environ["SEAWEEDFS_MASTER"], "-filer=" + os.environ["SEAWEEDFS_FILER"]]

    def shell(self, *commands):
        r = subprocess.run(self.weed, input="\n".join(commands) + "\n", capture_output=True,
                           text=True, timeout=60)
        return r.stdout + r.stderr

    def create_user(self, name):
        self.iam.create_user(UserName=name)
        k = self.iam.create_access_key(UserName=name)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def grant_own_buckets(self, name, prefix):
        doc = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:*"],
            "Resource": [f"arn:aws:s3:::{prefix}*", f"arn:aws:s3:::{prefix}*/*"]}]}
        self.iam.put_user_policy(UserName=name, PolicyName="own-buckets", PolicyDocument=json.dumps(doc))

    def delete_user(self, name):
        for k in self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            self.iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
        for p in self.iam.list_user_policies(UserName=name)["PolicyNames"]:
            self.iam.delete_user_policy(UserName=name, PolicyName=p)
        self.iam.delete_user(UserName=name)

    def user_exists(self, name):
        return name in [u["UserName"] for u in self.iam.list_users()["Users"]]

    def set_bucket_quota(self, owner, bucket, max_bytes, max_objects):
        mb = max(1, max_bytes // (1024 * 1024))  # SeaweedFS quotas are whole MiB, size only
        self.shell(f"s3.bucket.quota -name={bucket} -op=set -sizeMB={mb}")
        return self.shell(f"s3.bucket.quota -name={bucket} -op=get").strip()

    def clear_bucket_quota(self, bucket):
        # removing the quota and re-running enforcement drops the bucket's
        # read-only mark from the filer configuration
        return self.shell(f"s3.bucket.quota -name={bucket} -op=remove", "s3.bucket.quota.enforce -apply")

    def forget_bucket(self, bucket):
        # enforcement leaves a per-bucket entry in /etc/seaweedfs/filer.conf that
        # outlives the bucket; drop it so a later bucket of that name starts clean
        self.shell(f"fs.configure -locationPrefix=/buckets/{bucket}/ -delete -apply")
        return f"/buckets/{bucket}/" not in self.shell("fs.cat /etc/seaweedfs/filer.conf")

    def enforce_now(self):
        return self.shell("s3.bucket.quota.enforce -apply")

    def bucket_line(self, bucket):
        for line in self.shell("s3.bucket.list").splitlines():
            if line.strip().startswith(bucket + "\t") or line.strip().startswith(bucket + " "):
                return line.strip()
        return ""

    def bucket_usage(self, bucket):
        fields = dict(f.split(":", 1) for f in self.bucket_line(bucket).split()[1:] if ":" in f)
        return int(fields.get("size", 0)), None


# ---------------------------------------------------------------------------

def main():
    admin = RgwAdmin() if DIALECT == "rgw-admin" else IamAdmin() if DIALECT == "iam" else None
    if admin is None:
        print(f"unknown S3_DIALECT {DIALECT}")
        return 2
    run = "smk" + uuid.uuid4().hex[:6]
    dept_a, dept_b = f"{run}-a", f"{run}-b"
    bucket = f"{dept_a}-docs"
    users = []
    a = b = None
    print(f"# {os.environ.get('S3_BACKEND', '?')} at {ENDPOINT}, dialect {DIALECT}, run {run}", flush=True)
    try:
        # --- departments: users and keys through the admin dialect ------------------
        t = time.monotonic()
        keys = {}
        for dept in (dept_a, dept_b):
            keys[dept] = admin.create_user(dept)
            users.append(dept)
            admin.grant_own_buckets(dept, f"{dept}-")
        report(all(admin.user_exists(d) for d in users),
               f"admin: created users {dept_a}, {dept_b} with access keys ({time.monotonic() - t:.1f}s)")
        a, b = s3_client(*keys[dept_a]), s3_client(*keys[dept_b])

        # --- data plane as department A ---------------------------------------------
        err = error_of(lambda: retry(lambda: a.create_bucket(Bucket=bucket)))
        report(err is None, f"A creates bucket {bucket}", err)
        body = os.urandom(64 * 1024)
        err = error_of(lambda: a.put_object(Bucket=bucket, Key="reports/q1.bin", Body=body))
        report(err is None, "A puts a 64 KiB object", err)
        got = a.get_object(Bucket=bucket, Key="reports/q1.bin")["Body"].read()
        report(got == body, "A gets it back byte for byte")
        listed = [o["Key"] for o in a.list_objects_v2(Bucket=bucket).get("Contents", [])]
        report(listed == ["reports/q1.bin"], "A lists its bucket", listed)

        # --- department B is kept out ----------------------------------------------
        retry(lambda: b.list_buckets())  # B's key is live
        for what, fn in [
            ("GET object", lambda: b.get_object(Bucket=bucket, Key="reports/q1.bin")),
            ("PUT object", lambda: b.put_object(Bucket=bucket, Key="intruder", Body=b"x")),
            ("LIST bucket", lambda: b.list_objects_v2(Bucket=bucket)),
            ("DELETE bucket", lambda: b.delete_bucket(Bucket=bucket)),
        ]:
            err = error_of(fn)
            report(err is not None and err[0] == 403, f"B is refused {what} on A's bucket: {err}", err)

        # --- delete of a non-empty bucket is refused -------------------------------
        err = error_of(lambda: a.delete_bucket(Bucket=bucket))
        report(err is not None and err[1] == "BucketNotEmpty", f"deleting a non-empty bucket is refused: {err}", err)

        # --- quota -------------------------------------------------------------------
        quota_check(admin, a, dept_a, bucket)

        # --- usage ----------------------------------------------------------------------
        usage_check(admin, a, dept_a, bucket)
    except Exception as e:  # report, then still clean up
        report(False, f"unexpected error: {type(e).__name__}: {e}")
    finally:
        cleanup(admin, a, bucket, users)
    print(f"# smoke took {time.monotonic() - T_START:.1f}s")
    print(f"{results['pass']} passed, {results['fail']} failed")
    return min(results["fail"], 100)


def quota_check(admin, a, owner, bucket):
    if isinstance(admin, RgwAdmin):
        # Current contents: one 64 KiB object. Allow 160 KiB and 3 objects.
        q = admin.set_bucket_quota(owner, bucket, 160 * 1024, 3)
        report(q.get("enabled") and q.get("max_size") == 160 * 1024 and q.get("max_objects") == 3,
               f"admin: bucket quota set (160 KiB, 3 objects): {q}", q)
        err = error_of(lambda: a.put_object(Bucket=bucket, Key="fits.bin", Body=os.urandom(64 * 1024)))
        report(err is None, "a write under the quota is accepted (128 KiB of 160 KiB)", err)
        err = error_of(lambda: a.put_object(Bucket=bucket, Key="too-big.bin", Body=os.urandom(64 * 1024)))
        report(err == (403, "QuotaExceeded"), f"a write over the size quota is refused at once: {err}", err)
        err = error_of(lambda: a.put_object(Bucket=bucket, Key="small-1", Body=b"x"))
        report(err is None, "a 1-byte write still fits (3rd object)", err)
        err = error_of(lambda: a.put_object(Bucket=bucket, Key="small-2", Body=b"x"))
        report(err == (403, "QuotaExceeded"), f"a 4th object is refused by the object quota: {err}", err)
        uq = admin.set_user_quota(owner, 10 * 1024 * 1024, 1000)
        report(uq.get("enabled") and uq.get("max_objects") == 1000,
               "admin: user quota set and read back (10 MiB, 1000 objects)", uq)
        return
    # SeaweedFS: size quotas in whole MiB. The S3 gateway does not check them on
    # each write; the server re-evaluates buckets about once a minute and marks an
    # over-quota bucket read-only, after which writes fail with 500 InternalError.
    q = admin.set_bucket_quota(owner, bucket, 1024 * 1024, None)
    report("1MiB" in q or "1048576" in q, f"weed shell: bucket quota set to 1 MiB: {q!r}", q)
    t0 = time.monotonic()
    err = error_of(lambda: a.put_object(Bucket=bucket, Key="over.bin", Body=os.urandom(1536 * 1024)))
    report(err is None, "lazy: a write that takes the bucket past its quota is still accepted", err)
    if QUICK:
        # the bucket's size reaches the enforcer through volume heartbeats, so one
        # immediate run can still see it under quota: run it on every round
        info("SMOKE_QUICK=1: running s3.bucket.quota.enforce -apply each round instead of waiting for the server")
    refused = None
    deadline = t0 + QUOTA_WAIT
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if QUICK:
            admin.enforce_now()
        err = error_of(lambda: a.put_object(Bucket=bucket, Key=f"late-{n}", Body=b"x" * 100))
        if err is not None:
            refused = err
            break
        time.sleep(3)
    waited = time.monotonic() - t0
    report(refused is not None and refused[0] >= 400,
           f"over-quota writes are refused {waited:.0f}s after the limit was passed: {refused}"
           f" ({n - 1} small writes accepted meanwhile)", refused or f"not refused within {QUOTA_WAIT}s")
    info(f"s3.bucket.list: {admin.bucket_line(bucket)}")


def usage_check(admin, a, owner, bucket):
    objs = a.list_objects_v2(Bucket=bucket).get("Contents", [])
    listed_bytes, listed_count = sum(o["Size"] for o in objs), len(objs)
    info(f"client-side listing: {listed_count} objects, {listed_bytes} bytes")
    if isinstance(admin, RgwAdmin):
        size, count = admin.bucket_usage(bucket)
        report((size, count) == (listed_bytes, listed_count),
               f"admin: bucket stats {count} objects, {size} bytes (matches the listing)", (size, count))
        deadline = time.monotonic() + 20
        ops = 0
        while time.monotonic() < deadline:
            ops, received = admin.user_usage_log(owner)
            if ops:
                break
            time.sleep(1)
        report(ops > 0, f"admin: usage log for {owner}: {ops} ops, {received} bytes received")
        return
    # weed shell's per-bucket size follows volume heartbeats: poll until it settles
    deadline = time.monotonic() + 30
    size = 0
    while time.monotonic() < deadline:
        size, _ = admin.bucket_usage(bucket)
        if size >= listed_bytes:
            break
        time.sleep(2)
    report(size >= listed_bytes, f"weed shell: bucket size {size} bytes (listing: {listed_bytes};"
           f" object count only from listing)", size)


def cleanup(admin, a, bucket, users):
    problems = []
    if isinstance(admin, IamAdmin):
        try:
            admin.clear_bucket_quota(bucket)
        except Exception as e:
            problems.append(f"quota: {e}")
    if a is not None:
        try:
            # a bucket made read-only by quota may need a moment to become writable again
            deadline = time.monotonic() + 20
            while True:
                objs = a.list_objects_v2(Bucket=bucket).get("Contents", [])
                for o in objs:
                    error_of(lambda: a.delete_object(Bucket=bucket, Key=o["Key"]))
                if not a.list_objects_v2(Bucket=bucket).get("Contents") or time.monotonic() > deadline:
                    break
                time.sleep(1)
            a.delete_bucket(Bucket=bucket)
        except ClientError as e:
            if e.response["Error"].get("Code") != "NoSuchBucket":
                problems.append(f"bucket: {e}")
    if isinstance(admin, IamAdmin):
        try:
            if not admin.forget_bucket(bucket):
                problems.append("filer.conf still names the bucket")
        except Exception as e:
            problems.append(f"filer.conf: {e}")
    for u in users:
        try:
            admin.delete_user(u)
        except Exception as e:
            problems.append(f"user {u}: {e}")
    try:
        still = [u for u in users if admin.user_exists(u)]
    except Exception as e:
        still = [str(e)]
    report(not problems and not still, "cleanup: objects, bucket, quota and users removed", problems + still)


if __name__ == "__main__":
    sys.exit(main())
