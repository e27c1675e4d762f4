#!/usr/bin/env bash
# Regenerate the README's dashboard screenshots (docs/images/dashboard-*.png): a demo,
# its monitor and headless Chromium (Debian's chromium package; see scripts/screenshots.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${LOOPLINE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-$VENV/bin/python}
[[ -x /usr/bin/chromium ]] || apt-get install -y -qq chromium >/dev/null
exec "$PYTHON" scripts/screenshots.py "$@"
