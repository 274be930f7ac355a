#!/usr/bin/env bash
# e2e/openstack/up.sh STATE_DIR — start two independent OpenStack (Zed) clouds on 127.0.0.1:
#
#   x86-cloud      computes report x86_64  (trait HW_ARCH_X86_64)
#   kunpeng-cloud  computes report aarch64 (trait HW_ARCH_AARCH64), like Kunpeng 920 hosts
#
# Each cloud has its own Keystone, Placement, Nova (API, conductor, scheduler and
# YS_OSP_COMPUTES computes on a fake virt driver), Glance (file store), Neutron API (ML2,
# no agents), Cinder (API, scheduler, volume on a fake driver), its own ports, state
# directory, databases, RabbitMQ vhost and user. One RabbitMQ and one MariaDB server are
# shared to save memory; neither cloud can see the other's vhost or databases.
# Everything runs as plain background processes; every PID is recorded under
# STATE_DIR/*/run/ and down.sh stops exactly those.
#
# Knobs (environment; the values of the first run are kept in STATE_DIR/settings.env):
#   YS_OSP_PORT_BASE   first port (default 26000): +0..+3 RabbitMQ, Erlang dist, epmd, MariaDB;
#                      x86-cloud +10..+15 and kunpeng-cloud +20..+25 = Keystone, Placement,
#                      Nova, Glance, Neutron, Cinder
#   YS_OSP_COMPUTES    nova-compute processes per cloud (default 2, sizes differ per node)
#   YS_OSP_REGION_X86, YS_OSP_REGION_KUNPENG, YS_OSP_ADMIN_PASSWORD_X86, ..._KUNPENG
#   YS_OSP_TIMEOUT     give up after this many seconds (default 900)
#   YS_OSP_SKIP_INSTALL=1  do not run install.sh first
# Re-running on a running state dir restarts only what is not running (e.g. after
# `down.sh STATE_DIR kunpeng-cloud keystone`).
set -euo pipefail
YS_TAG=e2e/openstack/up
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || fail "run as root (MariaDB and RabbitMQ run as the invoking user, root here)"
mkdir -p "$1"
STATE=$(cd "$1" && pwd)
load_settings "$STATE"
[ -f "$STATE/settings.env" ] || save_settings "$STATE"
infra_ports
T_START=$(now)
DEADLINE=$(( $(date +%s) + ${YS_OSP_TIMEOUT:-900} ))
left() { echo $(( DEADLINE - $(date +%s) )); }
unset PYTHONPATH PYTHONHOME    # the services must see only the distro python's packages

if [ "${YS_OSP_SKIP_INSTALL:-0}" != 1 ]; then
  bash "$YS_OSP_DIR/install.sh"
fi

INFRA=$STATE/infra
mkdir -p "$INFRA"/{etc,data,log,run}

# ------------------------------------------------------------------------------------------
# process helpers
# ------------------------------------------------------------------------------------------
# start_service SCOPE NAME CMD... : run CMD in a session of its own (PGID == PID) with output
# to SCOPE/log/NAME.log, and record its PID; no-op when the recorded process still runs.
STARTED=()
start_service() {
  local scope=$1 name=$2 pid; shift 2
  local rec=$STATE/$scope/run/$name.pid
  if record_alive "$rec"; then return 0; fi
  setsid "$@" >>"$STATE/$scope/log/$name.log" 2>&1 </dev/null &
  pid=$!
  record_pid "$pid" "$rec"
  STARTED+=("$scope/$name")
}
show_log() { say "last lines of $1:"; tail -n 25 "$1" >&2 || true; }
# wait_until SCOPE NAME WHAT CHECK... : poll CHECK until it succeeds; fail if NAME dies
wait_until() {
  local scope=$1 name=$2 what=$3; shift 3
  while ! "$@" 2>/dev/null; do
    if ! record_alive "$STATE/$scope/run/$name.pid"; then
      show_log "$STATE/$scope/log/$name.log"; fail "$scope/$name exited before $what"
    fi
    [ "$(left)" -gt 0 ] || { show_log "$STATE/$scope/log/$name.log"; fail "$scope/$name: no $what in time"; }
    sleep 0.5
  done
}
http_answers() {  # any HTTP status below 500 means the app is loaded and serving
  local code
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1") || return 1
  [ "$code" -ge 200 ] && [ "$code" -lt 500 ]
}
# run_step SCOPE NAME CMD... : a one-shot step in the background, log in SCOPE/log/NAME.log
declare -A STEP_PID=()
run_step() {
  local scope=$1 name=$2; shift 2
  ( "$@" ) >"$STATE/$scope/log/$name.log" 2>&1 </dev/null &
  STEP_PID[$scope/$name]=$!
}
wait_step() {
  local key=$1
  [ -n "${STEP_PID[$key]:-}" ] || return 0
  if ! wait "${STEP_PID[$key]}"; then
    show_log "$STATE/${key%%/*}/log/${key#*/}.log"
    fail "${key#*/} failed for ${key%%/*} (log: $STATE/${key%%/*}/log/${key#*/}.log)"
  fi
  unset "STEP_PID[$key]"
}
# once MARKER CMD... : run CMD unless MARKER exists; create MARKER on success
once() { local m=$1; shift; [ -f "$m" ] && return 0; "$@" && touch "$m"; }

# On failure, stop what this run started (what ran before it is left alone), so a failed
# start leaves no orphans. YS_OSP_KEEP_ON_FAILURE=1 keeps them for debugging.
on_exit() {
  local rc=$? key pid child scope names
  set +e
  [ "$rc" -eq 0 ] && return 0
  for key in "${!STEP_PID[@]}"; do          # one-shot steps still running (still our children)
    pid=${STEP_PID[$key]}
    [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$$" ] || continue
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -TERM "$child" 2>/dev/null; done
    kill -TERM "$pid" 2>/dev/null
  done
  [ ${#STARTED[@]} -gt 0 ] || return "$rc"
  if [ "${YS_OSP_KEEP_ON_FAILURE:-0}" = 1 ]; then
    say "left ${#STARTED[@]} started processes running; stop them with: $YS_OSP_DIR/down.sh $STATE"
    return "$rc"
  fi
  say "stopping the ${#STARTED[@]} processes this run started"
  for scope in "${CLOUDS[@]}" infra; do
    names=()
    for key in "${STARTED[@]}"; do [ "${key%%/*}" = "$scope" ] && names+=("${key#*/}"); done
    [ ${#names[@]} -eq 0 ] || bash "$YS_OSP_DIR/down.sh" "$STATE" "$scope" "${names[@]}" >&2 || true
  done
  return "$rc"
}
trap on_exit EXIT

# refuse a port that is open while the service of ours that owns it is not running
check_port() {  # check_port SCOPE SERVICE PORT
  if port_open "$3" && ! record_alive "$STATE/$1/run/$2.pid"; then
    fail "port $3 on $LOOPBACK (for $1/$2) is taken by another program; choose another YS_OSP_PORT_BASE"
  fi
}
check_port infra rabbitmq "$I_AMQP_PORT"; check_port infra rabbitmq "$I_DIST_PORT"
check_port infra epmd "$I_EPMD_PORT"; check_port infra mariadb "$I_SQL_PORT"
for cloud in "${CLOUDS[@]}"; do
  cloud_vars "$cloud"
  check_port "$cloud" keystone "$C_KEYSTONE_PORT"; check_port "$cloud" placement "$C_PLACEMENT_PORT"
  check_port "$cloud" nova-api "$C_NOVA_PORT"; check_port "$cloud" glance-api "$C_GLANCE_PORT"
  check_port "$cloud" neutron-api "$C_NEUTRON_PORT"; check_port "$cloud" cinder-api "$C_CINDER_PORT"
done

# ------------------------------------------------------------------------------------------
# shared infrastructure: epmd + RabbitMQ (a vhost and user per cloud), MariaDB
# ------------------------------------------------------------------------------------------
defs=()
for cloud in "${CLOUDS[@]}"; do defs+=("$cloud=$YS_OSP_RABBIT_PASSWORD"); done
"$PY" "$YS_OSP_LIB/bootstrap.py" rabbit-defs "$INFRA/etc/rabbit-definitions.json" "${defs[@]}"
cat > "$INFRA/etc/rabbitmq.conf" <<EOF
listeners.tcp.default = $LOOPBACK:$I_AMQP_PORT
load_definitions = $INFRA/etc/rabbit-definitions.json
loopback_users.guest = true
log.console = true
log.console.level = warning
log.file = false
EOF
echo '[].' > "$INFRA/etc/rabbit-plugins"
mkdir -p "$INFRA/data/rabbitmq"
start_service infra epmd /usr/bin/epmd -address "$LOOPBACK" -port "$I_EPMD_PORT"
wait_until infra epmd "epmd listening" port_open "$I_EPMD_PORT"
# +sbwt none: no busy-waiting Erlang schedulers on this shared 2-core machine
start_service infra rabbitmq env HOME="$INFRA/data/rabbitmq" \
  ERL_EPMD_PORT="$I_EPMD_PORT" RABBITMQ_NODENAME=ys-osp@localhost RABBITMQ_USE_LONGNAME=false \
  RABBITMQ_NODE_IP_ADDRESS="$LOOPBACK" RABBITMQ_NODE_PORT="$I_AMQP_PORT" RABBITMQ_DIST_PORT="$I_DIST_PORT" \
  RABBITMQ_CONFIG_FILE="$INFRA/etc/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$INFRA/etc/rabbit-plugins" \
  RABBITMQ_MNESIA_BASE="$INFRA/data/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$INFRA/log" RABBITMQ_LOGS=- \
  RABBITMQ_PID_FILE="$INFRA/data/rabbitmq/pid" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none" \
  /usr/lib/rabbitmq/bin/rabbitmq-server

SQL_SOCK=$INFRA/run/mariadb.sock
if [ ! -d "$INFRA/data/mysql/mysql" ]; then
  mariadb-install-db --no-defaults --user=root --datadir="$INFRA/data/mysql" --skip-test-db \
    --auth-root-authentication-method=socket >"$INFRA/log/mariadb-install.log" 2>&1 \
    || { show_log "$INFRA/log/mariadb-install.log"; fail "mariadb-install-db"; }
fi
start_service infra mariadb /usr/sbin/mariadbd --no-defaults --user=root \
  --datadir="$INFRA/data/mysql" --socket="$SQL_SOCK" --pid-file="$INFRA/run/mariadb.pidfile" \
  --bind-address="$LOOPBACK" --port="$I_SQL_PORT" --skip-name-resolve --skip-log-bin \
  --log-error="$INFRA/log/mariadb.err" --performance-schema=OFF --innodb-buffer-pool-size=64M \
  --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 --max-connections=600 \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
sql() { mariadb --no-defaults -S "$SQL_SOCK" -uroot -e "$1"; }
sql_ping() { sql 'select 1' >/dev/null; }
wait_until infra mariadb "SQL answers" sql_ping
grants=""
for cloud in "${CLOUDS[@]}"; do
  cloud_vars "$cloud"
  for db in nova_api nova_cell0 nova_cell1 cinder; do
    grants+="CREATE DATABASE IF NOT EXISTS ${C_SLUG}_$db CHARACTER SET utf8; "
  done
  grants+="CREATE USER IF NOT EXISTS 'ys_$C_SLUG'@'$LOOPBACK' IDENTIFIED BY '$YS_OSP_DB_PASSWORD'; "
  grants+="GRANT ALL PRIVILEGES ON \`${C_SLUG}\\_%\`.* TO 'ys_$C_SLUG'@'$LOOPBACK'; "
done
sql "$grants FLUSH PRIVILEGES;" || fail "creating databases and users in MariaDB"
say "infra: MariaDB on $LOOPBACK:$I_SQL_PORT, RabbitMQ on $LOOPBACK:$I_AMQP_PORT (vhost per cloud)"

# ------------------------------------------------------------------------------------------
# per-cloud configuration
# ------------------------------------------------------------------------------------------
# compute_size CLOUD INDEX -> "VCPUS RAM_MB DISK_GB": nodes of one cloud differ in size, so
# the largest free unit per resource class is a per-provider question
compute_size() {
  case "$1:$2" in
    x86-cloud:1) echo "32 131072 1000" ;;
    kunpeng-cloud:1) echo "96 262144 2000" ;;
    x86-cloud:*) echo "16 65536 500" ;;
    kunpeng-cloud:*) echo "64 131072 1000" ;;
  esac
}

write_cloud_config() {
  local cloud=$1; cloud_vars "$cloud"
  local D=$STATE/$cloud
  local E=$D/etc V=$D/data
  mkdir -p "$E"/{keystone,placement,nova,glance,neutron,cinder} "$D"/{log,run} \
    "$V"/{keystone,placement,nova/instances,glance/images,glance/staging,glance/tasks,neutron,cinder,locks}
  local mq="rabbit://$cloud:$YS_OSP_RABBIT_PASSWORD@$LOOPBACK:$I_AMQP_PORT/$cloud"
  local mysql="mysql+pymysql://ys_$C_SLUG:$YS_OSP_DB_PASSWORD@$LOOPBACK:$I_SQL_PORT/${C_SLUG}_"
  local svc_auth="auth_type = password
auth_url = $C_KEYSTONE_URL
user_domain_name = Default
project_domain_name = Default
project_name = service
password = $YS_OSP_SERVICE_PASSWORD
region_name = $C_REGION"
  # authtoken USER: the [keystone_authtoken] section an API validates tokens with
  authtoken() { printf '[keystone_authtoken]\nwww_authenticate_uri = %s\n%s\nusername = %s\nservice_token_roles_required = true\n' \
    "$C_KEYSTONE_URL" "$svc_auth" "$1"; }

  cat > "$E/keystone/keystone.conf" <<EOF
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///$V/keystone/keystone.sqlite
[token]
provider = fernet
[fernet_tokens]
key_repository = $E/keystone/fernet-keys
[fernet_receipts]
key_repository = $E/keystone/fernet-keys
[credential]
key_repository = $E/keystone/credential-keys
[identity]
# bcrypt's minimum cost: every password login stays cheap on a busy test machine
password_hash_rounds = 4
[cache]
enabled = true
backend = dogpile.cache.memory
EOF

  cat > "$E/placement/placement.conf" <<EOF
[DEFAULT]
use_stderr = true
[api]
auth_strategy = keystone
[placement_database]
connection = sqlite:///$V/placement/placement.sqlite
$(authtoken placement)
EOF

  cat > "$E/nova/nova.conf" <<EOF
[DEFAULT]
host = $cloud-controller
my_ip = $LOOPBACK
transport_url = $mq
state_path = $V/nova
instances_path = $V/nova/instances
compute_driver = ys_fake_virt.ArchFakeDriver
use_stderr = true
heal_instance_info_cache_interval = -1
allow_resize_to_same_host = true
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $YS_OSP_LIB/paste/nova-api.ini
[api_database]
connection = ${mysql}nova_api?charset=utf8
[database]
connection = ${mysql}nova_cell1?charset=utf8
[conductor]
workers = 1
[scheduler]
workers = 1
# new computes get mapped to cell1 by the scheduler itself
discover_hosts_in_cells_interval = 10
# an image's hw_architecture becomes a required HW_ARCH_* trait in Placement
image_metadata_prefilter = true
[quota]
instances = 100
cores = 400
ram = 1048576
[oslo_concurrency]
lock_path = $V/locks
[oslo_messaging_rabbit]
# RabbitMQ is on loopback: no heartbeats. The uWSGI-hosted APIs cannot send them while
# idle, RabbitMQ then drops their connection after 60 s and the next request pays a
# reconnect; a dead peer shows up as a closed socket here anyway
heartbeat_timeout_threshold = 0
[oslo_messaging_notifications]
driver = noop
[vnc]
enabled = false
[glance]
region_name = $C_REGION
valid_interfaces = public
[placement]
$svc_auth
username = nova
valid_interfaces = public
[neutron]
$svc_auth
username = nova
valid_interfaces = public
[cinder]
$svc_auth
username = nova
os_region_name = $C_REGION
catalog_info = volumev3::publicURL
[service_user]
# Cinder (bookworm) accepts detaching a volume used by a server only with Nova's service token
send_service_user_token = true
$svc_auth
username = nova
$(authtoken nova)
EOF
  local i size
  for ((i = 1; i <= YS_OSP_COMPUTES; i++)); do
    printf '[DEFAULT]\nhost = %s-compute-%d\n' "$cloud" "$i" > "$E/nova/compute-$i.conf"
  done

  cat > "$E/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = $LOOPBACK
bind_port = $C_GLANCE_PORT
# 0 = serve in this process, no forked workers
workers = 0
use_stderr = true
enabled_backends = local:file
[database]
connection = sqlite:///$V/glance/glance.sqlite
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = $V/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $V/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $V/glance/tasks/
[paste_deploy]
flavor = keystone
config_file = $YS_OSP_LIB/paste/glance-api.ini
[oslo_concurrency]
lock_path = $V/locks
$(authtoken glance)
EOF

  cat > "$E/neutron/neutron.conf" <<EOF
[DEFAULT]
bind_host = $LOOPBACK
bind_port = $C_NEUTRON_PORT
# 0 = serve the API in the process itself (lib/neutron_api.py starts no other workers)
api_workers = 0
use_stderr = true
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = $mq
api_paste_config = $YS_OSP_LIB/paste/neutron-api.ini
state_path = $V/neutron
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = sqlite:///$V/neutron/neutron.sqlite
[oslo_messaging_rabbit]
# RabbitMQ is on loopback: no heartbeats. The uWSGI-hosted APIs cannot send them while
# idle, RabbitMQ then drops their connection after 60 s and the next request pays a
# reconnect; a dead peer shows up as a closed socket here anyway
heartbeat_timeout_threshold = 0
[oslo_concurrency]
lock_path = $V/locks
$(authtoken neutron)
EOF
  cat > "$E/neutron/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
# binds every port without an agent (lib/ys_neutron_mech.py), so servers get addresses
mechanism_drivers = ys_loopback
extension_drivers = port_security
[ml2_type_flat]
flat_networks = ys-physnet
[ml2_type_vxlan]
vni_ranges = 1000:1999
EOF

  cat > "$E/cinder/cinder.conf" <<EOF
[DEFAULT]
host = $cloud-block
my_ip = $LOOPBACK
transport_url = $mq
auth_strategy = keystone
state_path = $V/cinder
api_paste_config = $YS_OSP_LIB/paste/cinder-api.ini
enabled_backends = fake
glance_api_servers = http://$LOOPBACK:$C_GLANCE_PORT
use_stderr = true
# which list filters non-admin users may use (name, metadata, ...); without the file
# Cinder rejects every filtered list from a project user with 400
resource_query_filters_file = $YS_OSP_LIB/cinder-resource-filters.json
[database]
connection = ${mysql}cinder?charset=utf8
[fake]
# logs what it would do; no LVM, no iSCSI
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
[oslo_concurrency]
lock_path = $V/locks
[coordination]
backend_url = file://$V/locks
[oslo_messaging_rabbit]
# RabbitMQ is on loopback: no heartbeats. The uWSGI-hosted APIs cannot send them while
# idle, RabbitMQ then drops their connection after 60 s and the next request pays a
# reconnect; a dead peer shows up as a closed socket here anyway
heartbeat_timeout_threshold = 0
[oslo_messaging_notifications]
driver = noop
[nova]
$svc_auth
username = cinder
interface = public
$(authtoken cinder)
EOF

  # what bootstrap.py identity/ready work from
  cat > "$E/bootstrap.json" <<EOF
{
  "cloud": "$cloud",
  "region": "$C_REGION",
  "auth_url": "$C_KEYSTONE_URL",
  "admin_password": "$C_ADMIN_PW",
  "service_password": "$YS_OSP_SERVICE_PASSWORD",
  "service_users": ["nova", "placement", "glance", "neutron", "cinder"],
  "catalog": [
    ["placement", "placement", "http://$LOOPBACK:$C_PLACEMENT_PORT"],
    ["compute", "nova", "http://$LOOPBACK:$C_NOVA_PORT/v2.1"],
    ["image", "glance", "http://$LOOPBACK:$C_GLANCE_PORT"],
    ["network", "neutron", "http://$LOOPBACK:$C_NEUTRON_PORT"],
    ["volumev3", "cinderv3", "http://$LOOPBACK:$C_CINDER_PORT/v3/%(project_id)s"],
    ["block-storage", "cinder", "http://$LOOPBACK:$C_CINDER_PORT/v3/%(project_id)s"]
  ],
  "trait": "$C_TRAIT",
  "computes": [$(for ((i = 1; i <= YS_OSP_COMPUTES; i++)); do printf '%s"%s-compute-%d"' "$([ $i -gt 1 ] && echo ', ')" "$cloud" "$i"; done)],
  "flavors": [["m1.tiny", 1, 512, 1], ["m1.small", 1, 2048, 20], ["m1.medium", 2, 4096, 40]],
  "images": [
    {"name": "kylin-v10", "properties": {"os_distro": "kylin", "os_version": "V10", "os_type": "linux", "hw_architecture": "$C_ARCH"}},
    {"name": "openeuler-22.03", "properties": {"os_distro": "openeuler", "os_version": "22.03", "os_type": "linux", "hw_architecture": "$C_ARCH"}}
  ],
  "network": {"name": "ys-net", "physnet": "ys-physnet", "subnet": "ys-subnet", "cidr": "$C_CIDR"},
  "timeout": 300
}
EOF
}

write_cloud_access() {  # env file + clouds.yaml fragment for one cloud
  local cloud=$1; cloud_vars "$cloud"
  local D=$STATE/$cloud
  cat > "$D/env" <<EOF
# source this file to talk to $cloud as its admin (e.g. with /usr/bin/openstack)
export OS_AUTH_TYPE=password
export OS_AUTH_URL=$C_KEYSTONE_URL
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$C_ADMIN_PW
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$C_REGION
export OS_INTERFACE=public
export YS_OSP_CLOUD=$cloud
export YS_OSP_ARCH=$C_ARCH
export YS_OSP_ARCH_TRAIT=$C_TRAIT
export YS_OSP_STATE_DIR=$D
export YS_OSP_KEYSTONE_URL=$C_KEYSTONE_URL
export YS_OSP_PLACEMENT_URL=http://$LOOPBACK:$C_PLACEMENT_PORT
export YS_OSP_NOVA_URL=http://$LOOPBACK:$C_NOVA_PORT/v2.1
export YS_OSP_GLANCE_URL=http://$LOOPBACK:$C_GLANCE_PORT
export YS_OSP_NEUTRON_URL=http://$LOOPBACK:$C_NEUTRON_PORT
export YS_OSP_CINDER_URL=http://$LOOPBACK:$C_CINDER_PORT/v3
EOF
  cat > "$D/clouds.yaml" <<EOF
clouds:
$(clouds_yaml_entry "$cloud")
EOF
}
clouds_yaml_entry() {
  cloud_vars "$1"
  cat <<EOF
  $1:
    auth_type: password
    auth:
      auth_url: $C_KEYSTONE_URL
      username: admin
      password: $C_ADMIN_PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: $C_REGION
    interface: public
    identity_api_version: 3
EOF
}
clouds_json_entry() {
  cloud_vars "$1"
  cat <<EOF
  "$1": {
    "auth_url": "$C_KEYSTONE_URL", "username": "admin", "password": "$C_ADMIN_PW",
    "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default",
    "region_name": "$C_REGION", "arch": "$C_ARCH", "arch_trait": "$C_TRAIT",
    "endpoints": {
      "identity": "$C_KEYSTONE_URL", "placement": "http://$LOOPBACK:$C_PLACEMENT_PORT",
      "compute": "http://$LOOPBACK:$C_NOVA_PORT/v2.1", "image": "http://$LOOPBACK:$C_GLANCE_PORT",
      "network": "http://$LOOPBACK:$C_NEUTRON_PORT", "block-storage": "http://$LOOPBACK:$C_CINDER_PORT/v3"
    }
  }
EOF
}

for cloud in "${CLOUDS[@]}"; do
  write_cloud_config "$cloud"
  write_cloud_access "$cloud"
done
{ echo "clouds:"; for cloud in "${CLOUDS[@]}"; do clouds_yaml_entry "$cloud"; done; } > "$STATE/clouds.yaml"
{ echo "{"; clouds_json_entry x86-cloud; echo ","; clouds_json_entry kunpeng-cloud; echo "}"; } > "$STATE/clouds.json"

# ------------------------------------------------------------------------------------------
# schemas (all at once, both clouds; a marker per service makes restarts skip this)
# ------------------------------------------------------------------------------------------
RUN_ENTRY=("$PY" "$YS_OSP_LIB/run_entry.py")
schema_keystone() {
  local E=$STATE/$1/etc/keystone cloud=$1; cloud_vars "$1"
  # (called in a && context, where set -e is off: check each step)
  "${RUN_ENTRY[@]}" keystone-manage --config-file "$E/keystone.conf" db_sync || return 1
  "$PY" "$YS_OSP_LIB/bootstrap.py" keys "$E" || return 1
  "${RUN_ENTRY[@]}" keystone-manage --config-file "$E/keystone.conf" bootstrap \
    --bootstrap-password "$C_ADMIN_PW" --bootstrap-region-id "$C_REGION" \
    --bootstrap-admin-url "$C_KEYSTONE_URL" --bootstrap-internal-url "$C_KEYSTONE_URL" \
    --bootstrap-public-url "$C_KEYSTONE_URL"
}
schema_placement() {
  OS_PLACEMENT_CONFIG_DIR=$STATE/$1/etc/placement \
    "${RUN_ENTRY[@]}" placement-manage --config-file "$STATE/$1/etc/placement/placement.conf" db sync
}
schema_glance() { "${RUN_ENTRY[@]}" glance-manage --config-file "$STATE/$1/etc/glance/glance-api.conf" db_sync; }
schema_neutron() {
  "$PY" "$YS_OSP_LIB/bootstrap.py" neutron-db "$STATE/$1/etc/neutron/neutron.conf" "$STATE/$1/etc/neutron/ml2_conf.ini"
}
schema_nova() {
  cloud_vars "$1"
  "$PY" "$YS_OSP_LIB/bootstrap.py" nova-db "$STATE/$1/etc/nova/nova.conf" \
    "mysql+pymysql://ys_$C_SLUG:$YS_OSP_DB_PASSWORD@$LOOPBACK:$I_SQL_PORT/${C_SLUG}_nova_cell0?charset=utf8"
}
schema_cinder() { "${RUN_ENTRY[@]}" cinder-manage --config-file "$STATE/$1/etc/cinder/cinder.conf" db sync; }
SCHEMAS=(keystone placement glance neutron nova cinder)
for cloud in "${CLOUDS[@]}"; do
  for s in "${SCHEMAS[@]}"; do
    [ -f "$STATE/$cloud/data/.schema-$s" ] && continue
    run_step "$cloud" "schema-$s" once "$STATE/$cloud/data/.schema-$s" "schema_$s" "$cloud"
  done
done

# ------------------------------------------------------------------------------------------
# Keystone first (everything else authenticates against it), then the catalog
# ------------------------------------------------------------------------------------------
uwsgi_service() {  # uwsgi_service CLOUD NAME PORT --env K=V ...
  local cloud=$1 name=$2 port=$3; shift 3
  # one process, one thread: sqlite-backed apps must not write from two threads, and
  # 'Connection: close' because the socket is closed after each response anyway (clients
  # that keep it alive otherwise see 'connection reset')
  start_service "$cloud" "$name" /usr/bin/uwsgi-core --plugin python3 \
    --http-socket "$LOOPBACK:$port" --wsgi-file "$YS_OSP_LIB/wsgi_apps.py" --pythonpath "$YS_OSP_LIB" \
    --master --processes 1 --threads 1 --enable-threads --lazy-apps --need-app --die-on-term \
    --buffer-size 65535 --add-header "Connection: close" \
    --procname-prefix-spaced "ys-$cloud:$name" --env "YS_WSGI_SERVICE=$name" "$@"
}
for cloud in "${CLOUDS[@]}"; do wait_step "$cloud/schema-keystone"; done
for cloud in "${CLOUDS[@]}"; do
  cloud_vars "$cloud"
  uwsgi_service "$cloud" keystone "$C_KEYSTONE_PORT" --env "OS_KEYSTONE_CONFIG_FILES=$STATE/$cloud/etc/keystone/keystone.conf"
done
for cloud in "${CLOUDS[@]}"; do
  cloud_vars "$cloud"
  wait_until "$cloud" keystone "Keystone answering" http_answers "$C_KEYSTONE_URL"
  run_step "$cloud" identity "$PY" "$YS_OSP_LIB/bootstrap.py" identity "$STATE/$cloud/etc/bootstrap.json"
done
say "keystones up after $(since "$T_START")s"

# ------------------------------------------------------------------------------------------
# the other services
# ------------------------------------------------------------------------------------------
wait_until infra rabbitmq "RabbitMQ listening" port_open "$I_AMQP_PORT"
start_cloud() {
  local cloud=$1 i size; cloud_vars "$cloud"
  local E=$STATE/$cloud/etc
  wait_step "$cloud/identity"
  wait_step "$cloud/schema-placement"
  uwsgi_service "$cloud" placement "$C_PLACEMENT_PORT" --env "OS_PLACEMENT_CONFIG_DIR=$E/placement"
  wait_step "$cloud/schema-glance"
  start_service "$cloud" glance-api "${RUN_ENTRY[@]}" glance-api --config-file "$E/glance/glance-api.conf"
  wait_step "$cloud/schema-neutron"
  start_service "$cloud" neutron-api "$PY" "$YS_OSP_LIB/neutron_api.py" \
    --config-file "$E/neutron/neutron.conf" --config-file "$E/neutron/ml2_conf.ini"
  wait_step "$cloud/schema-nova"
  uwsgi_service "$cloud" nova-api "$C_NOVA_PORT" --env "OS_NOVA_CONFIG_DIR=$E/nova" \
    --env "OS_NOVA_CONFIG_FILES=$YS_OSP_LIB/paste/nova-api.ini;$E/nova/nova.conf"
  start_service "$cloud" nova-conductor "${RUN_ENTRY[@]}" nova-conductor --config-file "$E/nova/nova.conf"
  start_service "$cloud" nova-scheduler "${RUN_ENTRY[@]}" nova-scheduler --config-file "$E/nova/nova.conf"
  for ((i = 1; i <= YS_OSP_COMPUTES; i++)); do
    read -r -a size <<<"$(compute_size "$cloud" "$i")"
    start_service "$cloud" "nova-compute-$i" env YS_FAKE_ARCH="$C_ARCH" YS_FAKE_VCPUS="${size[0]}" \
      YS_FAKE_RAM_MB="${size[1]}" YS_FAKE_DISK_GB="${size[2]}" \
      "$PY" "$YS_OSP_LIB/nova_compute.py" --config-file "$E/nova/nova.conf" --config-file "$E/nova/compute-$i.conf"
  done
  wait_step "$cloud/schema-cinder"
  uwsgi_service "$cloud" cinder-api "$C_CINDER_PORT" --env "YS_WSGI_CONFIG_FILES=$E/cinder/cinder.conf"
  start_service "$cloud" cinder-scheduler "${RUN_ENTRY[@]}" cinder-scheduler --config-file "$E/cinder/cinder.conf"
  start_service "$cloud" cinder-volume "${RUN_ENTRY[@]}" cinder-volume --config-file "$E/cinder/cinder.conf"
}
for cloud in "${CLOUDS[@]}"; do start_cloud "$cloud"; done
say "schemas done and all services started after $(since "$T_START")s"

for cloud in "${CLOUDS[@]}"; do
  cloud_vars "$cloud"
  wait_until "$cloud" placement "Placement answering" http_answers "http://$LOOPBACK:$C_PLACEMENT_PORT/"
  wait_until "$cloud" glance-api "Glance answering" http_answers "http://$LOOPBACK:$C_GLANCE_PORT/versions"
  wait_until "$cloud" neutron-api "Neutron answering" http_answers "http://$LOOPBACK:$C_NEUTRON_PORT/"
  wait_until "$cloud" nova-api "Nova answering" http_answers "http://$LOOPBACK:$C_NOVA_PORT/"
  wait_until "$cloud" cinder-api "Cinder answering" http_answers "http://$LOOPBACK:$C_CINDER_PORT/"
done
say "all APIs answer after $(since "$T_START")s"

# ------------------------------------------------------------------------------------------
# computes registered with their arch trait, cinder-volume up; flavors and images
# ------------------------------------------------------------------------------------------
for cloud in "${CLOUDS[@]}"; do
  run_step "$cloud" ready "$PY" "$YS_OSP_LIB/bootstrap.py" ready "$STATE/$cloud/etc/bootstrap.json"
done
for cloud in "${CLOUDS[@]}"; do
  if ! wait "${STEP_PID[$cloud/ready]}"; then
    show_log "$STATE/$cloud/log/ready.log"
    for s in $(cloud_services "$cloud"); do
      record_alive "$STATE/$cloud/run/$s.pid" || { say "$cloud/$s is not running"; show_log "$STATE/$cloud/log/$s.log"; }
    done
    fail "$cloud did not become ready"
  fi
  grep '\[bootstrap' "$STATE/$cloud/log/ready.log" | sed 's/^/  /' >&2
done

say "both clouds ready in $(since "$T_START")s (started ${#STARTED[@]} processes); state in $STATE"
for cloud in "${CLOUDS[@]}"; do
  cloud_vars "$cloud"
  printf '  %-14s %-8s keystone %s  region %s  env %s\n' "$cloud" "$C_ARCH" "$C_KEYSTONE_URL" "$C_REGION" "$STATE/$cloud/env"
done
printf '  clouds.yaml    OS_CLIENT_CONFIG_FILE=%s openstack --os-cloud x86-cloud|kunpeng-cloud ...\n' "$STATE/clouds.yaml"
