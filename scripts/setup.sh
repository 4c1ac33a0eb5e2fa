#!/usr/bin/env bash
# Creates or refreshes .venv with every Gyre package (editable) and the dev tools. Idempotent:
# skips the install when nothing that defines dependencies has changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Gyre needs Python 3.11 or newer (found $("$PYTHON" --version))" >&2; exit 1; }

stamp_of() { cat pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml | sha256sum | cut -d' ' -f1; }
stamp=$(stamp_of)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.gyre-stamp 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
members=()
for dir in libs/gyre-contracts libs/gyre-runtime libs/gyre-cli services/*; do
  [ -f "$dir/pyproject.toml" ] && members+=(-e "$dir")
done
dev=$(.venv/bin/python - <<'PY'
import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["dependency-groups"]["dev"]))
PY
)
# shellcheck disable=SC2086
.venv/bin/uv pip install --quiet --python .venv/bin/python "${members[@]}" $dev

echo "$stamp" > .venv/.gyre-stamp
echo "environment ready: .venv"
