#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test of
# the workspace — unit tests, the store conformance suite against embedded
# and a real etcd, the admission invariant test, and the real `yunshu`
# binary driven end to end. Each test starts its own servers on free
# loopback ports and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yunshu-target}"
bash e2e/scripts/install-deps.sh
cargo test --workspace --locked "$@"
