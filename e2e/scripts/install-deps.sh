#!/usr/bin/env bash
# Installs what Yunshu's build and tests need on a Debian machine, skipping
# whatever is already there: protoc (etcd-client and the protos), etcd (the
# store tests start real etcd servers), Prometheus and promtool (the
# monitoring tests). Run as root or with sudo available.
set -euo pipefail

need=()
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/timestamp.proto ] || need+=(libprotobuf-dev)
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
# The monitoring tests run a real Prometheus and promtool.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  # The etcd-server package would start a system etcd; policy-rc.d keeps it
  # from doing so where there is no init system, and tests never use it.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Python: the cross-language client test (grpcio, stubs generated from the
# protos) and the chart tests use these.
if ! python3 -c 'import grpc, grpc_tools, pytest' >/dev/null 2>&1; then
  echo "installing: grpcio grpcio-tools pytest (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check grpcio grpcio-tools pytest
fi

etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
echo "deps: protoc $(protoc --version | awk '{print $2}'), $("$etcd_bin" --version | head -1)"
