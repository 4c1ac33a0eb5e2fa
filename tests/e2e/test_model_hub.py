"""The model hub on the real stack, driven as an operator would: `gyre models` commands while users chat.

`gyre up` registered the built models and pointed the production aliases at them; a new generator
version pushed with the CLI and promoted while an answer streams through the gateway takes over
with no request dropped (the streaming answer finishes whole); a rollback returns; moving the
embedder alias without a reindex is refused with the command to run. The stack has a model store of
its own (a copy), so what generate pulls from the bus lands there, not in the developer's store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gyre_cli.stack import SERVICES, LocalStack, find_executable
from tests.support.model_folders import renamed_copy
from tests.support.models import EMBEDDER, GENERATOR, built_models
from tests.support.nats_server import free_port
from tests.support.stack import DEFAULT_ENV, assert_no_permission_violations

pytestmark = [pytest.mark.e2e, pytest.mark.models]

KEY = "model-hub-e2e-key"


@pytest.fixture(scope="module")
def hub_stack() -> Iterator[tuple[LocalStack, Path]]:
    with tempfile.TemporaryDirectory(prefix="gyre-hub-e2e-") as root:
        store = Path(root) / "models"
        for name in (EMBEDDER, GENERATOR):
            shutil.copytree(built_models() / name, store / name)
        # Outside the store: it reaches generate by the bus.
        candidate = renamed_copy(store / GENERATOR, Path(root) / "candidate" / "smollm2-tuned", "smollm2-tuned")
        stack = LocalStack(
            data_dir=Path(root) / "data", model_dir=store, nats_port=free_port(), nats_monitor_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            extra_env={**DEFAULT_ENV, "GYRE_API_KEYS": f"{KEY}:hub", "GYRE_MAX_NEW_TOKENS": "256"},
        )
        with stack:
            yield stack, candidate
        assert_no_permission_violations(stack)


def gyre(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GYRE_NATS_URL": stack.nats_url, "GYRE_DATA_DIR": str(stack.data_dir),
           "GYRE_MODEL_DIR": str(stack.model_dir)}
    return subprocess.run([find_executable("gyre"), *args], env=env, capture_output=True, text=True, timeout=300)


def served_version(client: httpx.Client) -> str:
    cards = client.get("/v1/models").json()["data"]
    versions = [card["version"] for card in cards if card.get("kind") == "generation" and card["id"] == GENERATOR]
    assert versions, f"/v1/models lists no {GENERATOR}: {cards}"
    return str(versions[0])


def wait_for_version(client: httpx.Client, version: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while served_version(client) != version:
        assert time.monotonic() < deadline, f"generate still serves {served_version(client)}, not {version}"
        time.sleep(0.2)


def stream_chat(client: httpx.Client, question: str, max_tokens: int, first_line: threading.Event,
                result: dict[str, object]) -> None:
    body = {"messages": [{"role": "user", "content": question}], "stream": True, "max_tokens": max_tokens,
            "temperature": 0, "retrieval": False}
    text, finish = "", None
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        result["status"] = response.status_code
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            first_line.set()
            choice = chunk["choices"][0]
            text += choice.get("delta", {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
    result.update(text=text, finish=finish)


def test_gyre_up_registered_the_models_and_a_promotion_swaps_without_dropping_an_answer(
    hub_stack: tuple[LocalStack, Path],
) -> None:
    stack, candidate = hub_stack
    listed = gyre(stack, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "generator@production" in listed.stdout and "embedder@production" in listed.stdout
    pushed = gyre(stack, "models", "push", str(candidate), "--by", "e2e")
    assert pushed.returncode == 0, pushed.stderr
    new_version = pushed.stdout.split()[1]
    assert new_version.startswith("smollm2-tuned:1:")
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=180) as client:
        old_version = served_version(client)
        first_line, result = threading.Event(), {}
        reader = threading.Thread(target=stream_chat, args=(
            client, "Write a long story about a lighthouse keeper and the sea.", 200, first_line, result))
        reader.start()
        assert first_line.wait(120), "no streamed line within 120 s"
        promoted = gyre(stack, "models", "promote", "generator@production", new_version, "--reason", "e2e swap",
                        "--by", "e2e")
        assert promoted.returncode == 0, promoted.stderr
        wait_for_version(client, new_version)
        reader.join(180)
        # Finished whole on the old model: its own end (length, or stop: the loop guard), never an error or cut.
        assert result["status"] == 200 and result["finish"] in ("length", "stop"), result
        assert len(str(result["text"])) > 100
        answer = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 24,
            "temperature": 0, "retrieval": False}).json()
        assert "Paris" in answer["choices"][0]["message"]["content"]
        back = gyre(stack, "models", "rollback", "generator@production", "--reason", "e2e back", "--by", "e2e")
        assert back.returncode == 0, back.stderr
        wait_for_version(client, old_version)
    history = gyre(stack, "models", "history", "generator@production")
    assert history.returncode == 0 and history.stdout.count("generator@production") >= 3, history.stdout


def test_the_embedder_alias_moves_only_through_a_reindex_and_unknown_refs_name_what_exists(
    hub_stack: tuple[LocalStack, Path], tmp_path: Path,
) -> None:
    stack, _ = hub_stack
    assert stack.model_dir is not None
    other = renamed_copy(stack.model_dir / EMBEDDER, tmp_path / "minilm-other", "minilm-other")
    assert gyre(stack, "models", "push", str(other), "--by", "e2e").returncode == 0
    refused = gyre(stack, "models", "promote", "embedder@production", "minilm-other", "--reason", "no reindex")
    assert refused.returncode == 1 and "gyre reindex --embedding-model" in refused.stderr, refused.stderr
    listed = gyre(stack, "models", "history", "embedder@production")
    assert "minilm-other" not in listed.stdout  # the alias did not move
    wrong_role = gyre(stack, "models", "promote", "embedder@candidate", "smollm2-135m-instruct", "--reason", "role")
    assert wrong_role.returncode != 0 and "generator" in wrong_role.stderr, wrong_role.stderr
    unknown = gyre(stack, "models", "show", "no-such-model")
    assert unknown.returncode == 2 and GENERATOR in unknown.stderr, unknown.stderr
