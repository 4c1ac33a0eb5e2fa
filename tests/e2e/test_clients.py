"""Real OpenAI clients against the real gateway, unchanged: the `openai` package and LangChain's ChatOpenAI.

Every answer checked here is the model's own: asked with retrieval off (Gyre's ``retrieval`` field,
through the clients' ``extra_body``), or about a document this module indexed. The fixed "I don't
know" text, which needs no model, would fail them.
"""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
NO_RETRIEVAL = {"retrieval": False}  # the model answers alone: no sources, never the "I don't know" text
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the capital of France?"}]
MUSEUM = "The Varnholm museum keeps its old sea charts in a copper chest beside the harbour window."


@pytest.fixture(scope="module")
def client(stack: LocalStack, tenant_a: Tenant) -> openai.OpenAI:
    # No retries: a 429 or 5xx must show up here, not be retried away.
    return openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key=tenant_a.key, max_retries=0)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def museum_id(client_a: httpx.Client, events: EventWatcher) -> str:
    doc_id = f"museum-{uuid.uuid4().hex[:8]}"
    response = client_a.post("/v1/documents", json={"id": doc_id, "text": MUSEUM, "title": "Varnholm museum"})
    assert response.status_code == 202, response.text
    await events.wait_for("gyre.index.updated", doc_id)
    return doc_id


def test_openai_plain_completion_answers_from_the_indexed_document(client: openai.OpenAI, museum_id: str) -> None:
    completion = client.chat.completions.create(
        model=MODEL, max_tokens=32, temperature=0,
        messages=[{"role": "user", "content": "Where does the Varnholm museum keep its old sea charts?"}],
    )
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert "copper" in (completion.choices[0].message.content or "").lower(), completion
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    citations = (completion.model_extra or {}).get("citations")  # Gyre's extra field survives
    assert museum_id in [c["document_id"] for c in citations or []]


def test_openai_passes_gyre_extras_through_extra_body_and_headers(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=16, temperature=0, extra_body={**NO_RETRIEVAL, "top_k": 0},
        extra_headers={"X-Gyre-Prompt-Label": "production"},
    )
    assert "Paris" in (completion.choices[0].message.content or ""), completion
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert (completion.model_extra or {}).get("citations") == []


def test_openai_streaming(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=24, temperature=0, stream=True, extra_body=NO_RETRIEVAL,
    ))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(pieces) >= 2 and "Paris" in "".join(pieces), pieces
    assert len({c.id for c in chunks}) == 1 and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_openai_raises_bad_request_with_the_gateways_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=5)
    assert caught.value.status_code == 400
    assert caught.value.param == "temperature" and caught.value.code == "invalid_value"
    assert "temperature" in caught.value.message and "less than or equal to 2" in caught.value.message


def test_openai_raises_authentication_error_for_a_wrong_key(stack: LocalStack) -> None:
    wrong = openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_openai_embeddings(client: openai.OpenAI) -> None:
    # The package asks for base64 by default and decodes it: both formats must come back as floats.
    result = client.embeddings.create(model="all-minilm-l6-v2", input=["lighthouse clocks", "solar power"])
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 384
    as_base64 = client.embeddings.create(model="all-minilm-l6-v2", input="lighthouse clocks")
    as_floats = client.embeddings.create(model="all-minilm-l6-v2", input="lighthouse clocks", encoding_format="float")
    assert as_floats.data[0].embedding == pytest.approx(as_base64.data[0].embedding, abs=1e-6)


@pytest.fixture(scope="module")
def chat(stack: LocalStack, tenant_a: Tenant) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL, base_url=f"{stack.gateway_url}/v1", api_key=tenant_a.key,  # type: ignore[arg-type]
        max_tokens=24, temperature=0, max_retries=0, extra_body=NO_RETRIEVAL,  # type: ignore[call-arg]
    )


def test_langchain_invoke(chat: ChatOpenAI) -> None:
    message = chat.invoke("What is the capital of France?")
    assert isinstance(message, AIMessage) and isinstance(message.content, str)
    assert "Paris" in message.content, message
    assert message.response_metadata.get("finish_reason") in ("stop", "length")


def test_langchain_stream(chat: ChatOpenAI) -> None:
    chunks = list(chat.stream("What is the capital of France?"))
    assert len(chunks) >= 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert "Paris" in text, text
