#!/usr/bin/env bash
# Renders and lints charts/yunshu with the real Helm engine (PyPI helm-python-sdk,
# Helm's Go library behind a C ABI: no helm binary) for the default values and
# ci/production-values.yaml, then validates every rendered manifest and the CRDs
# against the Kubernetes schemas (PyPI kubernetes-validate). Installs its Python
# dependencies into a virtualenv of its own; exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${YUNSHU_CHART_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/yunshu-chart-venv}"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    'helm-python-sdk==0.2.2' 'kubernetes-validate==1.37.0' 'PyYAML>=6'

exec "$venv/bin/python" "$here/test_chart.py" "$here/yunshu"
