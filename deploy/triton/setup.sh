#!/usr/bin/env bash
# Creates .venv-triton (repo root): the tritonserver binary that PyPI's nvidia-pytriton carries,
# plus onnxruntime-genai for the gyre_llm model's Python stub. Its own venv because
# nvidia-pytriton pins numpy<2 and the project's .venv has numpy 2. Idempotent: a stamp of the
# pins and the interpreter skips everything when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="${GYRE_TRITON_VENV:-.venv-triton}"
PYTHON="${PYTHON:-python3}"
# nvidia-pytriton 0.7.0: Triton 2.51, Python backend only, stubs for Python 3.8-3.13.
# onnxruntime-genai: the release the models are built and served with in .venv.
PINS=("nvidia-pytriton==0.7.0" "onnxruntime-genai==0.18.0" "numpy<2")

python_version=$("$PYTHON" -c 'import sys; print(sys.version)')
stamp=$( { printf '%s\n' "${PINS[@]}"; echo "$python_version"; } | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.gyre-triton-stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

"$PYTHON" - <<'PY' || exit 1
import os, sys, sysconfig
if not (3, 8) <= sys.version_info[:2] <= (3, 13):
    sys.exit(f"the Triton Python stub needs Python 3.8-3.13, found {sys.version.split()[0]}")
libpython = os.path.join(sysconfig.get_config_var("LIBDIR") or "", sysconfig.get_config_var("INSTSONAME") or "")
if not os.path.isfile(libpython):
    sys.exit(f"{sys.executable} has no shared libpython ({libpython}), which the Triton Python stub loads")
PY

# A venv made from another interpreter is made again (the stub must match its Python).
if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import sys; print(sys.version)')" != "$python_version" ]; then
  rm -rf "$VENV"
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# pip warns about every package missing from this machine's local extra indexes: not news.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" 2>&1 \
  | { grep -v "^WARNING: Location 'file:" || true; }

# The server's backend directory, as pytriton lays it out at run time: the Python backend with
# the stub built for this venv's Python version.
"$VENV/bin/python" - "$VENV" <<'PY'
import pathlib, shutil, sys
import pytriton

dist = pathlib.Path(pytriton.__file__).parent / "tritonserver"
binary = dist / "bin" / "tritonserver"
if not binary.is_file():
    sys.exit(f"{binary} missing: nvidia-pytriton did not bring its tritonserver")
version = f"{sys.version_info[0]}.{sys.version_info[1]}"
backend = pathlib.Path(sys.argv[1]) / "triton-backends" / "python"
backend.mkdir(parents=True, exist_ok=True)
for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
    shutil.copy2(dist / "backends" / "python" / name, backend / name)
shutil.copy2(dist / "python_backend_stubs" / version / "triton_python_backend_stub", backend / "triton_python_backend_stub")
PY
echo "$stamp" > "$VENV/.gyre-triton-stamp"
echo "Triton environment ready: $VENV"
