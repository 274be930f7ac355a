#!/usr/bin/env bash
# e2e/openstack/smoke.sh STATE_DIR — prove both clouds of up.sh work, with the real
# `openstack` CLI, one cloud after the other:
#   token issue; hypervisors and the CPU architecture each reports; the HW_ARCH_* trait of
#   each resource provider in Placement; the kylin-v10 image chosen by its os_distro and
#   hw_architecture properties; `openstack server create --wait` on the shared network ys-net
#   (timed) -> ACTIVE with an address, on a host of the right architecture -> delete; the same
#   through the Nova API with 0.1 s polling (lib/boot_timing.py, 3 servers, timed); a Cinder
#   volume created -> available -> deleted.
# Every CLI call is bounded by `timeout`. Exit status 0 only if every step passed.
set -euo pipefail
YS_TAG=e2e/openstack/smoke
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
STATE=$(cd "$1" && pwd)
load_settings "$STATE"
unset OS_CLOUD OS_CLIENT_CONFIG_FILE

os() { timeout 120 "$OSC" "$@"; }
osv() { os "$@" -f value; }
step() { printf '  - %s\n' "$*"; }
# poll_until SECONDS CMD... : repeat CMD (quiet) until it succeeds
poll_until() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 1
  done
}
volume_status_is() { [ "$(osv volume show "$1" -c status 2>/dev/null)" = "$2" ]; }
volume_gone() { ! os volume show "$1" >/dev/null 2>&1; }

declare -A BOOT CLI VOL HOST API
smoke_cloud() {
  local cloud=$1 t0
  cloud_vars "$cloud"
  # shellcheck disable=SC1090
  source "$STATE/$cloud/env"
  echo "== $cloud (expects $C_ARCH, region $OS_REGION_NAME, $OS_AUTH_URL)"

  step "token issue"
  t0=$(now)
  osv token issue -c project_id >/dev/null
  CLI[$cloud]=$(since "$t0")
  echo "    ok, ${CLI[$cloud]}s for a CLI call (python start + password auth + one request)"

  step "hypervisors and their architecture"
  local hv arch bad=0
  for hv in $(osv hypervisor list -c "Hypervisor Hostname"); do
    # cpu_info (with arch) is shown up to compute API microversion 2.87
    arch=$(os --os-compute-api-version 2.53 hypervisor show "$hv" -f json -c cpu_info \
      | "$PY" -c 'import json,sys; c=json.load(sys.stdin)["cpu_info"]; c=json.loads(c) if isinstance(c,str) else c; print(c.get("arch"), c.get("vendor"), c.get("model"))')
    echo "    $hv: $arch"
    [ "${arch%% *}" = "$C_ARCH" ] || bad=1
  done
  [ $bad = 0 ] || fail "$cloud: a hypervisor does not report $C_ARCH"

  step "placement: resource providers and their HW_ARCH trait"
  local uuid name traits
  while read -r uuid name; do
    traits=$(osv --os-placement-api-version 1.6 resource provider trait list "$uuid" | grep -E '^HW_(ARCH|CPU)_' | tr '\n' ' ')
    echo "    $name: $traits"
    [[ " $traits " == *" $C_TRAIT "* ]] || fail "$cloud: provider $name lacks $C_TRAIT"
  done < <(osv resource provider list -c uuid -c name)

  step "image kylin-v10 by properties os_distro=kylin hw_architecture=$C_ARCH"
  local image
  image=$(osv image list --property os_distro=kylin --property hw_architecture="$C_ARCH" -c ID | head -n 1)
  [ -n "$image" ] || fail "$cloud: no kylin image for $C_ARCH"
  echo "    $image"

  local server=ys-smoke-$cloud
  for id in $(osv server list --name "^$server\$" -c ID); do os server delete --wait "$id"; done
  step "openstack server create --wait (m1.tiny, network ys-net)"
  t0=$(now)
  os --os-compute-api-version 2.52 server create --flavor m1.tiny --image "$image" --network ys-net \
    --tag ys-smoke --wait "$server" -f value -c id >/dev/null
  BOOT[$cloud]=$(since "$t0")
  local status host addr
  read -r host status addr < <(os server show "$server" -f json | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
a = s.get("addresses") or {}
if isinstance(a, dict):  # {"net": ["ip", ...]} in this client; older ones print "net=ip"
    a = ",".join("%s=%s" % (k, "+".join(v)) for k, v in a.items())
print(s["OS-EXT-SRV-ATTR:host"], s["status"], a or "-")')
  HOST[$cloud]=$host
  echo "    $status on $host, addresses $addr, after ${BOOT[$cloud]}s (whole CLI command)"
  [ "$status" = ACTIVE ] || fail "$cloud: server is $status"
  [[ "$host" == "$cloud-compute-"* ]] || fail "$cloud: server landed on unexpected host $host"

  step "server delete --wait"
  t0=$(now)
  os server delete --wait "$server"
  echo "    gone after $(since "$t0")s"

  step "Nova API directly: 3 servers create -> ACTIVE -> delete, polled every 0.1 s"
  local timing
  timing=$(timeout 300 "$PY" "$YS_OSP_LIB/boot_timing.py" "$image" m1.tiny ys-net 3) \
    || fail "$cloud: API boot timing"
  grep -v '^MEDIAN_BOOT=' <<<"$timing" | sed 's/^/    /'
  API[$cloud]=$(sed -n 's/^MEDIAN_BOOT=//p' <<<"$timing")

  step "cinder: volume create -> available -> delete"
  local vol=ys-smoke-vol-$cloud
  for id in $(osv volume list --name "$vol" -c ID); do os volume delete "$id" || true; done
  t0=$(now)
  local vid
  vid=$(osv volume create --size 1 "$vol" -c id)
  poll_until 60 volume_status_is "$vid" available || fail "$cloud: volume $vid not available: $(osv volume show "$vid" -c status)"
  os volume delete "$vid"
  poll_until 60 volume_gone "$vid" || fail "$cloud: volume $vid not deleted"
  VOL[$cloud]=$(since "$t0")
  echo "    volume $vid created, available, deleted in ${VOL[$cloud]}s"
}

T0=$(now)
for cloud in "${CLOUDS[@]}"; do
  ( smoke_cloud "$cloud"; declare -p BOOT CLI VOL HOST API > "$STATE/$cloud/smoke.result" ) \
    || fail "$cloud smoke test"
done
echo
echo "== summary"
printf '  %-14s %-8s %-26s %12s %10s %12s %8s\n' CLOUD ARCH HOST "CREATE--WAIT" "CLI_CALL" "API_MEDIAN" VOLUME
for cloud in "${CLOUDS[@]}"; do
  # shellcheck disable=SC1090
  source "$STATE/$cloud/smoke.result"
  cloud_vars "$cloud"
  printf '  %-14s %-8s %-26s %11ss %9ss %11ss %7ss\n' "$cloud" "$C_ARCH" "${HOST[$cloud]}" "${BOOT[$cloud]}" "${CLI[$cloud]}" "${API[$cloud]}" "${VOL[$cloud]}"
done
echo "  CREATE--WAIT: wall time of 'openstack server create --wait' (CLI start-up included; the CLI"
echo "                polls every 5 s, so this is rounded up to its next poll)"
echo "  CLI_CALL:     one 'openstack token issue', roughly the CLI start-up cost alone"
echo "  API_MEDIAN:   median create -> ACTIVE through the Nova API, 0.1 s polling"
say "SMOKE OK in $(since "$T0")s"
