"""scripts/gpu-check.sh and its Python half (tests/bench/gpu_check.py, gpu_build.py), without a GPU.

What can be checked here: the script's syntax, its refusals (no nvidia-smi, nvidia-smi without a GPU,
an unknown provider), a whole run on the CPU provider with small sizes (steps recorded, report
written with numbers), a run whose generator is missing (FAILED rows in the report, exit 1, the
embedding still measured), the report written from the steps alone, and that the CUDA variant of
the generator leaves the default recipe as it is. What cannot: the CUDA calls themselves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import gpu_build, gpu_check
from tests.support.models import EMBEDDER, GENERATOR, REPO, built_models

SCRIPT = REPO / "scripts" / "gpu-check.sh"
NUMBER = r"\d+(?:\.\d+)?"


def _run(env: dict[str, str], path: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GYRE_GPU_CHECK_")}
    full.update(env)
    if path is not None:
        full["PATH"] = path
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], cwd=REPO, env=full, capture_output=True, text=True, timeout=timeout
    )


def _bin_without_nvidia_smi(tmp_path: Path) -> str:
    """A PATH with the few tools the script needs before it looks for a GPU, and no nvidia-smi."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "head"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_script_parses() -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_refuses_without_nvidia_smi(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = _run({"GYRE_GPU_CHECK_DIR": str(work)}, path=_bin_without_nvidia_smi(tmp_path))
    assert proc.returncode == 2
    assert "nvidia-smi is not on PATH" in proc.stderr
    assert "GYRE_GPU_CHECK_PROVIDER=cpu" in proc.stderr
    assert not work.exists()  # refused before doing anything


def test_refuses_when_nvidia_smi_finds_no_gpu(tmp_path: Path) -> None:
    path = _bin_without_nvidia_smi(tmp_path)
    fake = Path(path) / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: it could not communicate with the driver'\nexit 9\n")
    fake.chmod(0o755)
    proc = _run({"GYRE_GPU_CHECK_DIR": str(tmp_path / "work")}, path=path)
    assert proc.returncode == 2
    assert "nvidia-smi finds no usable GPU" in proc.stderr
    assert "could not communicate with the driver" in proc.stderr


def test_refuses_an_unknown_provider(tmp_path: Path) -> None:
    proc = _run({"GYRE_GPU_CHECK_PROVIDER": "rocm", "GYRE_GPU_CHECK_DIR": str(tmp_path / "work")})
    assert proc.returncode == 2
    assert "must be cuda or cpu, not 'rocm'" in proc.stderr


def test_report_from_the_steps_alone(tmp_path: Path) -> None:
    steps = tmp_path / "steps.jsonl"
    steps.write_text(
        json.dumps({"step": "venv", "ok": False, "seconds": 3, "note": "exit 1: no matching distribution"})
        + "\nnot json\n"
    )
    out = tmp_path / "report.md"
    rc = gpu_check.main(["report", "--out", str(out), "--steps", str(steps), "--why", "the bench did not start"])
    text = out.read_text()
    assert rc == 0
    assert "| venv | FAILED | 3 | exit 1: no matching distribution |" in text
    assert "| ? | FAILED | 0 | not json |" in text
    assert text.count("**Not measured:** the bench did not start.") == 2
    assert text.startswith("# GPU benchmarks")


def test_doc_chunks_are_sized_and_counted() -> None:
    chunks = gpu_check.doc_chunks(40, chars=300)
    assert len(chunks) == 40
    assert all(150 <= len(c) <= 300 for c in chunks)


def test_cuda_variant_differs_from_the_default_only_in_its_provider() -> None:
    (default,) = gpu_build.by_name([gpu_build.BASE])
    default_hash = default.hash()
    variant = gpu_build.cuda_variant()
    assert variant.name == "smollm2-135m-instruct-cuda"
    assert variant.params["execution_provider"] == "cuda"
    assert default.params["execution_provider"] == "cpu"
    assert {k: v for k, v in variant.params.items() if k != "execution_provider"} == {
        k: v for k, v in default.params.items() if k != "execution_provider"
    }
    assert variant.module == default.module and variant.source_package == default.source_package
    assert variant.hash() != default_hash
    assert default.hash() == default_hash  # the default recipe (and so its build) is left as it was


def test_build_check_says_a_build_is_needed(tmp_path: Path) -> None:
    """`--check` runs with plain python3 (no build venv yet) and exits 3 for a missing variant."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bench.gpu_build", "--check", "--model-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "smollm2-135m-instruct-cuda: needs a build" in proc.stdout


def _cpu_env(tmp_path: Path, generator: Path) -> dict[str, str]:
    return {
        "GYRE_GPU_CHECK_PROVIDER": "cpu",
        "GYRE_GPU_CHECK_SIZE": "small",
        "GYRE_GPU_CHECK_DIR": str(tmp_path / "work"),
        "GYRE_GPU_CHECK_GENERATOR": str(generator),
        "GYRE_MODEL_DIR": str(built_models()),
    }


def _row_value(text: str, label: str) -> float:
    match = re.search(rf"^\| {re.escape(label)} \| ({NUMBER})x? \|$", text, re.MULTILINE)
    assert match, f"no numeric row {label!r} in:\n{text}"
    return float(match.group(1))


@pytest.mark.models
def test_cpu_run_writes_the_report_with_figures(tmp_path: Path) -> None:
    proc = _run(_cpu_env(tmp_path, built_models(GENERATOR) / GENERATOR))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (tmp_path / "work" / "benchmarks-cpu.md").read_text()
    for step in ("gpu", "venv", "models", "generator"):
        assert re.search(rf"^\| {step} \| ok \| \d+ \|", text, re.MULTILINE), step
    for file in ("model.onnx", "model_fp32.onnx"):
        cells = rf"\| {file} \| cpu \| ({NUMBER}) \| ({NUMBER}) \| 1\.00x \| CPUExecutionProvider \|"
        row = re.search(rf"^{cells}$", text, re.MULTILINE)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, text
    assert _row_value(text, "single stream: time to first token (ms)") > 0
    assert _row_value(text, "single stream: decode tokens/s") > 0
    assert _row_value(text, "2 streams as one batch: aggregate decode tokens/s") > 0
    assert _row_value(text, "aggregate / single stream") > 0
    assert "| provider asked for | cpu |" in text
    assert re.search(r"^\| onnxruntime-genai \| onnxruntime-genai \d+\.\d+", text, re.M)
    assert "[gpu-check] step bench: ok" in proc.stdout


@pytest.mark.models
def test_a_failed_step_is_a_failed_row_and_the_run_goes_on(tmp_path: Path) -> None:
    built_models(EMBEDDER)
    proc = _run(_cpu_env(tmp_path, tmp_path / "no-such-generator"))
    assert proc.returncode == 1
    text = (tmp_path / "work" / "benchmarks-cpu.md").read_text()
    assert re.search(r"^\| generator \| FAILED \| \d+ \| exit 1: ", text, re.MULTILINE), text
    assert re.search(rf"^\| model\.onnx \| cpu \| {NUMBER} \|", text, re.MULTILINE), text  # embedding still ran
    generation = text.split("## Generation", 1)[1]
    assert "**Failed:**" in generation and "no-such-generator" in generation
