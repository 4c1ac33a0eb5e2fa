#!/usr/bin/env bash
# Starts the real tritonserver from .venv-triton (run setup.sh first) on the model repository.
#   deploy/triton/run.sh [--grpc-port N] [--http-port N] [--metrics-port N] [tritonserver args...]
# Ports default to GYRE_TRITON_GRPC_PORT / GYRE_TRITON_HTTP_PORT / GYRE_TRITON_METRICS_PORT, else
# 8001 / 8000 / 8002. GYRE_TRITON_MODEL_DIR overrides the model folder gyre_llm serves.
# The server replaces this shell (exec): its pid is this script's, SIGTERM stops it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

VENV="${GYRE_TRITON_VENV:-$root/.venv-triton}"
REPOSITORY="${GYRE_TRITON_MODEL_REPOSITORY:-$root/deploy/triton/models}"
grpc_port="${GYRE_TRITON_GRPC_PORT:-8001}"
http_port="${GYRE_TRITON_HTTP_PORT:-8000}"
metrics_port="${GYRE_TRITON_METRICS_PORT:-8002}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --grpc-port) grpc_port="$2"; shift 2 ;;
    --http-port) http_port="$2"; shift 2 ;;
    --metrics-port) metrics_port="$2"; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done

[ -x "$VENV/bin/python" ] && [ -f "$VENV/.gyre-triton-stamp" ] || {
  echo "$VENV is not ready: run deploy/triton/setup.sh first" >&2; exit 1; }

# Paths the server and the Python stub need, read from the venv's own interpreter.
mapfile -t facts < <("$VENV/bin/python" - <<'PY'
import pathlib, sysconfig
import pytriton

dist = pathlib.Path(pytriton.__file__).parent
print(dist / "tritonserver" / "bin" / "tritonserver")
print(dist / "tritonserver" / "caches")
print(dist.parent / "nvidia_pytriton.libs")
print(sysconfig.get_config_var("LIBDIR"))
print(sysconfig.get_paths()["purelib"])
PY
)
server="${facts[0]}" caches="${facts[1]}" server_libs="${facts[2]}" libdir="${facts[3]}" site="${facts[4]}"

# The stub embeds libpython: the one of the interpreter this venv was made from must come first,
# or the system's (another patch release) is loaded and fails inside threading.
export LD_LIBRARY_PATH="$libdir:$server_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$VENV/bin:$PATH"
# The stub ignores PYTHONPATH; model.py puts this folder on sys.path itself.
export GYRE_TRITON_SITE_PACKAGES="$site"

exec "$server" \
  --model-repository="$REPOSITORY" \
  --backend-directory="$VENV/triton-backends" \
  --cache-directory="$caches" \
  --grpc-port="$grpc_port" --http-port="$http_port" --metrics-port="$metrics_port" \
  --exit-on-error=false --strict-readiness=false \
  "${extra[@]}"
