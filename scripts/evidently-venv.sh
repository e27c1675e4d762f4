#!/usr/bin/env bash
# A virtualenv of its own with Evidently, the reference the drift tests compare against.
# Evidently 0.7.23 needs pandas < 3 (loopline runs on pandas 3), so it cannot live in
# loopline's virtualenv. Made once, kept under ~/.cache; prints the Python to use.
#
#   LOOPLINE_EVIDENTLY_VENV  where (default ~/.cache/loopline-evidently)
set -euo pipefail

VERSION=0.7.23
HOME_DIR=${LOOPLINE_EVIDENTLY_VENV:-$HOME/.cache/loopline-evidently}
PY=$HOME_DIR/bin/python
PYTHON=${PYTHON:-python3}
probe="from importlib.metadata import version; print(version('evidently'))"
if [[ -x "$PY" ]] && [[ "$("$PY" -c "$probe" 2>/dev/null)" == "$VERSION" ]]; then
    echo "$PY"
    exit 0
fi
echo "evidently-venv.sh: installing evidently==$VERSION into $HOME_DIR" >&2
"$PYTHON" -m venv --clear "$HOME_DIR"
"$PY" -m pip install -q --disable-pip-version-check "evidently==$VERSION" "pandas<3" >&2
echo "$PY"
