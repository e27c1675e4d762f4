#!/usr/bin/env bash
# The test command: installs what the tests need, starts a real Kafka broker,
# runs the whole suite against both backends, and stops the broker even when
# tests fail. Extra arguments go to pytest (e.g. scripts/test.sh -k parity).
#
#   LOOPLINE_VENV   virtualenv to install into (default .venv in the repo)
#   LOOPLINE_KAFKA_PORT  broker port (default: a free port)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV=${LOOPLINE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "test.sh: creating virtualenv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
echo "test.sh: installing loopline with its dev and docs dependencies" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,docs]" >&2
export PATH="$VENV/bin:$PATH"

# Debian packages the tests use: Chromium for the dashboard's browser tests
# (never a browser Playwright downloads), PostgreSQL for change data capture.
APT_PACKAGES=()
[[ -x /usr/bin/chromium ]] || APT_PACKAGES+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || APT_PACKAGES+=(postgresql)
if (( ${#APT_PACKAGES[@]} )); then
    echo "test.sh: installing ${APT_PACKAGES[*]} (apt-get)" >&2
    SUDO=""
    [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
        "${APT_PACKAGES[@]}" >&2
fi

# The drift tests' reference (Evidently) lives in a virtualenv of its own: its pins clash.
LOOPLINE_EVIDENTLY_PYTHON=$(bash "$ROOT/scripts/evidently-venv.sh")
export LOOPLINE_EVIDENTLY_PYTHON

echo "test.sh: ruff check" >&2
ruff check src tests bench docs/_hooks docs/_griffe
ruff format --check src tests bench docs/_hooks docs/_griffe

# The docs site, warnings as errors; tests/test_docs.py then checks the built
# API reference (LOOPLINE_DOCS_SITE) instead of building it again.
LOOPLINE_DOCS_INSTALL=0 LOOPLINE_VENV="$VENV" bash "$ROOT/scripts/docs.sh" "$ROOT/site"
export LOOPLINE_DOCS_SITE="$ROOT/site"

if [[ -z "${LOOPLINE_KAFKA_PORT:-}" ]]; then
    # Two consecutive free ports: the broker's and the controller's.
    LOOPLINE_KAFKA_PORT=$(python - <<'PY'
import socket
for _ in range(100):
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        try:
            b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        print(port)
        break
PY
)
fi
export LOOPLINE_KAFKA_PORT
export LOOPLINE_PYTHON="$VENV/bin/python"
export LOOPLINE_KAFKA_BOOTSTRAP="127.0.0.1:$LOOPLINE_KAFKA_PORT"

export LOOPLINE_POSTGRES_STATE=${LOOPLINE_POSTGRES_STATE:-${TMPDIR:-/tmp}/loopline-postgres-test-$$}

stop_servers() {
    bash "$ROOT/scripts/connect.sh" stop || true
    bash "$ROOT/scripts/kafka.sh" stop || true
    bash "$ROOT/scripts/postgres.sh" stop || true
}
trap stop_servers EXIT
# If the broker or PostgreSQL cannot start, this fails the run: their tests are never skipped.
bash "$ROOT/scripts/kafka.sh" start
LOOPLINE_POSTGRES_URL=$(bash "$ROOT/scripts/postgres.sh" start)
export LOOPLINE_POSTGRES_URL
# Debezium on Kafka Connect, against that broker (REST API on a free port)
LOOPLINE_CONNECT_PORT=${LOOPLINE_CONNECT_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export LOOPLINE_CONNECT_PORT
# a worker killed in the crash test comes back after 2 s, not 6 (kafka.sh allows it)
export LOOPLINE_CONNECT_SESSION_MS=${LOOPLINE_CONNECT_SESSION_MS:-2000}
LOOPLINE_CONNECT_URL=$(bash "$ROOT/scripts/connect.sh" start)
export LOOPLINE_CONNECT_URL

echo "test.sh: pytest against embedded and kafka://$LOOPLINE_KAFKA_BOOTSTRAP" >&2
# --durations: the slowest tests, to keep the run well inside its time budget.
python -m pytest --doctest-modules --durations=30 src tests "$@"
