"""A Gyre stack whose generate service uses the `openai` backend, pointed at another Gyre stack's gateway.

The session's stack (tests/e2e/conftest.py) is the OpenAI-compatible server; a second stack
retrieves from its own documents and sends the prompt upstream with retrieval off. Its answers
stream through its own gateway and cite its own documents.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant
from tests.support.stack import EventWatcher, running_stack, watching

pytestmark = pytest.mark.e2e

KEY = "test-key-downstream"
MODEL = "smollm2-135m-instruct"
DOCUMENT = """# The Quillfeather Archive

The Quillfeather archive keeps the logbooks of the northern canal boats.
Its reading room opens only on Thursdays, and every visitor must wear cotton gloves.
The archive's oldest logbook was written in 1687 by a boatwoman called Edda Marr.
"""


@pytest.fixture(scope="module")
def downstream(stack: LocalStack, tenant_a: Tenant) -> Iterator[LocalStack]:
    """The second stack: generation through the `openai` backend against the session stack's gateway."""
    env = {
        "GYRE_API_KEYS": f"{KEY}:tenant-down",
        "GYRE_ONNX_THREADS": "1",  # the embedder only; the language model runs upstream
        "GYRE_MAX_NEW_TOKENS": "48",
        "GYRE_GENERATION_BACKEND": "openai",
        "GYRE_OPENAI_BASE_URL": f"{stack.gateway_url}/v1",
        "GYRE_OPENAI_API_KEY": tenant_a.key,
        "GYRE_OPENAI_MODEL": MODEL,
        "GYRE_OPENAI_EXTRA_BODY": '{"retrieval": false}',
    }
    with running_stack("gyre-e2e-openai-", env) as second:
        yield second


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def downstream_events(downstream: LocalStack) -> AsyncIterator[EventWatcher]:
    async with watching(downstream) as watcher:
        yield watcher


async def test_a_stack_on_the_openai_backend_streams_an_answer_citing_its_own_document(
    stack: LocalStack, downstream: LocalStack, downstream_events: EventWatcher
) -> None:
    doc_id = f"quillfeather-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=downstream.gateway_url, headers=headers, timeout=180) as client:
        submitted = client.post(
            "/v1/documents",
            json={"id": doc_id, "text": DOCUMENT, "title": "Quillfeather", "content_type": "text/markdown"},
        )
        assert submitted.status_code == 202, submitted.text
        await downstream_events.wait_for("gyre.index.updated", doc_id)

        question = {"role": "user", "content": "When does the Quillfeather archive's reading room open?"}
        with client.stream(
            "POST", "/v1/chat/completions", json={"messages": [question], "stream": True, "max_tokens": 32}
        ) as response:
            assert response.status_code == 200, response.read().decode()
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]

    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert not [c for c in chunks if "error" in c], chunks
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([d for d in deltas if d]) >= 2 and "Thursday" in "".join(d or "" for d in deltas), deltas
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] in ("stop", "length")
    assert final["usage"]["completion_tokens"] > 0
    assert doc_id in [c["document_id"] for c in final["citations"]]
    # The answer came through the openai backend, from the session stack's gateway.
    assert final["model"] == f"openai:{MODEL}"  # the backend's address never reaches a client
