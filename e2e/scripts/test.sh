#!/usr/bin/env bash
# The test command: installs what the tests need, brings up the real
# backends, then runs every test of the workspace — unit tests, the store
# conformance suite against embedded and a real etcd, the admission
# invariant test, the adapter conformance suites against two real OpenStack
# clouds and two real S3 servers (Ceph RGW and SeaweedFS), and the real
# `yunshu` binary driven end to end, and last, alone, the one test that stops
# and restarts a cloud service. etcd and Prometheus are started by the
# tests themselves on free loopback ports and stopped by PID.
#
# Backends that are already running in the state directories below are
# reused and left running; backends this script starts are stopped at the
# end. Set YUNSHU_SKIP_BACKENDS=1 to run without them (their tests then
# print "skipped", except under CI=true where they fail).
#
#   YUNSHU_OPENSTACK_STATE     default /var/tmp/ys-osp
#   YUNSHU_S3_CEPH_STATE       default /var/tmp/ys-s3-ceph
#   YUNSHU_S3_SEAWEEDFS_STATE  default /var/tmp/ys-s3-seaweedfs
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yunshu-target}"
bash e2e/scripts/install-deps.sh

started=()
cleanup() {
  local rc=$?
  for entry in "${started[@]}"; do
    kind=${entry%%:*}; dir=${entry#*:}
    echo "test.sh: stopping the $kind backend this run started ($dir)" >&2
    case $kind in
      openstack) bash e2e/openstack/down.sh "$dir" >/dev/null 2>&1 || true ;;
      s3) bash e2e/s3/down.sh "$dir" >/dev/null 2>&1 || true ;;
    esac
  done
  exit $rc
}
trap cleanup EXIT

if [ "${YUNSHU_SKIP_BACKENDS:-}" != 1 ]; then
  export YUNSHU_OPENSTACK_STATE="${YUNSHU_OPENSTACK_STATE:-/var/tmp/ys-osp}"
  export YUNSHU_S3_CEPH_STATE="${YUNSHU_S3_CEPH_STATE:-/var/tmp/ys-s3-ceph}"
  export YUNSHU_S3_SEAWEEDFS_STATE="${YUNSHU_S3_SEAWEEDFS_STATE:-/var/tmp/ys-s3-seaweedfs}"

  t0=$SECONDS
  if bash e2e/openstack/status.sh "$YUNSHU_OPENSTACK_STATE" >/dev/null 2>&1; then
    echo "test.sh: reusing the OpenStack clouds in $YUNSHU_OPENSTACK_STATE" >&2
  else
    echo "test.sh: bringing up the OpenStack clouds in $YUNSHU_OPENSTACK_STATE" >&2
    bash e2e/openstack/up.sh "$YUNSHU_OPENSTACK_STATE" >&2
    started+=("openstack:$YUNSHU_OPENSTACK_STATE")
  fi
  bash e2e/s3/install.sh all >&2
  for backend in ceph seaweedfs; do
    if [ $backend = ceph ]; then dir=$YUNSHU_S3_CEPH_STATE; else dir=$YUNSHU_S3_SEAWEEDFS_STATE; fi
    was_up=0
    if [ -f "$dir/env" ] && [ -f "$dir/pids" ] && bash e2e/s3/up.sh --backend $backend "$dir" 2>&1 | grep -q "already running"; then
      was_up=1
      echo "test.sh: reusing the $backend S3 server in $dir" >&2
    else
      bash e2e/s3/up.sh --backend $backend "$dir" >&2
    fi
    [ $was_up = 1 ] || started+=("s3:$dir")
  done
  echo "test.sh: backends ready in $((SECONDS - t0)) s" >&2
fi

cargo test --workspace --locked "$@"

# The one disruptive test stops and restarts a service of the shared cloud,
# so it runs alone, after everything else has finished with the clouds.
if [ "${YUNSHU_SKIP_BACKENDS:-}" != 1 ] && [ $# -eq 0 ]; then
  cargo test -p yunshu-adapter-openstack --test openstack --locked -- \
    --ignored degraded_while_placement_is_down
fi
