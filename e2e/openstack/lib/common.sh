# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are used by the scripts that source this
# Shared by up.sh, down.sh, status.sh and smoke.sh: where things live, which
# port each service gets, and how a started process is recorded and checked.
#
# State directory layout (STATE = the directory given on the command line):
#   STATE/settings.env          ports, passwords, sizes of the first run (reused on restart)
#   STATE/clouds.yaml           both clouds, for `openstack --os-cloud NAME`
#   STATE/clouds.json           both clouds, machine-readable (auth + endpoints + arch)
#   STATE/infra/                RabbitMQ + epmd + MariaDB, shared by the clouds
#   STATE/<cloud>/              etc/ data/ log/ run/ env clouds.yaml — one per cloud
# A process record is STATE/<scope>/run/<service>.pid holding "PID STARTTIME", where
# STARTTIME is field 22 of /proc/PID/stat: a recycled PID never matches it.

YS_OSP_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
YS_OSP_DIR=$(dirname "$YS_OSP_LIB")
PY=/usr/bin/python3            # the distro python that sees the python3-* packages
OSC=/usr/bin/openstack
LOOPBACK=127.0.0.1
CLOUDS=(x86-cloud kunpeng-cloud)

say() { printf '[%s %s] %s\n' "${YS_TAG:-e2e/openstack}" "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- settings ---------------------------------------------------------------------------
# load_settings STATE: variables given in the environment win, then settings.env, then defaults.
load_settings() {
  local state=$1 k v
  if [ -f "$state/settings.env" ]; then
    while IFS='=' read -r k v; do
      case "$k" in YS_OSP_*) [ -z "${!k+set}" ] && printf -v "$k" '%s' "$v" ;; esac
    done < "$state/settings.env"
  fi
  : "${YS_OSP_PORT_BASE:=26000}"
  : "${YS_OSP_COMPUTES:=2}"
  : "${YS_OSP_ADMIN_PASSWORD_X86:=x86-admin-pw}"
  : "${YS_OSP_ADMIN_PASSWORD_KUNPENG:=kunpeng-admin-pw}"
  : "${YS_OSP_SERVICE_PASSWORD:=svc-pw}"
  : "${YS_OSP_DB_PASSWORD:=db-pw}"
  : "${YS_OSP_RABBIT_PASSWORD:=mq-pw}"
  : "${YS_OSP_REGION_X86:=x86-region}"
  : "${YS_OSP_REGION_KUNPENG:=kunpeng-region}"
  export YS_OSP_PORT_BASE YS_OSP_COMPUTES YS_OSP_ADMIN_PASSWORD_X86 YS_OSP_ADMIN_PASSWORD_KUNPENG \
    YS_OSP_SERVICE_PASSWORD YS_OSP_DB_PASSWORD YS_OSP_RABBIT_PASSWORD YS_OSP_REGION_X86 YS_OSP_REGION_KUNPENG
}
save_settings() {
  local state=$1
  {
    for k in YS_OSP_PORT_BASE YS_OSP_COMPUTES YS_OSP_ADMIN_PASSWORD_X86 YS_OSP_ADMIN_PASSWORD_KUNPENG \
             YS_OSP_SERVICE_PASSWORD YS_OSP_DB_PASSWORD YS_OSP_RABBIT_PASSWORD \
             YS_OSP_REGION_X86 YS_OSP_REGION_KUNPENG; do
      printf '%s=%s\n' "$k" "${!k}"
    done
  } > "$state/settings.env"
}

# --- per-cloud facts --------------------------------------------------------------------
# cloud_vars CLOUD: sets C_* variables describing that cloud (ports, arch, names).
cloud_vars() {
  case "$1" in
    x86-cloud)
      C_OFF=10; C_SLUG=x86; C_ARCH=x86_64; C_TRAIT=HW_ARCH_X86_64; C_CIDR=10.10.0.0/24
      C_REGION=$YS_OSP_REGION_X86; C_ADMIN_PW=$YS_OSP_ADMIN_PASSWORD_X86 ;;
    kunpeng-cloud)
      C_OFF=20; C_SLUG=kunpeng; C_ARCH=aarch64; C_TRAIT=HW_ARCH_AARCH64; C_CIDR=10.20.0.0/24
      C_REGION=$YS_OSP_REGION_KUNPENG; C_ADMIN_PW=$YS_OSP_ADMIN_PASSWORD_KUNPENG ;;
    *) fail "unknown cloud '$1' (known: ${CLOUDS[*]})" ;;
  esac
  local b=$((YS_OSP_PORT_BASE + C_OFF))
  C_KEYSTONE_PORT=$b; C_PLACEMENT_PORT=$((b+1)); C_NOVA_PORT=$((b+2))
  C_GLANCE_PORT=$((b+3)); C_NEUTRON_PORT=$((b+4)); C_CINDER_PORT=$((b+5))
  C_KEYSTONE_URL=http://$LOOPBACK:$C_KEYSTONE_PORT/v3
}
# cloud_services CLOUD: the service names, in start order.
cloud_services() {
  local i out=(keystone placement glance-api neutron-api nova-api nova-conductor nova-scheduler)
  for ((i = 1; i <= YS_OSP_COMPUTES; i++)); do out+=("nova-compute-$i"); done
  out+=(cinder-api cinder-scheduler cinder-volume)
  echo "${out[@]}"
}
INFRA_SERVICES=(epmd rabbitmq mariadb)
infra_ports() {
  I_AMQP_PORT=$YS_OSP_PORT_BASE; I_DIST_PORT=$((YS_OSP_PORT_BASE+1))
  I_EPMD_PORT=$((YS_OSP_PORT_BASE+2)); I_SQL_PORT=$((YS_OSP_PORT_BASE+3))
}

# --- process records --------------------------------------------------------------------
# field 22 of /proc/PID/stat; the text after the last ')' starts at field 3
# shellcheck disable=SC2086  # the word splitting of $s is the point
proc_start_time() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
# record_alive FILE -> 0 when the PID in FILE runs and is the same process that was recorded
record_alive() {
  local pid st
  [ -f "$1" ] || return 1
  read -r pid st < "$1" || true
  [ -n "${pid:-}" ] && [ "$(proc_start_time "$pid" 2>/dev/null)" = "${st:-none}" ]
}
record_pid() { echo "$1 $(proc_start_time "$1")" > "$2"; }
# group_members PGID -> PIDs in that process group (started with setsid: PGID == leader PID)
group_members() { ps -e -o pid=,pgid= | awk -v g="$1" '$2 == g { print $1 }'; }

port_open() { (exec 3<>"/dev/tcp/$LOOPBACK/$1") 2>/dev/null; }
