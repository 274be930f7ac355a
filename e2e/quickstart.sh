#!/usr/bin/env bash
# The quick start, for real: brings up two local OpenStack clouds (x86-cloud
# and the aarch64 kunpeng-cloud) and a local S3 server (SeaweedFS), starts
# `yunshu` on the embedded store with all three registered as foundations and
# a sample department `health`, then acts as that department with yunshuctl:
# an aarch64 and an x86 instance with --wait, where each landed and why, a
# bucket, and credentials for it used with a plain S3 client.
#
#   bash e2e/quickstart.sh [DIR]        # everything lives in DIR (default /var/tmp/yunshu-quickstart)
#   bash e2e/quickstart.sh down [DIR]   # stops yunshu and the servers this script started
#
# YUNSHU_OPENSTACK_STATE / YUNSHU_S3_SEAWEEDFS_STATE reuse backends that are
# already up; YUNSHU_BUILD_PROFILE=debug skips the release build.
#
# Needs root (apt packages for OpenStack and Ceph tools), ~4 GiB of memory,
# and a Rust toolchain; the first run installs packages and builds (~10 min),
# later runs take about three minutes. Running it again reuses what exists
# (every request carries a fixed request id).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=up
if [ "${1:-}" = down ]; then cmd=down; shift; fi
DIR=${1:-/var/tmp/yunshu-quickstart}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# Clouds already brought up elsewhere (e.g. by e2e/scripts/test.sh) are reused.
OSP=${YUNSHU_OPENSTACK_STATE:-$DIR/openstack}
S3=${YUNSHU_S3_SEAWEEDFS_STATE:-$DIR/s3}
PROFILE=${YUNSHU_BUILD_PROFILE:-release}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ $cmd = down ]; then
  if [ -f "$DIR/yunshu.pid" ]; then kill "$(cat "$DIR/yunshu.pid")" 2>/dev/null || true; rm -f "$DIR/yunshu.pid"; fi
  [ -z "${YUNSHU_S3_SEAWEEDFS_STATE:-}" ] && [ -d "$S3" ] && { bash "$ROOT/e2e/s3/down.sh" "$S3" || true; }
  [ -z "${YUNSHU_OPENSTACK_STATE:-}" ] && [ -d "$OSP" ] && { bash "$ROOT/e2e/openstack/down.sh" "$OSP" || true; }
  exit 0
fi

say "1/6 building yunshu and yunshuctl"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/yunshu-target}
bash "$ROOT/e2e/scripts/install-deps.sh" >/dev/null
if [ "$PROFILE" = release ]; then
  (cd "$ROOT" && cargo build --release -p yunshu --bins); BIN=$CARGO_TARGET_DIR/release
else
  (cd "$ROOT" && cargo build -p yunshu --bins); BIN=$CARGO_TARGET_DIR/debug
fi
export PATH=$BIN:$PATH

say "2/6 two OpenStack clouds (x86-cloud, kunpeng-cloud) and an S3 server"
bash "$ROOT/e2e/openstack/status.sh" "$OSP" >/dev/null 2>&1 || bash "$ROOT/e2e/openstack/up.sh" "$OSP"
bash "$ROOT/e2e/s3/install.sh" seaweedfs >/dev/null
bash "$ROOT/e2e/s3/up.sh" --backend seaweedfs "$S3"

say "3/6 configuration: foundations, the department health, an admin"
python3 - "$OSP/clouds.json" "$S3/env" "$DIR" <<'PY'
import json, os, sys
clouds = json.load(open(sys.argv[1]))
s3env = dict(l.strip().split("=", 1) for l in open(sys.argv[2]) if "=" in l and not l.startswith("#"))
s3env = {k.replace("export ", ""): v.strip("'\"") for k, v in s3env.items()}
d = sys.argv[3]
for name, c in clouds.items():
    keys = ["username", "password", "project_name", "user_domain_name", "project_domain_name"]
    with open(os.open(f"{d}/{name}.credentials.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({k: c[k] for k in keys}, f)
with open(os.open(f"{d}/s3.credentials.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump({"access_key": s3env["S3_ADMIN_ACCESS_KEY"], "secret_key": s3env["S3_ADMIN_SECRET_KEY"]}, f)
with open(f"{d}/foundations.yaml", "w") as f:
    f.write("foundations:\n")
    for name, c in clouds.items():
        f.write(f"  - name: {name}\n    spec:\n      adapter: openstack\n      endpoint: \"{c['auth_url']}\"\n"
                f"      region: {c['region_name']}\n      traits: [\"arch:{c['arch']}\"]\n"
                f"      credentials: {{ path: \"{d}/{name}.credentials.json\" }}\n")
    f.write(f"  - name: object-store\n    spec:\n      adapter: s3\n      endpoint: \"{s3env['S3_ENDPOINT']}\"\n"
            f"      region: {s3env.get('S3_REGION', 'us-east-1')}\n"
            f"      settings: {{ dialect: {s3env.get('S3_DIALECT', 'iam')} }}\n"
            f"      capacity: {{ buckets: 1000, bucket_bytes: 1099511627776 }}\n"
            f"      credentials: {{ path: \"{d}/s3.credentials.json\" }}\n")
PY
rm -f "$DIR/lin.token" "$DIR/ops.token"
lin=$(yunshu token --id lin --role operator --out "$DIR/lin.token" | grep apiToken | sed 's/^ *- //')
ops=$(yunshu token --id ops --role admin --out "$DIR/ops.token" | grep apiToken | sed 's/^ *- //')
{
  echo "departments:"
  echo "  - name: health"
  echo "    spec:"
  echo "      displayName: Health Commission"
  echo "      identities: [ $lin ]"
  echo "      quota: { hard: { vcpu: 64, memory_mib: 131072, disk_gib: 1000, bucket_bytes: 107374182400 } }"
  echo "  - name: ops"
  echo "    spec:"
  echo "      identities: [ $ops ]"
  echo "      quota: { hard: { vcpu: 1 } }"
  cat "$DIR/foundations.yaml"
} > "$DIR/yunshu.yaml"
echo "wrote $DIR/yunshu.yaml"

say "4/6 yunshu serve (embedded store in $DIR/data, log in $DIR/yunshu.log)"
if [ -f "$DIR/yunshu.pid" ] && kill -0 "$(cat "$DIR/yunshu.pid")" 2>/dev/null; then
  old=$(cat "$DIR/yunshu.pid"); kill "$old"
  for _ in $(seq 150); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
yunshu serve --data-dir "$DIR/data" --config "$DIR/yunshu.yaml" --probe-interval 2s >"$DIR/yunshu.log" 2>&1 &
echo $! > "$DIR/yunshu.pid"
for _ in $(seq 100); do curl -sf 127.0.0.1:9090/readyz >/dev/null && break; sleep 0.2; done
curl -s 127.0.0.1:9090/readyz; echo

say "5/6 the department health: an aarch64 and an x86 instance"
export XDG_CONFIG_HOME=$DIR
yunshuctl config init --endpoint http://127.0.0.1:50051 --department health --token-file "$DIR/lin.token" --force
yunshuctl catalog
sleep 3   # the first probes of the three foundations
yunshuctl create instance arm-1 --request-id quickstart-arm-1 --vcpu 1 --memory 1Gi --disk 1Gi --image kylin-v10 --require arch:aarch64 --wait
yunshuctl create instance x86-1 --request-id quickstart-x86-1 --vcpu 1 --memory 1Gi --disk 1Gi --image kylin-v10 --require arch:x86_64 --wait
yunshuctl list instances
yunshuctl explain instance arm-1

say "6/6 a bucket, credentials for it, and a plain S3 client"
yunshuctl create bucket reports --request-id quickstart-reports --quota-bytes 1Gi --wait
yunshuctl -o json credentials issue bucket reports --ttl 1h --request-id quickstart-reports-keys > "$DIR/reports.credentials.json"
python3 - "$DIR/reports.credentials.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print("access key", c["accessKeyId"], "expires", c.get("expireTime"), "endpoint", c["endpoints"][0])
PY
S3PY=${YUNSHU_S3_TOOLS:-$HOME/.cache/yunshu/s3-tools}/client/bin/python
bash "$ROOT/e2e/s3/install.sh" client >/dev/null
"$S3PY" - "$DIR/reports.credentials.json" <<'PY'
import json, sys, boto3
from botocore.config import Config
c = json.load(open(sys.argv[1]))
s3 = boto3.client("s3", endpoint_url=c["endpoints"][0], aws_access_key_id=c["accessKeyId"],
                  aws_secret_access_key=c["secretAccessKey"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
bucket = c["bucket"]
s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello from the health commission\n")
print("read back:", s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read().decode().strip())
PY
yunshuctl quota
cat <<EOF

Done. Yunshu is still running (PID $(cat "$DIR/yunshu.pid")); yunshuctl is configured for health:
  XDG_CONFIG_HOME=$DIR $BIN/yunshuctl list instances
Stop everything with: bash e2e/quickstart.sh down $DIR
EOF
