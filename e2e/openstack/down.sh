#!/usr/bin/env bash
# e2e/openstack/down.sh STATE_DIR [SCOPE [SERVICE...]] — stop what up.sh started.
#
#   down.sh STATE                        both clouds, then RabbitMQ, MariaDB, epmd
#   down.sh STATE kunpeng-cloud          one cloud (the shared RabbitMQ/MariaDB stay up)
#   down.sh STATE kunpeng-cloud keystone one service (up.sh STATE starts it again)
#
# Only processes recorded in STATE/<scope>/run/<service>.pid are signalled, and only while
# the recorded start time still matches (a recycled PID is left alone). Each service was
# started as the leader of its own process group; its children (uWSGI workers, Erlang
# helpers, Cinder's backend process) are signalled through that group.
# Order: SIGTERM to the leader (SIGINT for a uWSGI master); after 20 s SIGTERM to its group; after 5 s more SIGKILL to
# the group. Prints one line per service and exits non-zero if anything survived.
set -uo pipefail
YS_TAG=e2e/openstack/down
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR [SCOPE [SERVICE...]]" >&2; exit 2; }
[ -d "$1" ] || { say "no state directory $1: nothing to stop"; exit 0; }
STATE=$(cd "$1" && pwd)
load_settings "$STATE"
SCOPE=${2:-}
shift $(( $# >= 2 ? 2 : 1 ))
ONLY=("$@")

# the records to stop, in waves: API front doors and workers of the clouds first, the
# shared message bus and database after them, epmd last (RabbitMQ needs it to stop cleanly)
wave_clouds=(); wave_infra=(); wave_last=()
add_scope() {
  local scope=$1 f name
  for f in "$STATE/$scope"/run/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if [ ${#ONLY[@]} -gt 0 ] && [[ " ${ONLY[*]} " != *" $name "* ]]; then continue; fi
    case "$scope/$name" in
      infra/epmd) wave_last+=("$f") ;;
      infra/*) wave_infra+=("$f") ;;
      *) wave_clouds+=("$f") ;;
    esac
  done
}
if [ -n "$SCOPE" ]; then
  [ -d "$STATE/$SCOPE/run" ] || { say "no scope $SCOPE in $STATE"; exit 1; }
  add_scope "$SCOPE"
else
  for s in "${CLOUDS[@]}" infra; do add_scope "$s"; done
fi

group_alive() { [ -n "$(group_members "$1")" ]; }
label() { local f=$1; echo "$(basename "$(dirname "$(dirname "$f")")")/$(basename "$f" .pid)"; }

survivors=0
stop_wave() {
  local f pid st targets=() t0 waited
  for f in "$@"; do
    read -r pid st < "$f" 2>/dev/null || { rm -f "$f"; continue; }
    if record_alive "$f"; then
      if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/bin/uwsgi-core ]; then
        kill -INT "$pid" 2>/dev/null    # uWSGI master: INT = stop now; TERM waits for workers
      else
        kill -TERM "$pid" 2>/dev/null
      fi
      targets+=("$f")
    elif [ ! -d "/proc/$pid" ] && group_alive "$pid"; then
      # leader gone, children left: while any member lives, no new process can get this
      # PID, so the group is still the one we started
      kill -TERM -- "-$pid" 2>/dev/null
      targets+=("$f")
    else
      printf '  %-32s not running (stale record removed)\n' "$(label "$f")"
      rm -f "$f"
    fi
  done
  [ ${#targets[@]} -gt 0 ] || return 0
  t0=$(now)
  for waited in $(seq 1 50); do       # up to 25 s in total
    local any=0
    for f in "${targets[@]}"; do read -r pid st < "$f"; group_alive "$pid" && any=1; done
    [ $any = 0 ] && break
    if [ "$waited" = 40 ]; then       # 20 s: the whole group gets SIGTERM
      for f in "${targets[@]}"; do read -r pid st < "$f"; group_alive "$pid" && kill -TERM -- "-$pid" 2>/dev/null; done
    fi
    sleep 0.5
  done
  for f in "${targets[@]}"; do
    read -r pid st < "$f"
    if group_alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null
      sleep 0.5
      if group_alive "$pid"; then
        printf '  %-32s pid %-7s STILL RUNNING\n' "$(label "$f")" "$pid"; survivors=$((survivors + 1)); continue
      fi
      printf '  %-32s pid %-7s killed (SIGKILL after %ss)\n' "$(label "$f")" "$pid" "$(since "$t0")"
    else
      printf '  %-32s pid %-7s stopped\n' "$(label "$f")" "$pid"
    fi
    rm -f "$f"
  done
}

T0=$(now)
n=$(( ${#wave_clouds[@]} + ${#wave_infra[@]} + ${#wave_last[@]} ))
say "stopping $n recorded services in $STATE"
stop_wave "${wave_clouds[@]}"
stop_wave "${wave_infra[@]}"
stop_wave "${wave_last[@]}"
if [ $survivors -gt 0 ]; then
  say "$survivors service(s) could not be stopped"; exit 1
fi
say "done in $(since "$T0")s"
