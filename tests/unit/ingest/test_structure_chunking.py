"""Structure-aware chunking with the real embedding tokenizer: sections, blocks, sentences, pages, sizes.

Needs the default models built (`just models`): a missing tokenizer is a failure, not a skip.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise

import pytest
from tokenizers import Tokenizer

from gyre_contracts import Chunk
from gyre_ingest.chunking import chunk_text
from gyre_ingest.formats.base import Page
from gyre_ingest.sentences import split_sentences
from gyre_ingest.structure import ChunkingConfig, chunk_document
from tests.support.models import embedder_tokenizer

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return embedder_tokenizer()


@dataclass(frozen=True)
class SectionSpan:
    heading_path: tuple[str, ...]
    start: int  # body, after the heading line
    end: int


# --- a realistic Markdown document, generated deterministically ------------------------------------------

SENTENCES = [
    "Gyre turns an organisation's documents into a question-answering service that runs on its own machines.",
    "Each service subscribes to the subjects it needs and publishes typed events when its work is done.",
    "The ingest service cleans the text, checks its quality and cuts it into chunks, e.g. by heading and paragraph.",
    "Dr. Okafor's team measured about 390 sentences/s with the int8 model on a 2-core machine.",
    "A chunk of 200 tokens leaves room for the heading path that the embed service puts in front of it.",
    "Duplicates are found with MinHash signatures, i.e. sets of hashed shingles compared by Jaccard similarity.",
    "When a replica dies in the middle of a batch, JetStream redelivers the message to another one.",
    "Version 2.5 of the schema added the page number; older consumers simply ignore the new field.",
    "Why does a document go missing?",
    "Usually it was rejected, and the rejection names the check that failed!",
    "The U.S. office and the team in Lyon share one NATS cluster with three nodes.",
    "Mr. Lindqvist prefers hybrid retrieval, because dense vectors miss rare product codes like XR-7700.",
    "Throughput drops by roughly 3.5% when the embedding batch is capped at 16 items.",
    "Search keeps answering while a new collection is built, and the swap is a single alias update.",
    "Personal data such as e-mail addresses is replaced by typed placeholders before anything is stored.",
    "See Fig. 3 for the latency of each stage, measured from submission to the indexed event.",
    "Operators read the dead-letter stream with the CLI and replay messages once the cause is fixed.",
    "Prof. Nakamura suggested a labelled query set built from the Python documentation.",
    "Tokens are counted with the tokenizer of the embedding model, not with a guess based on words.",
    "A tenant never sees another tenant's documents, answers or feedback, whatever filter it sends.",
]
LIST_ITEMS = [
    "install the package with `pip install gyre`",
    "set GYRE_DATA_DIR to a folder with enough space",
    "start the stack with `just up` and note the API key",
    "upload a few documents, e.g. the sample manuals",
    "ask a question through the chat endpoint",
    "rate the answer so that the improve service learns from it",
    "check the dashboard for per-stage latency",
]
CODE_LINES = [
    "# connect to the local stack",
    "import httpx",
    "client = httpx.Client(base_url='http://localhost:8000', headers={'Authorization': f'Bearer {key}'})",
    "response = client.post('/v1/search', json={'query': 'reset password', 'top_k': 5, 'mode': 'hybrid'})",
    "for hit in response.json()['hits']:",
    "    print(hit['score'], hit['document_id'], hit['text'][:80])",
    "# stream a chat completion",
    "with client.stream('POST', '/v1/chat/completions', json={'messages': messages, 'stream': True}) as r:",
    "    for line in r.iter_lines():",
    "        print(line)",
]
TITLES = ["Installation", "On Linux", "On macOS", "Configuration", "Ingestion", "Search", "Feedback",
          "Operations", "Scaling out", "Troubleshooting", "Security", "Benchmarks"]


def realistic_markdown(words: int, seed: int = 7) -> tuple[str, list[SectionSpan]]:
    """Nested sections of paragraphs (some far longer than a chunk), lists and code fences with `#` comments."""
    rng = random.Random(seed)
    parts: list[str] = []
    spans: list[SectionSpan] = []
    path: list[str] = []
    length = 0
    count = 0
    section = 0

    def add(piece: str) -> None:
        nonlocal length, count
        parts.append(piece)
        length += len(piece)
        count += len(piece.split())

    while count < words:
        level = 1 if not path else rng.choice([lvl for lvl in (1, 2, 3) if lvl <= len(path) + 1])
        del path[level - 1 :]
        path.append(f"{TITLES[section % len(TITLES)]} {section}")
        section += 1
        add(f"{'#' * level} {path[-1]}\n\n")
        body_start = length
        for _ in range(rng.randint(1, 6)):
            kind = rng.random()
            if kind < 0.55:
                add(" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 6))) + "\n\n")
            elif kind < 0.7:  # one paragraph much longer than a chunk
                add(" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(12, 30))) + "\n\n")
            elif kind < 0.85:
                add("\n".join(f"- {rng.choice(LIST_ITEMS)}" for _ in range(rng.randint(2, 7))) + "\n\n")
            else:
                lines = [rng.choice(CODE_LINES) for _ in range(rng.randint(3, 40))]
                add("```python\n" + "\n".join(lines) + "\n```\n\n")
        spans.append(SectionSpan(tuple(path), body_start, length))
    return "".join(parts), spans


def section_of(chunk: Chunk, spans: list[SectionSpan]) -> SectionSpan:
    (span,) = [s for s in spans if s.start <= chunk.start < s.end]
    return span


def assert_well_formed(chunks: list[Chunk], text: str, tokenizer: Tokenizer, size: int) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.token_count == len(tokenizer.encode(c.text, add_special_tokens=False).ids)
        assert c.token_count <= size


# --- tests -----------------------------------------------------------------------------------------------


def test_heading_paths_follow_nested_sections(tokenizer: Tokenizer) -> None:
    text = (
        "Gyre ships as one repository.\n\n"
        "# Install\n\nPick your system.\n\n"
        "## On Linux\n\nUse the package manager.\n\n"
        "### Debian\n\nRun apt.\n\n"
        "```sh\n# apt update is not a heading\napt install gyre\n```\n\n"
        "## On macOS ##\n\nUse Homebrew.\n\n"
        "# Use\n\nAsk questions.\n"
    )
    chunks = chunk_document(text, tokenizer, ChunkingConfig())
    assert [(c.heading_path, c.text.split("\n")[0]) for c in chunks] == [
        ((), "Gyre ships as one repository."),
        (("Install",), "Pick your system."),
        (("Install", "On Linux"), "Use the package manager."),
        (("Install", "On Linux", "Debian"), "Run apt."),
        (("Install", "On macOS"), "Use Homebrew."),
        (("Use",), "Ask questions."),
    ]
    assert "# apt update is not a heading" in chunks[3].text


def test_no_chunk_crosses_a_section_of_a_long_document(tokenizer: Tokenizer) -> None:
    text, spans = realistic_markdown(3000)
    chunks = chunk_document(text, tokenizer, ChunkingConfig())
    for c in chunks:
        span = section_of(c, spans)
        assert c.end <= span.end
        assert c.heading_path == span.heading_path
    assert {c.heading_path for c in chunks} == {s.heading_path for s in spans}


@pytest.mark.parametrize(("size", "overlap", "min_size"), [(200, 40, 40), (64, 16, 20), (128, 0, 0), (254, 60, 100)])
def test_every_chunk_fits_the_size_with_exact_offsets(
    tokenizer: Tokenizer, size: int, overlap: int, min_size: int
) -> None:
    text, spans = realistic_markdown(3000, seed=size)
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=size, overlap=overlap, min_size=min_size))
    assert_well_formed(chunks, text, tokenizer, size)
    covered = bytearray(len(text))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    dropped = [i for s in spans for i in range(s.start, s.end) if not covered[i] and not text[i].isspace()]
    assert dropped == [], "every character of every section body is in some chunk"


def test_small_blocks_of_a_section_are_packed_together(tokenizer: Tokenizer) -> None:
    text = "# Notes\n\nFirst short paragraph.\n\nSecond one.\n\n- an item\n- another item\n\nLast words."
    (chunk,) = chunk_document(text, tokenizer, ChunkingConfig())
    assert chunk.text == text[len("# Notes\n\n") :]


@pytest.mark.parametrize(("min_size", "lead_in_alone"), [(40, False), (0, True)])
def test_a_short_lead_in_is_not_left_alone_before_an_oversized_block(
    tokenizer: Tokenizer, min_size: int, lead_in_alone: bool
) -> None:
    text = "# Steps\n\nBefore you start:\n\n" + " ".join(SENTENCES) + "\n"
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=100, overlap=0, min_size=min_size))
    assert (chunks[0].text == "Before you start:") is lead_in_alone
    assert chunks[0].text.startswith("Before you start:")


def test_a_code_fence_that_fits_is_kept_whole(tokenizer: Tokenizer) -> None:
    code = "```python\n" + "\n".join(CODE_LINES[:6]) + "\n```"
    prose = " ".join(SENTENCES[:6])
    text = f"# Example\n\n{prose}\n\n{code}\n\n{prose}\n"
    assert len(tokenizer.encode(code, add_special_tokens=False).ids) > 140
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=160, overlap=20))
    assert len(chunks) >= 3
    assert any(code in c.text for c in chunks)
    assert all(c.text.count("```") in (0, 2) for c in chunks)


def test_a_code_fence_too_big_for_one_chunk_is_split_at_line_ends(tokenizer: Tokenizer) -> None:
    lines = [f"value_{i} = compute(value_{i - 1}, factor={i})" for i in range(1, 80)]
    text = "# Script\n\n```python\n" + "\n".join(lines) + "\n```\n"
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=100, overlap=20))
    assert len(chunks) > 1
    assert_well_formed(chunks, text, tokenizer, 100)
    for c in chunks:
        assert text[c.end] == "\n"  # every piece ends at the end of a line
        assert c.end <= chunks[-1].end
    assert all(b.start >= a.end for a, b in pairwise(chunks))  # no carried code lines


def test_sentences_do_not_end_at_abbreviations_initials_or_decimals() -> None:
    text = (
        "Dr. Smith arrived at 3.14 p.m. sharp. He used tools, e.g. Python and Rust, cf. Fig. 2. "
        "Was it fine? Yes! The U.S. team agreed with J. Doe. Pi is 3.14. \"Quoted.\" The end"
    )
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Dr. Smith arrived at 3.14 p.m. sharp.",
        "He used tools, e.g. Python and Rust, cf. Fig. 2.",
        "Was it fine?",
        "Yes!",
        "The U.S. team agreed with J. Doe.",
        "Pi is 3.14.",
        '"Quoted."',
        "The end",
    ]


def test_a_paragraph_longer_than_a_chunk_is_cut_between_sentences(tokenizer: Tokenizer) -> None:
    paragraph = " ".join(SENTENCES * 2)
    text = f"# Long\n\n{paragraph}\n"
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=80, overlap=0))
    assert len(chunks) > 3
    sentences = {text[s:e] for s, e in split_sentences(text, len("# Long\n\n"))}
    for c in chunks:
        assert all(s in sentences for s in (c.text[a:b] for a, b in split_sentences(c.text)))
        assert c.text[-1] in ".?!"


def test_a_sentence_longer_than_a_chunk_falls_back_to_token_windows(tokenizer: Tokenizer) -> None:
    endless = " ".join(f"item{i} and" for i in range(300))
    text = f"# Run-on\n\nShort opener.\n\n{endless} done.\n"
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=64, overlap=8))
    assert len(chunks) > 5
    assert_well_formed(chunks, text, tokenizer, 64)
    assert chunks[-1].text.endswith("done.")


def test_chunks_never_span_pages_and_carry_the_page_they_start_on(tokenizer: Tokenizer) -> None:
    page_texts = [
        "# Report\n\n" + " ".join(SENTENCES[:8]),
        " ".join(SENTENCES[8:12]) + "\n\n## Results\n\n" + " ".join(SENTENCES[12:]),
        "- " + "\n- ".join(LIST_ITEMS),
    ]
    text, pages = "", []
    for number, (page_text, separator) in enumerate(zip(page_texts, [" ", "\n", "\n"], strict=True), start=1):
        pages.append(Page(number, len(text), len(text) + len(page_text)))
        text += page_text + separator
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=100, overlap=30), pages)
    assert_well_formed(chunks, text, tokenizer, 100)
    for c in chunks:
        (page,) = [p for p in pages if p.start <= c.start < p.end]
        assert c.end <= page.end
        assert c.page == page.number
    assert {c.page for c in chunks} == {1, 2, 3}
    # The paragraph running over the page break is cut there, and keeps its section.
    first_on_2 = next(c for c in chunks if c.page == 2)
    assert first_on_2.start == pages[1].start and first_on_2.heading_path == ("Report",)
    assert chunks[-1].heading_path == ("Report", "Results")


def test_page_edges_inside_words_still_give_chunks_within_size_and_page(tokenizer: Tokenizer) -> None:
    text, _ = realistic_markdown(3000, seed=3)
    edges = [*range(0, len(text), 997), len(text)]
    pages = [Page(n, s, e) for n, (s, e) in enumerate(pairwise(edges), start=1)]
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=96, overlap=24), pages)
    assert_well_formed(chunks, text, tokenizer, 96)
    for c in chunks:
        assert c.page is not None and pages[c.page - 1].start <= c.start and c.end <= pages[c.page - 1].end


def test_consecutive_chunks_of_a_section_share_whole_trailing_sentences(tokenizer: Tokenizer) -> None:
    text = "# One\n\n" + " ".join(SENTENCES * 2) + "\n\n# Two\n\n" + " ".join(reversed(SENTENCES)) + "\n"
    overlap = 40
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=120, overlap=overlap))
    pairs = list(pairwise(chunks))
    same = [(a, b) for a, b in pairs if a.heading_path == b.heading_path]
    across = [(a, b) for a, b in pairs if a.heading_path != b.heading_path]
    assert len(same) > 4 and len(across) == 1
    for a, b in same:
        assert a.start < b.start < a.end, "consecutive chunks of one section overlap"
        shared = text[b.start : a.end]
        assert a.text.endswith(shared) and b.text.startswith(shared)
        assert len(tokenizer.encode(shared, add_special_tokens=False).ids) <= overlap
        sentence_starts = {s for s, _ in split_sentences(text)}
        assert b.start in sentence_starts, "the overlap is made of whole sentences"
    for a, b in across:
        assert b.start >= a.end


def test_no_overlap_when_it_is_zero(tokenizer: Tokenizer) -> None:
    text = "# One\n\n" + " ".join(SENTENCES * 2)
    chunks = chunk_document(text, tokenizer, ChunkingConfig(size=120, overlap=0))
    assert len(chunks) > 2
    assert all(b.start >= a.end for a, b in pairwise(chunks))


def test_tokens_strategy_is_chunk_text_with_page_numbers(tokenizer: Tokenizer) -> None:
    text, _ = realistic_markdown(1500)
    config = ChunkingConfig(strategy="tokens", size=128, overlap=32)
    assert chunk_document(text, tokenizer, config) == chunk_text(text, tokenizer, 128, 32)
    half = len(text) // 2
    pages = [Page(1, 0, half), Page(2, half, len(text))]
    paged = chunk_document(text, tokenizer, config, pages)
    assert [c.page for c in paged] == [1 if c.start < half else 2 for c in paged]
    plain = chunk_text(text, tokenizer, 128, 32)
    assert [(c.start, c.end, c.text) for c in paged] == [(c.start, c.end, c.text) for c in plain]


def test_chunking_is_deterministic(tokenizer: Tokenizer) -> None:
    text, _ = realistic_markdown(3000, seed=11)
    config = ChunkingConfig(size=150, overlap=30)
    assert chunk_document(text, tokenizer, config) == chunk_document(text, tokenizer, config)


def test_text_without_structure_and_empty_text(tokenizer: Tokenizer) -> None:
    assert chunk_document("", tokenizer, ChunkingConfig()) == []
    assert chunk_document("# Only a heading\n", tokenizer, ChunkingConfig()) == []
    (chunk,) = chunk_document("  plain words  ", tokenizer, ChunkingConfig())
    assert (chunk.text, chunk.start, chunk.heading_path, chunk.page) == ("plain words", 2, (), None)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0}, {"size": 10, "overlap": 10}, {"overlap": -1}, {"min_size": 201}, {"strategy": "words"}],
)
def test_impossible_configurations_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(**kwargs)  # type: ignore[arg-type]
