"""The built default models, through the runtime wrappers (no torch).

Needs the models built (`just models`, i.e. `bash libs/gyre-modelbuild/build.sh`); a missing
model is a failure, not a skip, so a CI run without them cannot pass silently.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gyre_contracts import SamplingParams
from gyre_runtime.models.manifest import load_manifest, verify_manifest
from tests.support.models import EMBEDDER, GENERATOR, built_models

pytestmark = pytest.mark.models

SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is resting on the rug.",
    "Quarterly revenue grew by 12 percent compared with last year.",
    "Sales increased twelve percent year over year.",
    "How do I reset my password?",
    "I forgot my password and cannot log in.",
    "Photosynthesis converts light energy into chemical energy.",
    "The meeting has been moved to Thursday at 3 pm.",
    "def add(a, b): return a + b",
    "Paris is the capital of France.",
    "What is the capital city of France?",
    "I would like to cancel my subscription, please.",
    "Die Katze schläft auf dem Sofa.",
    "Error 502: bad gateway while contacting the upstream server.",
    "The mitochondria is the powerhouse of the cell.",
    "Remember to water the plants twice a week during summer.",
    "SELECT name, email FROM users WHERE active = true;",
    "Our refund policy allows returns within 30 days of purchase.",
    "Kubernetes schedules containers onto nodes.",
    "The stock market fell sharply today after the announcement.",
    "a",
    "Émile a visité le musée du Louvre avec sa sœur.",
    "The quick brown fox jumps over the lazy dog. " * 60,  # longer than 256 tokens
]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return built_models(EMBEDDER, GENERATOR)


@pytest.fixture(scope="session")
def embedder(model_dir: Path):
    from gyre_runtime.models.embedder import OnnxEmbedder

    return OnnxEmbedder(model_dir / EMBEDDER, threads=2)


@pytest.fixture(scope="session")
def embedder_fp32(model_dir: Path):
    from gyre_runtime.models.embedder import OnnxEmbedder

    return OnnxEmbedder(model_dir / EMBEDDER, threads=2, file="model_fp32.onnx")


@pytest.fixture(scope="session")
def generator(model_dir: Path):
    from gyre_runtime.generation.onnx import OnnxGenaiBackend

    gen = OnnxGenaiBackend(model_dir / GENERATOR, threads=2)
    yield gen
    asyncio.run(gen.close())


async def _text(stream) -> str:
    return "".join([delta async for delta in stream])


def _run(stream) -> str:
    return asyncio.run(_text(stream))


# -- manifests ---------------------------------------------------------------------------------


def test_manifest_checksums_match_files(model_dir: Path) -> None:
    for name in (EMBEDDER, GENERATOR):
        assert verify_manifest(model_dir / name) == [], name
        m = load_manifest(model_dir / name)
        assert m.name == name
        assert m.file in m.files and m.files[m.file].sha256 == m.sha256
    assert load_manifest(model_dir / EMBEDDER).dimension == 384
    assert load_manifest(model_dir / GENERATOR).context_length == 8192


def test_verify_manifest_reports_a_changed_file(tmp_path: Path, model_dir: Path) -> None:
    src = model_dir / EMBEDDER
    for name in ("manifest.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    with open(tmp_path / "tokenizer.json", "ab") as f:
        f.write(b" ")
    problems = verify_manifest(tmp_path)
    assert any(p.startswith("tokenizer.json") for p in problems)
    assert any(p.startswith("model.onnx") and "missing" in p for p in problems)


# -- embeddings --------------------------------------------------------------------------------


def test_int8_embeddings_match_fp32_export(embedder, embedder_fp32) -> None:
    v8 = embedder.embed(SENTENCES)
    v32 = embedder_fp32.embed(SENTENCES)
    assert v8.dtype == np.float32 and v8.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(v8, axis=1), 1.0, atol=1e-5)
    cos = (v8 * v32).sum(axis=1)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.98, f"{SENTENCES[worst][:40]!r}: cosine {cos[worst]:.4f}"

    # Paraphrases rank above unrelated sentences, with both models.
    pairs = [(0, 1), (2, 3), (4, 5), (9, 10)]
    for v in (v8, v32):
        sims = v @ v.T
        for a, b in pairs:
            others = [j for j in range(len(SENTENCES)) if j not in (a, b)]
            assert sims[a, b] > sims[a, others].max(), (SENTENCES[a], SENTENCES[b])


def test_embed_keeps_input_order_across_batches(embedder, embedder_fp32) -> None:
    texts = SENTENCES * 3  # 69 texts: three batches, reordered by length inside embed()
    n = len(SENTENCES)
    one_by_one = np.stack([embedder_fp32.embed([t])[0] for t in SENTENCES])
    fp32 = embedder_fp32.embed(texts)
    for k in range(3):  # fp32 does not depend on batch mates or padding
        np.testing.assert_allclose(fp32[k * n : (k + 1) * n], one_by_one, atol=1e-5)
    # int8 dynamic quantisation scales activations per batch tensor: a text's vector moves a
    # little with its batch mates, never far.
    int8 = embedder.embed(texts)
    for k in range(3):
        assert (int8[k * n : (k + 1) * n] * one_by_one).sum(axis=1).min() >= 0.98
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.embed("not a list")


def test_embedder_facts(embedder, embedder_fp32) -> None:
    assert embedder.dimension == 384
    assert embedder.max_tokens == 256
    name, version, sha = embedder.version.split(":")
    assert (name, version, len(sha)) == (EMBEDDER, "1", 12)
    assert embedder.version != embedder_fp32.version
    # The public tokenizer neither truncates nor pads: callers count and chunk with it.
    long = SENTENCES[-1]
    assert len(embedder.tokenizer.encode(long, add_special_tokens=False).ids) > 256
    assert len(embedder.tokenizer.encode("hello world").ids) == 4  # [CLS] hello world [SEP]


# -- generation --------------------------------------------------------------------------------


def test_greedy_smollm2_knows_the_capital_of_france(generator) -> None:
    from gyre_runtime.generation.chat_template import format_chatml

    messages = [("user", "What is the capital of France?")]
    prompt = format_chatml(messages)
    assert prompt == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    stream = generator.stream(messages, SamplingParams(max_tokens=48))
    text = _run(stream)
    assert "Paris" in text, text
    assert stream.finish_reason == "stop"
    assert stream.prompt_tokens == generator.count_tokens(prompt)
    assert 0 < stream.completion_tokens <= 48
    assert "<|im_end|>" not in text


def test_stop_sequence_ends_generation(generator) -> None:
    messages = [("user", "What is the capital of France?")]
    free = _run(generator.stream(messages, SamplingParams(max_tokens=48)))
    assert "Paris" in free, free
    for stop in (("Paris",), ("zzz-never", "of Fr", "Paris")):  # multi-char stops, earliest wins
        stream = generator.stream(messages, SamplingParams(max_tokens=48, stop=stop))
        text = _run(stream)
        cut = min(i for i in (free.find(s) for s in stop) if i >= 0)
        assert text == free[:cut], (stop, text)
        assert stream.finish_reason == "stop"
        assert stream.completion_tokens < generator.count_tokens(free) + 1


def test_max_tokens_ends_with_length(generator) -> None:
    stream = generator.stream([("user", "Write a long story about a dragon.")], SamplingParams(max_tokens=7))
    _run(stream)
    assert (stream.finish_reason, stream.completion_tokens) == ("length", 7)


def test_same_seed_same_text(generator) -> None:
    messages = [("user", "Write one sentence about the sea.")]
    params = SamplingParams(max_tokens=40, temperature=0.9, top_p=0.95, top_k=40, seed=1234)
    first = _run(generator.stream(messages, params))
    second = _run(generator.stream(messages, params))
    assert first and first == second
    others = {_run(generator.stream(messages, msgspec_replace(params, seed=s))) for s in (1, 2, 3)}
    assert len(others | {first}) > 1  # the seed matters


def test_concurrent_streams_and_cancellation(generator) -> None:
    greedy = SamplingParams(max_tokens=32)

    async def main() -> tuple[list[str], str]:
        # Cancel a long stream after a few deltas; the others are unaffected.
        long = generator.stream([("user", "Tell me a very long story.")], SamplingParams(max_tokens=400))
        got = []
        async for delta in long:
            got.append(delta)
            if len(got) == 3:
                break
        await long.aclose()
        assert long.finish_reason == "cancelled"
        assert long.prompt_tokens > 0 and 3 <= long.completion_tokens < 400  # usage of what was made
        capital = [("user", "What is the capital of France?")]
        texts = await asyncio.gather(*(_text(generator.stream(capital, greedy)) for _ in range(3)))
        return texts, "".join(got)

    texts, partial = asyncio.run(main())
    assert partial
    assert len(set(texts)) == 1 and "Paris" in texts[0]


def test_task_cancellation_and_errors_reach_the_consumer(generator) -> None:
    async def main() -> None:
        stream = generator.stream([("user", "Tell me a story.")], SamplingParams(max_tokens=300))
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in stream:
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stream.finish_reason == "cancelled"
        too_long = generator.stream([("user", "word " * (generator.context_length + 10))], SamplingParams())
        with pytest.raises(ValueError, match="the model's context is 8192"):
            await _text(too_long)
        assert too_long.finish_reason == "error"
        # The worker is still serving after both.
        assert await _text(generator.stream([("user", "Say hi.")], SamplingParams(max_tokens=8)))

    asyncio.run(main())


def test_close_ends_running_streams(model_dir: Path) -> None:
    from gyre_runtime.generation.onnx import OnnxGenaiBackend

    gen = OnnxGenaiBackend(model_dir / GENERATOR, threads=1)

    async def main() -> str | None:
        stream = gen.stream([("user", "Tell me a story.")], SamplingParams(max_tokens=500))
        async for _ in stream:
            break  # started
        await gen.close()
        rest = [d async for d in stream]  # what was already on its way, then the end
        assert len(rest) < 500
        return stream.finish_reason

    assert asyncio.run(main()) == "cancelled"
    with pytest.raises(RuntimeError):
        gen.stream([("user", "x")], SamplingParams())


def test_chunked_prefill_gives_the_same_answer(generator) -> None:
    from gyre_runtime.generation.chat_template import format_chatml

    context = " ".join(f"Document {i}: the invoice number {1000 + i} is due on day {i}." for i in range(12))
    messages = [("user", context + "\nWhen is invoice 1007 due?")]
    assert generator.count_tokens(format_chatml(messages)) > 200
    # Seeded sampling runs on a lone og.Generator, the path that appends a prompt in chunks (a batch
    # on og.Engine prefills in one call, with the GIL released).
    params = SamplingParams(max_tokens=16, temperature=0.7, seed=7)
    chunk = generator._prefill_chunk
    try:
        generator._prefill_chunk = 10_000
        whole = _run(generator.stream(messages, params))
        generator._prefill_chunk = 50
        chunked = _run(generator.stream(messages, params))
    finally:
        generator._prefill_chunk = chunk
    assert whole and whole == chunked


def test_generator_facts(generator) -> None:
    assert generator.context_length == 8192
    assert generator.count_tokens("2024") == 4  # digits split one by one
    assert generator.count_tokens("") == 0
    name, version, digest = generator.version.split(":")
    assert (name, version, len(digest)) == (GENERATOR, "1", 12)


def msgspec_replace(params, **changes):
    import msgspec

    return msgspec.structs.replace(params, **changes)


def test_a_query_vector_from_embed_each_does_not_depend_on_what_it_is_sent_with(embedder) -> None:
    """The int8 model quantises activations per call: batched, a text's vector shifts with its neighbours.

    That made concurrent searches (batched together) retrieve differently from one run to the next.
    """
    query = "What does os.getcwd() return?"
    others = ["What does os.listdir() return?", "Which exception is raised for a bad value? " * 4]
    alone = embedder.embed([query])[0]
    batched = embedder.embed([query, *others])[0]
    assert float(np.abs(alone - batched).max()) > 1e-3  # the effect embed_each exists for
    each = embedder.embed_each([query, *others])
    assert np.array_equal(each[0], alone)
    assert np.array_equal(each[1], embedder.embed([others[0]])[0])
