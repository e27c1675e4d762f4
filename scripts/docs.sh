#!/usr/bin/env bash
# Builds the documentation site with MkDocs, warnings as errors (--strict):
# the tutorial, the concepts, the CLI reference generated from the commands
# and the Python API reference generated from the docstrings
# (docs/decisions/0031-docs-site.md). Read it by opening site/index.html; for
# search, serve it: python -m http.server -d site.
#
#   scripts/docs.sh [SITE_DIR]   build into SITE_DIR (default: site/, gitignored)
#
#   LOOPLINE_VENV          virtualenv to install into (default .venv in the repo)
#   LOOPLINE_DOCS_INSTALL  0: use what the virtualenv has (scripts/test.sh
#                          installs the docs extra itself); default: install
#                          loopline with its docs extra first
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SITE=${1:-$ROOT/site}

VENV=${LOOPLINE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "docs.sh: creating virtualenv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
if [[ "${LOOPLINE_DOCS_INSTALL:-1}" != 0 ]]; then
    echo "docs.sh: installing loopline with its docs dependencies" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[docs]" >&2
fi
if ! "$VENV/bin/python" -c "import mkdocs, mkdocstrings, material" 2>/dev/null; then
    echo "docs.sh: MkDocs is not installed in $VENV: run scripts/docs.sh without" \
        "LOOPLINE_DOCS_INSTALL=0, or $VENV/bin/pip install -e '.[docs]'" >&2
    exit 1
fi

# The API reference reads src/ (griffe, statically); the CLI reference imports
# loopline.cli, so src/ goes first on the path whatever the venv has installed.
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
# Material prints a banner about MkDocs 2.0 on every build; mkdocs<2 is pinned.
export NO_MKDOCS_2_WARNING=1
echo "docs.sh: mkdocs build --strict into $SITE" >&2
"$VENV/bin/python" -m mkdocs build --strict --site-dir "$SITE"
