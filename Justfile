# Gyre's commands. `just up` runs the platform; `just test` runs the test suite.
set shell := ["bash", "-euo", "pipefail", "-c"]

default:
    @just --list

# Create or refresh .venv (every package editable, dev tools)
setup:
    bash scripts/setup.sh

# Build the default models into the model store (skips what is already built)
models:
    bash libs/gyre-modelbuild/build.sh

# Build the candidate models (SmolLM2 int8/fp32, Gemma 3 270M) for model-selection comparisons; not built by CI
models-candidates:
    bash libs/gyre-modelbuild/build.sh --candidates

# Run nats-server and all seven Gyre processes, ingest docs/, print the URL and API key
up: setup models
    .venv/bin/gyre up --samples docs

# Test-only system setup: the browser the chat page's test drives (Debian's chromium, installed when root)
test-browser:
    bash scripts/setup-test-browser.sh

# Unit, integration (real nats-server) and end-to-end (real stack, real models) tests, then the answer-quality gate
test: setup models test-browser
    .venv/bin/python -m pytest -q
    .venv/bin/python -m tests.eval.gate_check

# The answer-quality gate: a small fixed golden set on the real stack against tests/eval/gate/baseline.json
eval: setup models
    .venv/bin/python -m tests.eval.gate_check

# Only the fast tests: no models, no local stack, no tritonserver (markers `models`, `stack`, `triton` left out).
# GYRE_MODEL_DIR is an empty folder meanwhile, so a test that needs a model without its marker fails here.
test-fast: setup
    models="$(mktemp -d)"; trap 'rm -rf "$models"' EXIT; GYRE_MODEL_DIR="$models" \
      .venv/bin/python -m pytest -q -m "not models and not stack and not triton" tests/unit tests/integration

# Regenerate proto/ (JSON Schemas and AsyncAPI) from the contracts
proto: setup
    .venv/bin/python tools/gen_proto.py

# ruff and mypy --strict
lint: setup
    .venv/bin/ruff check libs services tests tools
    .venv/bin/mypy --strict libs/gyre-contracts/gyre_contracts libs/gyre-runtime/gyre_runtime libs/gyre-cli/gyre_cli \
      services/gateway/gyre_gateway services/ingest/gyre_ingest services/embed/gyre_embed \
      services/generate/gyre_generate services/feedback/gyre_feedback services/improve/gyre_improve \
      services/monitor/gyre_monitor services/evaluate/gyre_evaluate tools/gen_proto.py

# Reliability: SIGKILL embed, ingest, a NATS cluster node, then restart all three nodes in turn, under load; nothing lost or duplicated (slow, not in `just test`)
chaos: setup models
    .venv/bin/python -m pytest -q tests/chaos

# The model-selection report: defaults and candidates through the evaluate service on python3.11-doc; docs/model-selection.md
model-selection: setup models models-candidates
    .venv/bin/python -m tests.bench.model_selection

# Benchmarks (not part of `just test`); results go to docs/benchmarks.md
bench: setup models
    .venv/bin/python -m tests.bench.run --write docs/benchmarks.md

# Generation benchmark (issue 4): gateway vs raw backend, 1/4/8 concurrent streams, three backends; to docs/benchmarks.md
bench-generation: setup models
    .venv/bin/python -m tests.bench.generation --write docs/benchmarks.md

# Issue 9: the bus on FastStream against the commit before it (own worktree), alternating runs; to docs/benchmarks.md
bench-bus: setup models
    .venv/bin/python -m tests.bench.bus_before_after --write docs/benchmarks.md

# Benchmark on the Python documentation (installs python3.11-doc if missing); results to docs/benchmarks.md
bench-corpus: setup models
    .venv/bin/python -m tests.bench.corpus --write docs/benchmarks.md

# One tenant's embedding flood vs another's queries: first come first served vs fair turns; to docs/benchmarks.md
bench-fairness: setup models
    .venv/bin/python -m tests.bench.fairness --write docs/benchmarks.md

# Answer quality before/after on the Debian documentation corpora (installs the packages if missing); to docs/benchmarks.md
bench-answers: setup models
    .venv/bin/python -m tests.bench.answers --write docs/benchmarks.md

# On a machine with an NVIDIA GPU: own venv (onnxruntime-gpu, onnxruntime-genai-cuda), CUDA generator, embedding and generation benchmarks; to docs/benchmarks-gpu.md (GYRE_GPU_CHECK_PROVIDER=cpu tries it on CPU)
gpu-check:
    bash scripts/gpu-check.sh

# Rebuild the evaluation corpora's golden sets (tests/eval/corpora) from the Debian packages
eval-corpora: setup
    .venv/bin/python -m tests.eval.build_corpora

# Regenerate docs/settings.md from the settings object
docs: setup
    .venv/bin/python tools/gen_settings_doc.py
