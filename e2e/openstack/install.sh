#!/usr/bin/env bash
# e2e/openstack/install.sh — put the Debian packages on this machine that
# e2e/openstack/up.sh needs to run two small OpenStack (Zed) clouds.
#
# Only the python3-* *library* packages of each OpenStack service are used,
# plus the RabbitMQ, MariaDB and uWSGI binaries. The Debian *service*
# packages (nova-api, keystone, ...) are avoided on purpose: they drag in
# libvirt, apache and init scripts that start daemons on all interfaces.
# RabbitMQ's and MariaDB's own postinst scripts would also like to start a
# system daemon; a policy-rc.d that answers 101 ("not allowed") stops that
# for the duration of the install (an existing one is left as it is).
#
# Idempotent: when everything is installed it only asks dpkg and returns
# in well under a second. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # the OpenStack services, as importable python libraries
  python3-keystone python3-placement python3-nova python3-glance
  python3-cinder python3-neutron
  # clients: the `openstack` CLI, placement and the libraries used by
  # up.sh's bootstrap code
  python3-openstackclient python3-osc-placement python3-keystoneclient
  python3-keystoneauth1 python3-cinderclient python3-novaclient
  python3-glanceclient python3-neutronclient
  # message bus, SQL server + its python driver, WSGI server
  rabbitmq-server mariadb-server mariadb-client python3-pymysql
  uwsgi-core uwsgi-plugin-python3
  # small tools the scripts use
  curl procps
)

say() { printf '[e2e/openstack/install %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

missing=()
while read -r pkg status; do
  [ "$status" = installed ] || missing+=("$pkg")
done < <(
  # one dpkg-query call for the whole list; unknown packages print nothing,
  # so every requested name is checked against the answer
  known=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
  for p in "${PACKAGES[@]}"; do
    s=$(awk -v p="$p" '$1 == p {print $2; exit}' <<<"$known")
    echo "$p ${s:-absent}"
  done
)

if [ ${#missing[@]} -eq 0 ]; then
  say "all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { say "need root or sudo to install: ${missing[*]}"; exit 1; }
  SUDO=sudo
fi

t0=$(date +%s)
say "installing ${#missing[@]} packages: ${missing[*]}"

made_policy=0
cleanup() { [ "$made_policy" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# temporary, from yunshu e2e/openstack/install.sh\nexit 101\n' \
    | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi

logfile=${TMPDIR:-/tmp}/yunshu-openstack-install.log
apt_install() {
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
}
# try with the package lists we have; refresh them only if that fails
if ! apt_install >"$logfile" 2>&1; then
  say "first attempt failed; refreshing package lists"
  $SUDO apt-get update -q >>"$logfile" 2>&1
  apt_install >>"$logfile" 2>&1 || { tail -30 "$logfile" >&2; say "apt-get failed (log: $logfile)"; exit 1; }
fi

say "installed in $(( $(date +%s) - t0 ))s (log: $logfile)"
