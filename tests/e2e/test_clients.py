"""Real OpenAI clients against the real gateway, unchanged: the `openai` package and LangChain's ChatOpenAI."""

from __future__ import annotations

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import KEY_A

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What colour is the sky on a clear day?"}]


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> openai.OpenAI:
    # No retries: a 429 or 5xx must show up here, not be retried away.
    return openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key=KEY_A, max_retries=0)


def test_openai_plain_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=24, temperature=0)
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    # With nothing relevant retrieved the answer is the fixed "I don't know" text, so no tokens may be spent.
    assert completion.usage is not None and completion.usage.total_tokens >= completion.usage.completion_tokens >= 0
    assert isinstance((completion.model_extra or {}).get("citations"), list)  # Gyre's extra field survives


def test_openai_passes_gyre_extras_through_extra_body(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=8, extra_body={"retrieval": False, "top_k": 0},
        extra_headers={"X-Gyre-Prompt-Label": "production"},
    )
    assert completion.usage is not None and completion.usage.completion_tokens > 0  # the model itself answered
    assert (completion.model_extra or {}).get("citations") == []


def test_openai_streaming(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=24, stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(pieces) >= 2 and "".join(pieces).strip()
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
def chat(stack: LocalStack) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL, base_url=f"{stack.gateway_url}/v1", api_key=KEY_A,  # type: ignore[arg-type]
        max_tokens=24, temperature=0, max_retries=0,  # type: ignore[call-arg]
    )


def test_langchain_invoke(chat: ChatOpenAI) -> None:
    message = chat.invoke("What colour is the sky on a clear day?")
    assert isinstance(message, AIMessage) and isinstance(message.content, str) and message.content.strip()
    assert message.response_metadata.get("finish_reason") in ("stop", "length")


def test_langchain_stream(chat: ChatOpenAI) -> None:
    chunks = list(chat.stream("Say hello in three words."))
    assert len(chunks) >= 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert text.strip()
