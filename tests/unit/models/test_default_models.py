"""The built default models, through the runtime wrappers (no torch).

Needs the models built (`just models`, i.e. `bash libs/gyre-modelbuild/build.sh`); a missing
model is a failure, not a skip, so a CI run without them cannot pass silently.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from gyre_runtime.models.manifest import load_manifest, verify_manifest

REPO = Path(__file__).resolve().parents[3]
EMBEDDER = "all-minilm-l6-v2"
GENERATOR = "smollm2-135m-instruct"

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
    root = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models"))
    if not root.is_absolute():
        root = REPO / root
    missing = [n for n in (EMBEDDER, GENERATOR) if not (root / n / "manifest.json").is_file()]
    if missing:
        pytest.fail(
            f"default models missing in {root}: {', '.join(missing)}; run `just models` "
            "(bash libs/gyre-modelbuild/build.sh) or set GYRE_MODEL_DIR",
            pytrace=False,
        )
    return root


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
    from gyre_runtime.models.generator import OnnxGenaiGenerator

    gen = OnnxGenaiGenerator(model_dir / GENERATOR, threads=2)
    yield gen
    gen.close()


def _run(stream) -> str:
    return asyncio.run(stream.text())


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


def test_embed_is_order_and_batch_independent(embedder) -> None:
    texts = SENTENCES * 3  # 69 texts: three batches of mixed lengths
    all_at_once = embedder.embed(texts)
    one_by_one = np.stack([embedder.embed([t])[0] for t in texts[: len(SENTENCES)]])
    np.testing.assert_allclose(all_at_once[: len(SENTENCES)], one_by_one, atol=2e-3)
    np.testing.assert_allclose(all_at_once[: len(SENTENCES)], all_at_once[len(SENTENCES) : 2 * len(SENTENCES)], atol=1e-6)
    assert embedder.embed([]).shape == (0, 384)


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
    from gyre_runtime.models.generator import GenerationParams

    prompt = generator.format_chat([("user", "What is the capital of France?")])
    assert prompt == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    stream = generator.stream(prompt, GenerationParams(max_tokens=48))
    text = _run(stream)
    assert "Paris" in text, text
    assert stream.finish_reason == "stop"
    assert stream.prompt_tokens == generator.count_tokens(prompt)
    assert 0 < stream.completion_tokens <= 48
    assert "<|im_end|>" not in text


def test_stop_sequence_ends_generation(generator) -> None:
    from gyre_runtime.models.generator import GenerationParams

    prompt = generator.format_chat([("user", "Count from 1 to 20, separated by commas.")])
    free = _run(generator.stream(prompt, GenerationParams(max_tokens=60)))
    assert "5" in free, free
    stop = "5"
    stream = generator.stream(prompt, GenerationParams(max_tokens=60, stop=(stop,)))
    text = _run(stream)
    assert stream.finish_reason == "stop"
    assert stop not in text
    assert free.startswith(text)
    assert text == free[: free.index(stop)]


def test_max_tokens_ends_with_length(generator) -> None:
    from gyre_runtime.models.generator import GenerationParams

    prompt = generator.format_chat([("user", "Write a long story about a dragon.")])
    stream = generator.stream(prompt, GenerationParams(max_tokens=7))
    _run(stream)
    assert (stream.finish_reason, stream.completion_tokens) == ("length", 7)


def test_same_seed_same_text(generator) -> None:
    from gyre_runtime.models.generator import GenerationParams

    prompt = generator.format_chat([("user", "Write one sentence about the sea.")])
    params = GenerationParams(max_tokens=40, temperature=0.9, top_p=0.95, top_k=40, seed=1234)
    first = _run(generator.stream(prompt, params))
    second = _run(generator.stream(prompt, params))
    assert first and first == second
    others = {_run(generator.stream(prompt, msgspec_replace(params, seed=s))) for s in (1, 2, 3)}
    assert len(others | {first}) > 1  # the seed matters


def test_concurrent_streams_and_cancellation(generator) -> None:
    from gyre_runtime.models.generator import GenerationParams

    prompt = generator.format_chat([("user", "What is the capital of France?")])
    greedy = GenerationParams(max_tokens=32)

    async def main() -> tuple[list[str], str]:
        # Cancel a long stream after a few deltas; the others are unaffected.
        long = generator.stream(generator.format_chat([("user", "Tell me a very long story.")]), GenerationParams(max_tokens=400))
        got = []
        async for delta in long:
            got.append(delta)
            if len(got) == 3:
                break
        await long.aclose()
        assert long.finish_reason == "cancelled"
        texts = await asyncio.gather(*(generator.stream(prompt, greedy).text() for _ in range(3)))
        return texts, "".join(got)

    texts, partial = asyncio.run(main())
    assert partial
    assert len(set(texts)) == 1 and "Paris" in texts[0]


def test_generator_facts(generator) -> None:
    assert generator.context_length == 8192
    assert generator.count_tokens("2024") == 4  # digits split one by one
    assert generator.count_tokens("") == 0
    name, version, digest = generator.version.split(":")
    assert (name, version, len(digest)) == (GENERATOR, "1", 12)


def msgspec_replace(params, **changes):
    import msgspec

    return msgspec.structs.replace(params, **changes)
