#!/usr/bin/env bash
# Stops the processes up.sh started for STATE_DIR, and only those.
#
#   down.sh [--purge] STATE_DIR
#
# STATE_DIR/pids names each process by PID *and* start time, so a PID the kernel
# has since handed to another program is left alone. Processes are stopped in
# the reverse order of their start (for Ceph: radosgw, then the OSD, then the
# monitor): SIGTERM, up to YUNSHU_S3_STOP_TIMEOUT seconds (default 20) to exit,
# then SIGKILL. --purge removes STATE_DIR afterwards. Exit 0 when nothing
# recorded is left running.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
S3E_TAG=down

purge=0 state=
for a in "$@"; do
  case $a in
    --purge) purge=1 ;;
    -*) echo "unknown option: $a" >&2; exit 2 ;;
    *) state=$a ;;
  esac
done
[[ -n $state && -d $state ]] || { echo "usage: $0 [--purge] STATE_DIR" >&2; exit 2; }
STATE=$(cd "$state" && pwd)
limit=${YUNSHU_S3_STOP_TIMEOUT:-20}

entries=()
if [[ -f $STATE/pids ]]; then mapfile -t entries < "$STATE/pids"; fi

if [[ -s $STATE/pids ]]; then
  s3e_log "resident memory of the recorded processes before stopping: $(s3e_rss_mib "$STATE") MiB"
fi
left=0 stopped=0
for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
  read -r pid st name <<<"${entries[i]}"
  [[ ${pid:-} =~ ^[0-9]+$ ]] || continue
  if ! s3e_same_process "$pid" "$st"; then
    s3e_log "$name (pid $pid) is not running (exited, or its PID now names another process)"
    continue
  fi
  t0=$(s3e_now)
  kill -TERM "$pid" 2>/dev/null
  deadline=$(( $(date +%s) + limit ))
  while s3e_same_process "$pid" "$st" && (( $(date +%s) < deadline )); do sleep 0.2; done
  if s3e_same_process "$pid" "$st"; then
    s3e_log "$name (pid $pid) ignored SIGTERM for ${limit}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    sleep 0.5
  fi
  if s3e_same_process "$pid" "$st"; then
    s3e_log "$name (pid $pid) is still running"
    left=$((left + 1))
  else
    s3e_log "stopped $name (pid $pid) in $(s3e_since "$t0")s"
    stopped=$((stopped + 1))
  fi
done

if ((left)); then
  s3e_log "$left process(es) still running; $STATE/pids kept"
  exit 1
fi
: > "$STATE/pids" 2>/dev/null || true
# weed creates a unix socket per gRPC port at a fixed place in /tmp and does not
# always remove it on exit; remove those of this state dir's ports.
if [[ $(cat "$STATE/backend" 2>/dev/null) == seaweedfs && -f $STATE/ports ]]; then
  base=$(cat "$STATE/ports")
  for sock in s3-grpc-$((base + 10)) master-grpc-$((base + 11)) volume-grpc-$((base + 12)) \
              filer-grpc-$((base + 13)) admin-grpc-$((base + 10004)); do
    [[ -S /tmp/seaweedfs-$sock.sock ]] && rm -f "/tmp/seaweedfs-$sock.sock"
  done
fi
s3e_log "$STATE: $stopped process(es) stopped, none left"
if ((purge)); then
  rm -rf "$STATE"
  s3e_log "removed $STATE"
fi
