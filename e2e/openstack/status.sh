#!/usr/bin/env bash
# e2e/openstack/status.sh STATE_DIR — one line per service of the shared infrastructure and
# of each cloud: up/down, leader PID, processes in its group, memory (PSS, MiB) and, for
# services with a port, whether that port accepts connections. Ends with the memory total.
# Exit status: 0 when every service is up, 1 otherwise.
set -uo pipefail
YS_TAG=e2e/openstack/status
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[ -d "$1" ] || { say "no state directory $1"; exit 1; }
STATE=$(cd "$1" && pwd)
load_settings "$STATE"
infra_ports

port_of() {  # port_of SCOPE SERVICE -> port or empty
  case "$1/$2" in
    infra/rabbitmq) echo "$I_AMQP_PORT" ;;
    infra/mariadb) echo "$I_SQL_PORT" ;;
    infra/epmd) echo "$I_EPMD_PORT" ;;
    infra/*) ;;
    *)
      cloud_vars "$1"
      case "$2" in
        keystone) echo "$C_KEYSTONE_PORT" ;; placement) echo "$C_PLACEMENT_PORT" ;;
        nova-api) echo "$C_NOVA_PORT" ;; glance-api) echo "$C_GLANCE_PORT" ;;
        neutron-api) echo "$C_NEUTRON_PORT" ;; cinder-api) echo "$C_CINDER_PORT" ;;
      esac ;;
  esac
}
pss_kib() {  # summed PSS of a process group
  local total=0 p v
  for p in $(group_members "$1"); do
    v=$(awk '/^Pss:/ { print $2; exit }' "/proc/$p/smaps_rollup" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

down=0; total_kib=0
printf '%-14s %-18s %-5s %8s %5s %8s  %s\n' SCOPE SERVICE STATE PID PROCS PSS_MiB PORT
for scope in infra "${CLOUDS[@]}"; do
  if [ "$scope" = infra ]; then services=("${INFRA_SERVICES[@]}"); else read -r -a services <<<"$(cloud_services "$scope")"; fi
  for svc in "${services[@]}"; do
    rec=$STATE/$scope/run/$svc.pid
    pid=-; procs=0; kib=0; state=down
    if record_alive "$rec"; then
      read -r pid _ < "$rec"
      state=up; procs=$(group_members "$pid" | wc -l); kib=$(pss_kib "$pid")
    fi
    port=$(port_of "$scope" "$svc"); portinfo=""
    if [ -n "$port" ]; then
      if port_open "$port"; then portinfo="$LOOPBACK:$port open"; else portinfo="$LOOPBACK:$port closed"; fi
    fi
    [ "$state" = up ] || down=$((down + 1))
    total_kib=$((total_kib + kib))
    printf '%-14s %-18s %-5s %8s %5s %8d  %s\n' "$scope" "$svc" "$state" "$pid" "$procs" $((kib / 1024)) "$portinfo"
  done
done
printf '%-14s %-18s %-5s %8s %5s %8d\n' total - - - - $((total_kib / 1024))
[ $down = 0 ]
