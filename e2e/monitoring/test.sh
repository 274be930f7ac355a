#!/usr/bin/env bash
# Checks Yunshu's alert rules and dashboards without a running Yunshu:
#   1. installs the Debian package `prometheus` if promtool is missing;
#   2. `promtool check rules` on charts/yunshu/files/alerts.yaml;
#   3. `promtool test rules` on e2e/monitoring/alerts.test.yaml (a firing and
#      a quiet case for every alert);
#   4. check.py: runbook links resolve to docs/monitoring.md, dashboards are
#      well formed, and the Helm chart renders exactly these rules and
#      dashboards (Helm's engine from PyPI helm-python-sdk, in the same
#      virtualenv charts/test.sh uses).
# The dashboards' queries against a real Prometheus scraping a real Yunshu
# are checked by `cargo test -p yunshu --test prometheus`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v promtool >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: prometheus (Debian; provides prometheus and promtool)"
    $sudo apt-get update -qq
    # policy-rc.d keeps the package from starting a system Prometheus where
    # there is no init system; the tests start their own.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
echo "== $(promtool --version 2>&1 | head -1)"

echo "== promtool check rules"
promtool check rules "$root/charts/yunshu/files/alerts.yaml"

echo "== promtool test rules"
# Paths in the test file are relative to it.
(cd "$here" && promtool test rules alerts.test.yaml)

venv="${YUNSHU_CHART_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/yunshu-chart-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check 'helm-python-sdk==0.2.2' 'PyYAML>=6'
"$venv/bin/python" "$here/check.py" --chart
