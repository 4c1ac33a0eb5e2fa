"""The Generator behaviour suite on the Triton backend, against the real tritonserver binary that
PyPI's nvidia-pytriton carries (deploy/triton: its own venv, the gyre_llm Python-backend model
streaming SmolLM2 through onnxruntime-genai on CPU), plus what only Triton shows: the server's
model sees the cancellation, the model reports its errors, the token counts agree.

The first run builds .venv-triton (deploy/triton/setup.sh: ~25 s with a warm pip cache, ~70 s
cold); later runs find its stamp and go straight to starting the server (~4 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from gyre_contracts import SamplingParams
from gyre_runtime.config import load_settings
from gyre_runtime.generation import GenerationError, open_generator
from gyre_runtime.generation.chat_template import format_chatml
from gyre_runtime.generation.triton import TritonBackend
from tests.integration.generation.behaviour import (
    CAPITAL,
    STORY,
    RemoteGeneratorBehaviour,
    collect,
    generation_model_dir,
)
from tests.support.models import REPO
from tests.support.nats_server import free_port

pytestmark = [pytest.mark.models, pytest.mark.triton]

TRITON_MODEL = "gyre_llm"
SETUP_TIMEOUT_S = 600.0  # the first setup downloads nvidia-pytriton, onnxruntime(-genai), numpy
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class TritonServer:
    grpc_url: str
    http_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def run_setup() -> None:
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "triton" / "setup.sh")],
        capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"deploy/triton/setup.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    print(f"\n[triton] deploy/triton/setup.sh took {time.perf_counter() - started:.1f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(process: subprocess.Popen[bytes], http_url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tritonserver exited ({process.returncode}):\n{log.read_text(errors='replace')[-4000:]}")
        if http_ok(f"{http_url}/v2/health/ready") and http_ok(f"{http_url}/v2/models/{TRITON_MODEL}/ready"):
            return
        time.sleep(0.2)  # nothing to await: the server only answers polls
    pytest.fail(f"tritonserver not ready after {READY_TIMEOUT_S:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the server's own group: it and its Python stub
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def triton_server() -> Iterator[TritonServer]:
    """deploy/triton/setup.sh, then deploy/triton/run.sh on free ports, serving the built SmolLM2."""
    run_setup()
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="gyre-triton-") as tmp:
        log = Path(tmp) / "tritonserver.log"
        env = {**os.environ, "GYRE_TRITON_MODEL_DIR": str(generation_model_dir())}
        started = time.perf_counter()
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", str(REPO / "deploy" / "triton" / "run.sh"),
                 "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--metrics-port", str(metrics_port),
                 "--exit-timeout-secs=10"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        http_url = f"http://127.0.0.1:{http_port}"
        try:
            wait_ready(process, http_url, log)
            print(f"\n[triton] tritonserver ready in {time.perf_counter() - started:.1f} s")
            yield TritonServer(f"127.0.0.1:{grpc_port}", http_url, log)
        finally:
            stopping = time.perf_counter()
            stop(process)
            print(f"\n[triton] tritonserver stopped in {time.perf_counter() - stopping:.1f} s")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def generator(triton_server: TritonServer) -> AsyncIterator[TritonBackend]:
    settings = load_settings(
        {}, generation_backend="triton", triton_url=triton_server.grpc_url, triton_model=TRITON_MODEL,
        model_dir=str(generation_model_dir().parent),
    )
    backend = open_generator(settings)
    assert isinstance(backend, TritonBackend)
    yield backend
    await backend.close()


@pytest.fixture
def unreachable_generator() -> TritonBackend:
    return TritonBackend(f"127.0.0.1:{free_port()}", TRITON_MODEL, generation_model_dir(), model_version="1")


class TestTritonBackend(RemoteGeneratorBehaviour):
    deterministic_with_seed = True  # the same onnxruntime-genai random_seed, inside Triton's stub
    max_tokens_tolerance = 0  # the model reports its own count

    async def test_the_version_names_the_triton_model_its_address_and_served_version(
        self, generator: TritonBackend, triton_server: TritonServer
    ) -> None:
        assert generator.version == f"triton:{TRITON_MODEL}@{triton_server.grpc_url}:1"

    async def test_closing_a_stream_reaches_the_model_as_a_cancelled_request(
        self, generator: TritonBackend, triton_server: TritonServer
    ) -> None:
        def cancellations() -> int:
            return triton_server.log_text().count("gyre_llm: request cancelled after")

        before = cancellations()
        stream = generator.stream(STORY, SamplingParams(max_tokens=200))
        async with asyncio.timeout(60):
            await anext(stream)
            await anext(stream)
        await stream.aclose()
        assert stream.finish_reason == "cancelled"
        # The model logs it when is_cancelled() turns true before its next step; the log is another
        # process's file, so it is polled (bounded).
        for _ in range(200):
            if cancellations() > before:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the model never saw the cancellation:\n{triton_server.log_text()[-2000:]}")

    async def test_local_token_counts_agree_with_the_models_prompt_tokens(self, generator: TritonBackend) -> None:
        stream = generator.stream(CAPITAL, SamplingParams(max_tokens=1))
        await collect(stream)
        assert stream.prompt_tokens == generator.count_tokens(format_chatml(CAPITAL))
        assert generator.context_length == 8192

    async def test_a_prompt_beyond_the_context_is_the_models_error_as_a_generation_error(
        self, generator: TritonBackend
    ) -> None:
        stream = generator.stream([("user", "word " * (generator.context_length + 10))], SamplingParams())
        with pytest.raises(GenerationError, match="context"):
            await collect(stream)
        assert stream.finish_reason == "error"

    async def test_a_backend_for_a_server_that_is_not_there_fails_at_startup(self) -> None:
        settings = load_settings(
            {}, generation_backend="triton", triton_url=f"127.0.0.1:{free_port()}", request_timeout_s=5.0,
            model_dir=str(generation_model_dir().parent),
        )
        with pytest.raises(GenerationError, match="metadata"):
            open_generator(settings)
