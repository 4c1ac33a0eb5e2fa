"""A document cannot cost ingest more than its budget: bombs are refused by size, the rest by time and memory.

The issue's reproductions: a 110 KB DOCX took 135 s of CPU and 1.85 GB of memory (nothing capped what its
parts unpack to), and a 7 KB PDF whose pages share one large content stream took 83 s. Both are built
here. Cheap checks refuse them ``too_large`` before they are read; whatever gets past those is stopped by
the worker process it runs in (``extraction_timeout`` at its time limit, ``too_large`` at its memory
limit), and the worker is replaced so the pool keeps its size. The worker-pool tests start real
processes with the real tokenizer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import docx
import pytest

from gyre_contracts import DocumentSubmitted
from gyre_ingest.extraction_pool import ExtractionPool, WorkerLimits
from gyre_ingest.formats import ExtractionError, ExtractOptions, extract
from gyre_ingest.pipeline import IngestConfig, PreparedDocument, Refused
from gyre_ingest.quality import QualityThresholds
from tests.support.hostile_documents import shared_stream_pdf
from tests.support.models import embedder_tokenizer_path

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MB = 1024 * 1024
WAIT_S = 60.0  # bound of any single wait on a worker; normally a second or two

pytestmark = pytest.mark.timeout(180)


# --- the documents of the issue ------------------------------------------------------------------------------


def zip_bomb_docx(unpacked_mb: int) -> bytes:
    """A valid DOCX whose word/document.xml unpacks to ``unpacked_mb`` MB of paragraphs (~1000:1 packed)."""
    source = io.BytesIO()
    docx.Document().save(source)
    out = io.BytesIO()
    packed = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9)
    with zipfile.ZipFile(source) as original, packed as bomb:
        for item in original.infolist():
            if item.filename != "word/document.xml":
                bomb.writestr(item, original.read(item))
        head = (
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w='
            b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
        )
        paragraphs = b"<w:p><w:r><w:t>bomb</w:t></w:r></w:p>" * (MB // 38)
        with bomb.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(head)
            for _ in range(unpacked_mb):
                part.write(paragraphs)
            part.write(b"</w:body></w:document>")
    return out.getvalue()


def pdf_bomb() -> bytes:
    # 100 pages x 1.5 MB of operators: 150 MB to parse, from ~20 KB of file.
    return shared_stream_pdf(pages=100, lines=35_000)


def submitted(data: bytes, content_type: str, document_id: str = "doc") -> DocumentSubmitted:
    content = base64.b64encode(data).decode()
    return DocumentSubmitted(document_id=document_id, content=content, content_type=content_type)


# --- refused by size, before reading -----------------------------------------------------------------------


def test_a_zip_bomb_docx_is_refused_too_large_from_its_directory_alone() -> None:
    bomb = zip_bomb_docx(unpacked_mb=200)
    assert len(bomb) < 1 * MB  # a tiny file ...
    with pytest.raises(ExtractionError) as caught:
        extract(bomb, DOCX)
    assert caught.value.code == "too_large"
    assert "word/document.xml" in caught.value.message and "decompression bomb" in caught.value.message


def test_a_docx_whose_parts_unpack_past_the_limit_is_refused_too_large() -> None:
    source = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("A normal document, " * 1000)
    document.save(source)
    with pytest.raises(ExtractionError) as caught:
        extract(source.getvalue(), DOCX, options=ExtractOptions(max_unpacked_bytes=20_000))
    assert caught.value.code == "too_large" and "GYRE_MAX_UNPACKED_MB" in caught.value.message
    assert "A normal document" in extract(source.getvalue(), DOCX).text


def test_pdf_pages_sharing_one_large_content_stream_are_refused_too_large_before_any_is_read() -> None:
    bomb = pdf_bomb()
    assert len(bomb) < 32 * 1024
    with pytest.raises(ExtractionError) as caught:
        extract(bomb, "application/pdf", options=ExtractOptions(max_chars=1_000_000))
    assert caught.value.code == "too_large" and "content streams" in caught.value.message


def test_a_pdf_with_more_pages_than_its_characters_allow_is_refused_too_large() -> None:
    with pytest.raises(ExtractionError) as caught:
        extract(shared_stream_pdf(pages=60, lines=1), "application/pdf", options=ExtractOptions(max_chars=5_000))
    assert caught.value.code == "too_large" and "60 pages" in caught.value.message


def test_a_small_pdf_within_its_budgets_is_read() -> None:
    doc = extract(shared_stream_pdf(pages=3, lines=20), "application/pdf")
    assert [page.number for page in doc.pages] == [1, 2, 3]
    assert "The same words on every page." in doc.text


# --- the worker pool: time and memory limits, replacement (the real tokenizer) ---------------------------


PoolFactory = Callable[..., Awaitable[ExtractionPool]]


@pytest.fixture
async def pools() -> AsyncIterator[PoolFactory]:
    started: list[ExtractionPool] = []

    async def start(
        *, timeout_s: float = 60.0, memory_mb: int = 1024, size: int = 1, config: IngestConfig | None = None
    ) -> ExtractionPool:
        limits = WorkerLimits(timeout_s, memory_mb * MB)
        pool = ExtractionPool(embedder_tokenizer_path(), config or IngestConfig(), limits, size)
        await asyncio.wait_for(pool.start(), WAIT_S)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        await pool.close()


async def until(condition: Callable[[], bool]) -> None:
    """Waits (bounded by WAIT_S) until ``condition`` holds: worker processes start and stop on their own time."""
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - the pool offers no event for this; polling is enough in tests
            await asyncio.sleep(0.02)


async def pool_back_to_size(pool: ExtractionPool, without: list[int]) -> list[int]:
    """Waits until the pool has its full size again with none of the ``without`` workers."""
    await until(lambda: len(pool.pids) == pool.size and not set(pool.pids) & set(without))
    return pool.pids


def busy(pool: ExtractionPool) -> bool:
    return pool.idle == 0


def only_reason(outcome: PreparedDocument | Refused) -> str:
    assert isinstance(outcome, Refused), outcome
    [reason] = outcome.reasons
    return reason.code


@pytest.mark.models
async def test_a_worker_reads_a_document_as_prepare_document_would(pools: PoolFactory) -> None:
    pool = await pools()
    document = DocumentSubmitted(document_id="ok", text="Hello there. Mail me at a@b.example!")
    outcome = await pool.prepare(document, "redact")
    assert isinstance(outcome, PreparedDocument)
    assert outcome.text == "Hello there. Mail me at [EMAIL]!" and outcome.pii_counts == {"email": 1}
    assert [c.text for c in outcome.chunks] == [outcome.text]


@pytest.mark.models
async def test_a_zip_bomb_docx_is_rejected_too_large_without_the_worker_growing(pools: PoolFactory) -> None:
    pool = await pools(memory_mb=1024)
    [pid] = pool.pids
    outcome = await pool.prepare(submitted(zip_bomb_docx(unpacked_mb=200), DOCX), "redact")
    assert only_reason(outcome) == "too_large"
    assert 0 < pool.peak_memory_bytes < 400 * MB  # 200 MB of XML were never unpacked (lxml would need GBs)
    assert pool.pids == [pid]  # refused by the cheap check: the worker did not hit its limit


@pytest.mark.models
async def test_a_document_needing_more_memory_than_the_limit_is_rejected_too_large_and_the_worker_replaced(
    pools: PoolFactory,
) -> None:
    # 17 MB of text: tokenizing it needs far more than 400 MB (its size limits raised so only memory stops it).
    unlimited = 10**9
    config = IngestConfig(
        extract=ExtractOptions(max_bytes=unlimited, max_chars=unlimited), quality=QualityThresholds(max_chars=unlimited)
    )
    pool = await pools(memory_mb=400, config=config)
    [pid] = pool.pids
    outcome = await pool.prepare(DocumentSubmitted(document_id="big", text="Many words here. " * 1_000_000), "allow")
    assert only_reason(outcome) == "too_large"
    assert isinstance(outcome, Refused) and "GYRE_EXTRACTION_MEMORY_MB" in outcome.reasons[0].message
    await pool_back_to_size(pool, without=[pid])
    after = await pool.prepare(DocumentSubmitted(document_id="small", text="A small document fits easily."), "allow")
    assert isinstance(after, PreparedDocument)


@pytest.mark.models
async def test_a_document_over_the_time_limit_is_rejected_extraction_timeout_and_its_worker_replaced(
    pools: PoolFactory,
) -> None:
    # The PDF's budgets raised so that only the time limit can stop it (it would parse for minutes).
    config = IngestConfig(extract=ExtractOptions(max_chars=50_000_000))
    pool = await pools(timeout_s=2.0, size=2, config=config)
    before = pool.pids
    slow = asyncio.create_task(pool.prepare(submitted(pdf_bomb(), "application/pdf", "bomb"), "redact"))
    fine = await pool.prepare(DocumentSubmitted(document_id="fine", text="Read while the bomb is stuck."), "redact")
    assert isinstance(fine, PreparedDocument)  # the other worker served it meanwhile
    assert not slow.done()
    assert only_reason(await asyncio.wait_for(slow, WAIT_S)) == "extraction_timeout"
    after = await pool_back_to_size(pool, without=[p for p in before if p not in pool.pids])
    assert len(set(after) - set(before)) == 1  # exactly one worker, the stuck one, was replaced


async def reading_a_bomb(pools: PoolFactory) -> tuple[ExtractionPool, int, asyncio.Task[Any]]:
    """A one-worker pool whose worker has taken a PDF that would parse for minutes; its pid; the caller's task."""
    pool = await pools(timeout_s=60.0, config=IngestConfig(extract=ExtractOptions(max_chars=50_000_000)))
    [pid] = pool.pids
    task = asyncio.create_task(pool.prepare(submitted(pdf_bomb(), "application/pdf", "bomb"), "redact"))
    await until(lambda: busy(pool))
    return pool, pid, task


@pytest.mark.models
async def test_a_document_abandoned_by_its_caller_frees_its_worker(pools: PoolFactory) -> None:
    pool, pid, stuck = await reading_a_bomb(pools)
    stuck.cancel()  # what the consumer does to a handler past its maximum processing time
    with pytest.raises(asyncio.CancelledError):
        await stuck
    await pool_back_to_size(pool, without=[pid])
    following = DocumentSubmitted(document_id="next", text="The next document in line.")
    outcome = await asyncio.wait_for(pool.prepare(following, "redact"), WAIT_S)
    assert isinstance(outcome, PreparedDocument)


@pytest.mark.models
async def test_a_worker_that_dies_mid_document_rejects_it_and_is_replaced(pools: PoolFactory) -> None:
    pool, pid, dying = await reading_a_bomb(pools)
    os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    outcome = await asyncio.wait_for(dying, WAIT_S)
    assert only_reason(outcome) == "extraction_failed"
    assert isinstance(outcome, Refused) and "SIGKILL" in outcome.reasons[0].message
    await pool_back_to_size(pool, without=[pid])
