#!/usr/bin/env bash
# Measure Gyre's models on an NVIDIA GPU and write docs/benchmarks-gpu.md; one command, about 8 minutes
# at most (GYRE_GPU_CHECK_BUDGET_S, default 480). Steps, each printed and each recorded in the report
# (a failed step is a FAILED row with its last line of output; the steps after it still run):
#   gpu        nvidia-smi's name, driver and memory of GPU 0
#   venv       .venv-gpu: onnxruntime-gpu + onnxruntime-genai-cuda (scripts/gpu-check-requirements.txt)
#   models     the default models (libs/gyre-modelbuild/build.sh; nothing to do when they are built)
#   generator  the CUDA variant of the default generator (tests/bench/gpu_build.py, in the build venv)
#   bench      embedding and generation on CUDA (and CPU for comparison); writes the report
#
# Without nvidia-smi it refuses (exit 2). GYRE_GPU_CHECK_PROVIDER=cpu runs everything on the CPU
# provider instead, with the project's .venv, into data/gpu-check/benchmarks-cpu.md: how the script is
# tested on machines without a GPU. Other settings: GYRE_GPU_CHECK_SIZE=full|small (benchmark sizes),
# GYRE_GPU_CHECK_OUT (report path), GYRE_GPU_CHECK_PYTHON (a python that already has the runtime: no
# venv step), GYRE_GPU_CHECK_GENERATOR (a generator folder to measure: no build), GYRE_GPU_CHECK_DIR
# (work folder, default data/gpu-check), GYRE_GPU_VENV, GYRE_BUILD_VENV, GYRE_MODEL_DIR.
# Exit status: 0 when every step passed, 1 when one failed (the report says which), 2 on refusal.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PROVIDER="${GYRE_GPU_CHECK_PROVIDER:-cuda}"
export SIZE="${GYRE_GPU_CHECK_SIZE:-full}"
export PY="${PYTHON:-python3}"
export MODEL_DIR="${GYRE_MODEL_DIR:-${GYRE_DATA_DIR:-./data}/models}"
export WORK="${GYRE_GPU_CHECK_DIR:-$ROOT/data/gpu-check}"
export GPU_VENV="${GYRE_GPU_VENV:-$ROOT/.venv-gpu}"
export BUILD_VENV="${GYRE_BUILD_VENV:-$ROOT/.venv-build}"
export REQS="scripts/gpu-check-requirements.txt"
BUDGET="${GYRE_GPU_CHECK_BUDGET_S:-480}"

say() { echo "[gpu-check] $*"; }
refuse() { echo "gpu-check: $*" >&2; exit 2; }

# ---- steps, each run as `bash gpu-check.sh __step NAME` under a time limit --------------------------

step_gpu() {
    if [ "$PROVIDER" = cpu ]; then
        echo "none (GYRE_GPU_CHECK_PROVIDER=cpu)" > "$WORK/gpu.txt"
    else
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader -i 0 > "$WORK/gpu.txt" || return 1
    fi
    cat "$WORK/gpu.txt"
}

step_venv() {
    if [ -n "${GYRE_GPU_CHECK_PYTHON:-}" ] || [ "$PROVIDER" = cpu ]; then
        local py="${GYRE_GPU_CHECK_PYTHON:-$ROOT/.venv/bin/python}"
        echo "using $py (no venv step)"
        "$py" -c "import onnxruntime, onnxruntime_genai, tokenizers, numpy; print('onnxruntime', onnxruntime.__version__)"
        return
    fi
    local want stamp="$GPU_VENV/.gyre-gpu-stamp"
    want="$(sha256sum "$REQS" | cut -d' ' -f1)"
    if [ -x "$GPU_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "$GPU_VENV is up to date"
    else
        echo "creating $GPU_VENV from $REQS (onnxruntime-gpu, onnxruntime-genai-cuda, CUDA 13 and cuDNN libraries: ~1.5 GB)"
        rm -rf "$GPU_VENV" && "$PY" -m venv "$GPU_VENV" || return 1
        "$GPU_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" || return 1
        echo "$want" > "$stamp"
    fi
    if "$GPU_VENV/bin/python" -m pip show onnxruntime >/dev/null 2>&1; then
        echo "both onnxruntime and onnxruntime-gpu are installed in $GPU_VENV: remove the venv and rerun"
        return 1
    fi
    "$GPU_VENV/bin/python" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
}

step_models() {
    bash libs/gyre-modelbuild/build.sh
}

# The build venv, as build.sh makes it (same path, same stamp), for when the default models are all
# built already and build.sh therefore did not create it.
ensure_build_venv() {
    local here="libs/gyre-modelbuild" want stamp="$BUILD_VENV/.gyre-build-stamp"
    want="$(cat "$here/requirements-build.txt" "$here/requirements-build-nodeps.txt" | sha256sum | cut -d' ' -f1)"
    if [ -x "$BUILD_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "creating the build venv $BUILD_VENV (as libs/gyre-modelbuild/build.sh does)"
    rm -rf "$BUILD_VENV" && "$PY" -m venv "$BUILD_VENV" || return 1
    "$BUILD_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-build.txt" || return 1
    "$BUILD_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        -r "$here/requirements-build-nodeps.txt" || return 1
    echo "$want" > "$stamp"
}

step_generator() {
    if [ -n "${GYRE_GPU_CHECK_GENERATOR:-}" ]; then
        [ -f "$GYRE_GPU_CHECK_GENERATOR/genai_config.json" ] || {
            echo "GYRE_GPU_CHECK_GENERATOR=$GYRE_GPU_CHECK_GENERATOR has no genai_config.json"
            return 1
        }
        echo "measuring the given generator $GYRE_GPU_CHECK_GENERATOR (no build)"
        return 0
    fi
    local rc=0
    "$PY" -m tests.bench.gpu_build --check --model-dir "$WORK/models" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    [ "$rc" -eq 3 ] || return "$rc"
    ensure_build_venv || return 1
    "$BUILD_VENV/bin/python" -m tests.bench.gpu_build --model-dir "$WORK/models" \
        --smoke-python "$BENCH_PY" --provider "$PROVIDER"
}

step_bench() {
    "$BENCH_PY" -m tests.bench.gpu_check bench --provider "$PROVIDER" --size "$SIZE" --out "$OUT" \
        --steps "$WORK/steps.jsonl" --gpu-info "$WORK/gpu.txt" \
        --embedder "$MODEL_DIR/all-minilm-l6-v2" --generator "$GENERATOR"
}

if [ "${1:-}" = __step ]; then
    "step_$2"
    exit $?
fi

# ---- the run ---------------------------------------------------------------------------------------

case "$PROVIDER" in cuda | cpu) ;; *) refuse "GYRE_GPU_CHECK_PROVIDER must be cuda or cpu, not '$PROVIDER'" ;; esac
case "$SIZE" in full | small) ;; *) refuse "GYRE_GPU_CHECK_SIZE must be full or small, not '$SIZE'" ;; esac
if [ "$PROVIDER" = cuda ]; then
    command -v nvidia-smi >/dev/null 2>&1 || refuse "no NVIDIA GPU here: nvidia-smi is not on PATH. This script \
measures the CUDA path: run it on a machine with an NVIDIA GPU and its driver, or set GYRE_GPU_CHECK_PROVIDER=cpu \
to try the script itself on the CPU provider."
    gpus="$(nvidia-smi -L 2>&1)" || refuse "nvidia-smi finds no usable GPU: $gpus"
    say "GPU: $(echo "$gpus" | head -1)"
    export OUT="${GYRE_GPU_CHECK_OUT:-$ROOT/docs/benchmarks-gpu.md}"
    export BENCH_PY="${GYRE_GPU_CHECK_PYTHON:-$GPU_VENV/bin/python}"
else
    export OUT="${GYRE_GPU_CHECK_OUT:-$WORK/benchmarks-cpu.md}"
    export BENCH_PY="${GYRE_GPU_CHECK_PYTHON:-$ROOT/.venv/bin/python}"
fi
export GENERATOR="${GYRE_GPU_CHECK_GENERATOR:-$WORK/models/smollm2-135m-instruct-cuda}"
mkdir -p "$WORK"
: > "$WORK/steps.jsonl"
T0=$SECONDS
failed=0

# The CUDA and cuDNN libraries of the nvidia pip packages, wherever their version puts them (what
# onnxruntime.preload_dlls() misses), for the benchmarks and the build's smoke test.
nvidia_libs() {
    find "$GPU_VENV" -path '*/site-packages/nvidia/*' -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:
}

# run NAME RESERVE: the step under a limit of what the budget has left less RESERVE seconds (kept for
# the steps after it; at least 20 s), recorded as one JSON line in $WORK/steps.jsonl.
run() {
    local name="$1" reserve="$2" start=$SECONDS rc=0 limit note ok=true
    limit=$((BUDGET - (SECONDS - T0) - reserve))
    [ "$limit" -lt 20 ] && limit=20
    say "step $name (limit ${limit}s, $((SECONDS - T0))s so far)"
    timeout --kill-after=10 "$limit" bash "$ROOT/scripts/gpu-check.sh" __step "$name" 2>&1 | tee "$WORK/step-$name.log"
    rc=${PIPESTATUS[0]}
    note="$(grep -v '^\s*$' "$WORK/step-$name.log" | tail -n 1 | tr -cd '[:print:]' | tr -d '"\\' | cut -c1-300)"
    if [ "$rc" -ne 0 ]; then
        ok=false
        failed=1
        [ "$rc" -eq 124 ] && note="timed out after ${limit}s; last output: $note" || note="exit $rc: $note"
    fi
    printf '{"step": "%s", "ok": %s, "seconds": %d, "note": "%s"}\n' "$name" "$ok" $((SECONDS - start)) "$note" \
        >> "$WORK/steps.jsonl"
    say "step $name: $([ "$ok" = true ] && echo ok || echo FAILED) in $((SECONDS - start))s"
}

reserve=150
[ "$SIZE" = small ] && reserve=60
run gpu "$reserve"
run venv "$reserve"
if [ "$PROVIDER" = cuda ]; then
    LD_LIBRARY_PATH="$(nvidia_libs)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
fi
run models "$reserve"
run generator "$reserve"
rm -f "$OUT"  # written anew by the bench step, or below with the steps alone
run bench 10
if [ ! -s "$OUT" ]; then
    say "the benchmark step wrote no report: writing it with the steps alone"
    "$PY" -m tests.bench.gpu_check report --provider "$PROVIDER" --size "$SIZE" --out "$OUT" \
        --steps "$WORK/steps.jsonl" --gpu-info "$WORK/gpu.txt" \
        --why "the benchmark step failed (see the Steps table and $WORK/step-bench.log)"
fi
say "done in $((SECONDS - T0))s: $OUT"
exit "$failed"
