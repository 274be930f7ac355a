#!/usr/bin/env bash
# Lints the protos with buf (STANDARD + COMMENTS rules, see buf.yaml) and
# checks they are formatted as `buf format` would write them.
# Installs the buf CLI from PyPI when it is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v buf >/dev/null 2>&1; then
  python3 -m pip install --quiet 'buf-bin==1.75.0'
  # pip's script directory may not be on PATH (pyenv shims need a rehash).
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi

buf lint
buf format --diff --exit-code
echo "protos: buf lint and format clean"
