"""What reading documents in worker processes costs: pool start-up, and per-document time against a thread.

Ingest used to run ``prepare_document`` in a thread; it now sends each document to a worker process
(time and memory limits). This reads the same few hundred small documents both ways, one after another
and four at a time (ingest's default concurrency), and prints the figures.

Run: `.venv/bin/python -m tests.bench.extraction_overhead [--documents 300]` (needs `just models`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from tokenizers import Tokenizer

from gyre_contracts import DocumentSubmitted
from gyre_ingest.extraction_pool import ExtractionPool, WorkerLimits
from gyre_ingest.pipeline import IngestConfig, PreparedDocument, Refused, prepare_document
from gyre_runtime.config import load_settings

PARAGRAPH = (
    "Gyre reads each submitted document in a worker process with a time and a memory limit. "
    "A document that breaks a limit is rejected with a named reason; the others are chunked and embedded. "
)


def documents(count: int) -> list[DocumentSubmitted]:
    # About 1.5 KB each, like a short web page or note; different texts so nothing is cached.
    return [
        DocumentSubmitted(document_id=f"doc-{i}", text=f"# Note {i}\n\n" + PARAGRAPH * 7 + f"Number {i} ends here.")
        for i in range(count)
    ]


async def in_threads(docs: list[DocumentSubmitted], tokenizer: Tokenizer, at_once: int) -> float:
    config, slots = IngestConfig(), asyncio.Semaphore(at_once)

    async def one(doc: DocumentSubmitted) -> PreparedDocument | Refused:
        async with slots:
            return await asyncio.to_thread(prepare_document, doc, tokenizer, config, "redact")

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(d) for d in docs))
    elapsed = time.perf_counter() - started
    assert all(isinstance(o, PreparedDocument) for o in outcomes)
    return elapsed


async def in_workers(docs: list[DocumentSubmitted], pool: ExtractionPool) -> float:
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(pool.prepare(d, "redact") for d in docs))
    elapsed = time.perf_counter() - started
    assert all(isinstance(o, PreparedDocument) for o in outcomes)
    return elapsed


async def main(count: int) -> None:
    settings = load_settings()
    path = settings.model_path / settings.embedding_model / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    docs = documents(count)
    await in_threads(docs[:20], tokenizer, 1)  # warm-up: imports, first encodings
    rows: list[tuple[str, float, float]] = []
    for at_once in (1, 4):
        started = time.perf_counter()
        pool = ExtractionPool(path, IngestConfig(), WorkerLimits(), size=at_once)
        await pool.start()
        start_s = time.perf_counter() - started
        try:
            await in_workers(docs[:20], pool)
            threads = statistics.median([await in_threads(docs, tokenizer, at_once) for _ in range(3)])
            workers = statistics.median([await in_workers(docs, pool) for _ in range(3)])
        finally:
            await pool.close()
        rows.append((f"{at_once} at a time", threads, workers))
        print(f"pool of {at_once}: start {start_s:.2f} s")
    print(f"{count} documents of ~{len(docs[0].text)} characters, median of 3 runs")
    print("| documents in flight | thread (ms/doc) | worker process (ms/doc) | overhead (ms/doc) |")
    print("| --- | --- | --- | --- |")
    for name, threads, workers in rows:
        print(
            f"| {name} | {1000 * threads / count:.2f} | {1000 * workers / count:.2f} "
            f"| {1000 * (workers - threads) / count:+.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=300)
    asyncio.run(main(parser.parse_args().documents))
