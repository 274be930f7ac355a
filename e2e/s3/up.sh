#!/usr/bin/env bash
# Starts a local S3-compatible server on 127.0.0.1 for Yunshu's S3 adapter tests.
#
#   up.sh --backend ceph|seaweedfs [--port N] STATE_DIR
#
# ceph       one ceph-mon, one bluestore ceph-osd on a sparse file, one radosgw;
#            admin dialect "rgw-admin" (RGW Admin Ops API under /admin on the S3 port)
# seaweedfs  one `weed mini` process (master, volume, filer, S3 + embedded IAM API);
#            admin dialect "iam" (IAM query API on the S3 port)
#
# The server's data, configuration and logs live in STATE_DIR (weed's gRPC unix
# sockets excepted: it puts them in /tmp). On success STATE_DIR/env holds
# KEY=value lines (dotenv style; `set -a; . env`):
#   S3_BACKEND S3_DIALECT S3_ENDPOINT S3_REGION S3_ADMIN_ACCESS_KEY S3_ADMIN_SECRET_KEY
#   ceph:      CEPH_CONF (for radosgw-admin / ceph CLI debugging)
#   seaweedfs: SEAWEEDFS_WEED SEAWEEDFS_MASTER SEAWEEDFS_FILER (for `weed shell`)
# and STATE_DIR/pids lists every process started ("pid starttime name"); down.sh
# stops exactly those. The same STATE_DIR can be brought up again after down.sh:
# data, ports and credentials are kept.
#
# Ports: --port N (or YUNSHU_S3_PORT) fixes the S3 port; the backend's other ports
# follow it (see README.md). Without it a free block is searched.
# Knobs: YUNSHU_S3_READY_TIMEOUT (seconds, default 120), YUNSHU_CEPH_OSD_GB
# (sparse OSD file, default 10), YUNSHU_S3_REGION (default us-east-1).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

backend='' port=${YUNSHU_S3_PORT:-} state=''
while (($#)); do
  case $1 in
    --backend) backend=${2:-}; shift 2 ;;
    --backend=*) backend=${1#*=}; shift ;;
    --port) port=${2:-}; shift 2 ;;
    --port=*) port=${1#*=}; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) [[ -z $state ]] || { echo "one STATE_DIR only" >&2; exit 2; }; state=$1; shift ;;
  esac
done
if [[ $backend != ceph && $backend != seaweedfs ]] || [[ -z $state ]]; then
  echo "usage: $0 --backend ceph|seaweedfs [--port N] STATE_DIR" >&2; exit 2
fi
[[ -z $port || $port =~ ^[0-9]+$ ]] || { echo "--port wants a number" >&2; exit 2; }

S3E_TAG="up:$backend"
mkdir -p "$state"
STATE=$(cd "$state" && pwd)
LOG=$STATE/log
mkdir -p "$LOG"
touch "$STATE/pids"
READY=${YUNSHU_S3_READY_TIMEOUT:-120}
REGION=${YUNSHU_S3_REGION:-us-east-1}
T0=$(s3e_now)

# A state dir belongs to one backend for its whole life.
if [[ -f $STATE/backend && $(cat "$STATE/backend") != "$backend" ]]; then
  s3e_die "$STATE holds a $(cat "$STATE/backend") server; use another directory"
fi
echo "$backend" > "$STATE/backend"

# Already running? Then there is nothing to start.
live=0
while read -r pid st _; do
  [[ -n ${pid:-} ]] || continue
  if s3e_same_process "$pid" "$st"; then live=$((live + 1)); fi
done < "$STATE/pids"
if ((live)); then
  [[ -f $STATE/env ]] || s3e_die "$live recorded process(es) alive but no env file; run down.sh $STATE first"
  s3e_log "already running ($live processes); env in $STATE/env"
  exit 0
fi
: > "$STATE/pids"

# If we fail half-way, stop what this run started rather than leave it behind.
started_ok=0
cleanup_on_failure() {
  ((started_ok)) && return
  s3e_log "start failed; stopping what this run started (logs in $LOG)"
  "$S3E_HERE/down.sh" "$STATE" >&2 || true
}
trap cleanup_on_failure EXIT

# ---------------------------------------------------------------------------
# Port layout. Each backend uses a block of ports counted from the S3 port
# (offsets below). The block is chosen once and kept in STATE_DIR/ports.
block_ports() { # S3 port -> every port the backend binds
  local o offsets
  case $backend in
    # s3, mon v2, mon v1, then a range for the daemons' messengers
    ceph) offsets="0 1 2 $(seq -s ' ' 20 59)" ;;
    # s3, master, volume, filer, admin; gRPC of s3/master/volume/filer at +10; the
    # admin gRPC port at admin + 10000, because weed mini's built-in worker dials
    # that port whatever -admin.port.grpc says
    seaweedfs) offsets="0 1 2 3 4 10 11 12 13 10004" ;;
  esac
  for o in $offsets; do echo $(( $1 + o )); done
}
block_free() { local ports; mapfile -t ports < <(block_ports "$1"); s3e_ports_free "${ports[@]}"; }

if [[ -f $STATE/ports ]]; then
  base=$(cat "$STATE/ports")
  [[ -z $port || $port == "$base" ]] || s3e_die "$STATE was set up on port $base; reuse it or use another directory"
  block_free "$base" || s3e_die "ports of $STATE (from $base) are taken by something else"
elif [[ -n $port ]]; then
  base=$port
  block_free "$base" || s3e_die "a port in the block from $base is in use; pick another --port"
else
  # Start somewhere pseudo-random in 20000-29900 so parallel runs rarely collide.
  base=$(( 20000 + (RANDOM % 100) * 100 ))
  for ((try = 0; try < 100; try++)); do
    block_free "$base" && break
    base=$(( base + 100 )); (( base < 30000 )) || base=20000
  done
  block_free "$base" || s3e_die "no free port block found in 20000-29999"
fi
echo "$base" > "$STATE/ports"
ENDPOINT=http://127.0.0.1:$base

# Admin credentials are made once per state dir and kept (mode 600).
if [[ ! -f $STATE/admin-credentials ]]; then
  ( umask 077
    echo "$(s3e_random 'A-Z0-9' 20) $(s3e_random 'A-Za-z0-9' 40)" > "$STATE/admin-credentials" )
fi
read -r ADMIN_AK ADMIN_SK < "$STATE/admin-credentials"

write_env() { # extra KEY=value lines follow the common ones
  ( umask 077
    {
      echo "S3_BACKEND=$backend"
      echo "S3_DIALECT=$1"; shift
      echo "S3_ENDPOINT=$ENDPOINT"
      echo "S3_REGION=$REGION"
      echo "S3_ADMIN_ACCESS_KEY=$ADMIN_AK"
      echo "S3_ADMIN_SECRET_KEY=$ADMIN_SK"
      printf '%s\n' "$@"
    } > "$STATE/env.tmp" )
  mv "$STATE/env.tmp" "$STATE/env"
}

# ---------------------------------------------------------------------------
ceph_up() {
  local c=$STATE/ceph/ceph.conf d=$STATE/ceph
  local mon2=$((base + 1)) mon1=$((base + 2))
  local cli=(timeout 30 ceph -c "$c" --connect-timeout 10)
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
    command -v "$b" >/dev/null || s3e_die "$b not found; run $S3E_HERE/install.sh ceph"
  done

  if [[ ! -f $d/mon/done ]]; then
    rm -rf "$d"; mkdir -p "$d/mon" "$d/osd" "$d/rgw" "$d/run"
    local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
    cat > "$c" <<EOF
# Written by yunshu e2e/s3/up.sh: a throwaway one-node Ceph for tests.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
# every daemon messenger binds inside this state dir's port block
ms bind port min = $((base + 20))
ms bind port max = $((base + 59))
keyring = $d/keyring
log file = $LOG/\$name.log
# the monitor's cluster and audit logs would otherwise go to /var/log/ceph
mon cluster log file = default=$LOG/cluster.\$channel.log cluster=$LOG/cluster.log
admin socket = $d/run/\$name.asok
run dir = $d/run
pid file =
auth allow insecure global id reclaim = false
# one OSD: single-copy pools, placement across OSDs instead of hosts
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 500
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = $d/mon

[osd]
osd data = $d/osd
keyring = $d/osd/keyring
osd objectstore = bluestore
# bluestore makes its block device as a sparse file inside osd data
bluestore block create = true
bluestore block size = $(( ${YUNSHU_CEPH_OSD_GB:-10} * 1024 * 1024 * 1024 ))
bluestore block db create = false
bluestore block wal create = false
osd memory target = 1073741824

[client.rgw.yunshu]
rgw frontends = beast endpoint=127.0.0.1:$base
rgw data = $d/rgw
rgw thread pool size = 32
# the usage log backs GET /admin/usage; flush it promptly so tests see it
rgw enable usage log = true
rgw usage log tick interval = 1
rgw usage log flush threshold = 1
# bucket quota: read fresh bucket stats on each write (exact enforcement)
rgw bucket quota ttl = 0
# user quota: stats are summed by background sync threads. Keep these above 0:
# at 0 the sync threads loop without sleeping and burn a whole core.
rgw user quota bucket sync interval = 10
rgw user quota sync interval = 60
EOF
    ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$d/keyring" --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]" "$d/monmap" >/dev/null
    ceph-mon -c "$c" -i a --mkfs --monmap "$d/monmap" --keyring "$d/keyring" >>"$LOG/setup.log" 2>&1 \
      || s3e_die "ceph-mon --mkfs failed; see $LOG/setup.log"
    touch "$d/mon/done"
  fi

  s3e_log "starting ceph-mon on 127.0.0.1:$mon2 (v2) / $mon1 (v1)"
  s3e_spawn "$LOG/ceph-mon.out" "$STATE" ceph-mon -f -c "$c" -i a
  s3e_record "$STATE" "$S3E_LAST_PID" ceph-mon
  s3e_wait "$READY" "monitor quorum" "${cli[@]}" mon stat || s3e_die "monitor did not answer in ${READY}s"

  if [[ ! -f $d/osd/done ]]; then
    local uuid secret id
    uuid=$(cat /proc/sys/kernel/random/uuid)
    secret=$(ceph-authtool --gen-print-key)
    # registers osd.0 with its cephx key in one step
    id=$(printf '{"cephx_secret": "%s"}' "$secret" | "${cli[@]}" osd new "$uuid" -i -)
    [[ $id == 0 ]] || s3e_die "expected osd id 0, got '$id'"
    ceph-authtool --create-keyring "$d/osd/keyring" -n osd.0 --add-key "$secret" >/dev/null
    s3e_log "formatting the bluestore OSD (sparse ${YUNSHU_CEPH_OSD_GB:-10} GiB file)"
    timeout 300 ceph-osd -c "$c" -i 0 --mkfs --osd-uuid "$uuid" >>"$LOG/setup.log" 2>&1 \
      || s3e_die "ceph-osd --mkfs failed; see $LOG/setup.log"
    touch "$d/osd/done"
  fi

  s3e_log "starting ceph-osd"
  s3e_spawn "$LOG/ceph-osd.out" "$STATE" ceph-osd -f -c "$c" -i 0
  s3e_record "$STATE" "$S3E_LAST_PID" ceph-osd
  # shellcheck disable=SC2317  # called through s3e_wait
  osd_up() { "${cli[@]}" osd stat -f json | grep -q '"num_up_osds":1'; }
  s3e_wait "$READY" "osd.0 up" osd_up || s3e_die "osd.0 did not come up in ${READY}s"

  if ! grep -q 'client.rgw.yunshu' "$d/keyring"; then
    "${cli[@]}" auth get-or-create client.rgw.yunshu mon 'allow rw' osd 'allow rwx' >> "$d/keyring"
  fi
  s3e_log "starting radosgw on $ENDPOINT"
  s3e_spawn "$LOG/radosgw.out" "$STATE" radosgw -f -c "$c" -n client.rgw.yunshu
  s3e_record "$STATE" "$S3E_LAST_PID" radosgw
  # the first start creates the RGW pools; the gateway listens once they are usable
  s3e_wait "$READY" "S3 answers" s3e_http_answers "$ENDPOINT/" || s3e_die "radosgw did not answer in ${READY}s"

  # The admin identity: an RGW user with the Admin Ops caps the adapter needs.
  if ! timeout 60 radosgw-admin -c "$c" -n client.admin user info --uid=yunshu-admin >/dev/null 2>&1; then
    timeout 60 radosgw-admin -c "$c" -n client.admin user create --uid=yunshu-admin \
      --display-name="Yunshu admin" --access-key="$ADMIN_AK" --secret-key="$ADMIN_SK" \
      --caps="users=*;buckets=*;usage=*;metadata=*" >/dev/null \
      || s3e_die "radosgw-admin user create failed"
    s3e_log "admin user yunshu-admin created"
  fi
  write_env rgw-admin "CEPH_CONF=$c"
}

# ---------------------------------------------------------------------------
seaweedfs_up() {
  [[ -x $S3E_WEED ]] || s3e_die "weed not found at $S3E_WEED; run $S3E_HERE/install.sh seaweedfs"
  local master=$((base + 1)) volume=$((base + 2)) filer=$((base + 3)) admin=$((base + 4))
  mkdir -p "$STATE/data"
  # The S3 identities file: the admin identity, with rights over everything,
  # including the embedded IAM API. Users made through IAM are stored by the filer.
  ( umask 077
    printf '{"identities": [{"name": "yunshu-admin", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n' \
      "$ADMIN_AK" "$ADMIN_SK" > "$STATE/s3-identities.json" )

  s3e_log "starting weed mini on $ENDPOINT"
  # Every port is explicit (gRPC ports would default to http port + 10000), the
  # sidecars not needed for S3 (WebDAV, Iceberg, Lance, admin UI) are off, and
  # the master's telemetry, which would post to the internet, is disabled.
  # -logdir: weed's glog files would otherwise pile up in /tmp. (Its gRPC unix
  # sockets, /tmp/seaweedfs-<service>-grpc-<port>.sock, cannot be moved; down.sh
  # removes any it leaves behind.)
  s3e_spawn "$LOG/weed.log" "$STATE" "$S3E_WEED" -logdir="$LOG" mini \
    -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$base" -s3.port.grpc=$((base + 10)) \
    -master.port="$master" -master.port.grpc=$((master + 10)) \
    -volume.port="$volume" -volume.port.grpc=$((volume + 10)) \
    -filer.port="$filer" -filer.port.grpc=$((filer + 10)) \
    -admin.port="$admin" -admin.port.grpc=$((admin + 10000)) -admin.ui=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false \
    -master.telemetry=false \
    -filer.localSocket="$STATE/filer.sock" -s3.localSocket="$STATE/s3.sock" \
    -s3.config="$STATE/s3-identities.json" -s3.iam.readOnly=false \
    -s3.allowDeleteBucketNotEmpty=false -s3.autoCreateBucket=false
  s3e_record "$STATE" "$S3E_LAST_PID" weed-mini
  s3e_wait "$READY" "S3 answers" s3e_http_answers "$ENDPOINT/" || s3e_die "weed mini did not answer in ${READY}s"
  # SeaweedFS addresses take the form host:httpPort.grpcPort
  write_env iam "SEAWEEDFS_WEED=$S3E_WEED" \
    "SEAWEEDFS_MASTER=127.0.0.1:$master.$((master + 10))" \
    "SEAWEEDFS_FILER=127.0.0.1:$filer.$((filer + 10))"
}

"${backend}_up"
started_ok=1
s3e_log "ready at $ENDPOINT in $(s3e_since "$T0")s, $(wc -l < "$STATE/pids") process(es), RSS $(s3e_rss_mib "$STATE") MiB; env in $STATE/env"
