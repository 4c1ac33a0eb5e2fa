"""Builds the CUDA variant of the default generator for scripts/gpu-check.sh, with the model build's own machinery.

The variant is the default recipe (`smollm2-135m-instruct`: same GGUF, same smollm2.py, same int4
options) with the builder's execution provider set to `cuda` and a name of its own, so its recipe
hash is its own and the default's hash and bytes do not change (nothing under libs/gyre-modelbuild
is edited). It goes to a folder of its own (data/gpu-check/models), never the model store, through
gyre_modelbuild's `ensure`: a rerun finds it up to date by its manifest and does not build again.

The one thing replaced is the build's smoke test: the build venv has the CPU onnxruntime-genai,
which cannot load a CUDA model, so the same check (a greedy answer must name Paris) runs in the GPU
venv through `python -m tests.bench.gpu_check smoke` on the provider of this run.

`--check` needs only the standard library (plain python3, before the build venv exists): exit 3
when the variant needs building.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "libs" / "gyre-modelbuild"))

from gyre_modelbuild import cli  # noqa: E402  (stdlib-only until a build starts)
from gyre_modelbuild.recipes import Recipe, by_name  # noqa: E402

BASE = "smollm2-135m-instruct"
SUFFIX = "-cuda"


def cuda_variant() -> Recipe:
    """The default generator's recipe, built for the CUDA execution provider."""
    base = by_name([BASE])[0]
    return dataclasses.replace(base, name=base.name + SUFFIX, params={**base.params, "execution_provider": "cuda"})


def smoke_in(python: str, provider: str) -> Any:
    """A stand-in for smollm2._smoke_test that runs the same check in the GPU venv on `provider`."""

    def smoke_test(folder: Path, threads: int = 2) -> dict[str, Any]:
        cmd = [python, "-m", "tests.bench.gpu_check", "smoke", str(folder), "--provider", provider]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise RuntimeError(f"smoke test on {provider} failed ({proc.returncode})")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"[gpu-check] smoke test on {provider}: {result['smoke_answer']!r}", flush=True)
        return result

    return smoke_test


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.gpu_build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=ROOT / "data" / "gpu-check" / "models")
    ap.add_argument("--smoke-python", default=sys.executable, help="python of the venv that runs the smoke test")
    ap.add_argument("--provider", choices=("cuda", "cpu"), default="cuda", help="where the smoke test runs")
    ap.add_argument("--check", action="store_true", help=f"never build; exit {cli.NEEDS_BUILD} if a build is needed")
    args = ap.parse_args(argv)

    recipe = cuda_variant()
    model_dir = args.model_dir.resolve()
    if not args.check:
        from gyre_modelbuild import smollm2

        smollm2._smoke_test = smoke_in(args.smoke_python, args.provider)
    result = cli.ensure(recipe, model_dir, None, check_only=args.check)
    return cli.NEEDS_BUILD if result == "needs-build" else 0


if __name__ == "__main__":
    sys.exit(main())
