#!/usr/bin/env bash
# Proves a server started by up.sh does what the S3 adapter will need.
#
#   smoke.sh [--quick] STATE_DIR
#
# Reads STATE_DIR/env, makes sure the client venv (boto3) exists via
# install.sh client, and runs smoke.py: two departments' users and keys through
# the admin dialect, a bucket and an object round trip as department A, 403 for
# department B, a non-empty bucket delete refused, a bucket quota and an
# over-quota write refused, usage read back; everything it made is removed.
#
# SeaweedFS enforces size quotas lazily (about once a minute), so by default the
# quota step waits for the server to do it (up to SMOKE_QUOTA_WAIT seconds,
# default 180). --quick triggers the enforcement through `weed shell` instead.
# The whole run is bounded by YUNSHU_S3_SMOKE_TIMEOUT seconds (default 600).
# Exit status: the number of failed checks (0 = all passed).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
S3E_TAG=smoke

quick=0 state=
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    -*) echo "unknown option: $a" >&2; exit 2 ;;
    *) state=$a ;;
  esac
done
[[ -n $state && -f $state/env ]] || { echo "usage: $0 [--quick] STATE_DIR   (STATE_DIR/env comes from up.sh)" >&2; exit 2; }

[[ -x $S3E_CLIENT_PY ]] || "$S3E_HERE/install.sh" client >&2
set -a
# shellcheck disable=SC1091
source "$state/env"
set +a
export SMOKE_QUICK=$quick
exec timeout -k 10 "${YUNSHU_S3_SMOKE_TIMEOUT:-600}" "$S3E_CLIENT_PY" "$S3E_HERE/smoke.py"
