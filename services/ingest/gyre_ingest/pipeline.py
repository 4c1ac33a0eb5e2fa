"""From a submitted document to chunks: extract, check quality, apply the personal-data policy, chunk.

Plain functions, no NATS: the handler has ``prepare_document`` run in a worker process
(``extraction_pool``) and then does the parts that need shared state (de-duplication, versions) itself.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Literal

from gyre_contracts import Chunk, DocumentSubmitted, Rejection
from gyre_ingest.chunking import Tokenizer
from gyre_ingest.dedup import content_hash, minhash_signature
from gyre_ingest.formats import extract
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError, ExtractOptions, Page
from gyre_ingest.quality import QualityThresholds, check_quality
from gyre_ingest.structure import ChunkingConfig, chunk_document
from gyre_runtime.config import Settings
from gyre_runtime.guardrails.pii import PiiOutcome, apply_pii_policy

PiiPolicy = Literal["redact", "reject", "allow"]


@dataclass(frozen=True)
class IngestConfig:
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestConfig:
        def names(value: str) -> tuple[str, ...]:
            return tuple(n.strip() for n in value.split(",") if n.strip())

        return cls(
            extract=ExtractOptions(
                json_text_fields=names(settings.json_text_fields),
                csv_text_columns=names(settings.csv_text_columns),
                # Raw bytes may be several times the text they hold (PDF, DOCX).
                max_bytes=8 * settings.max_document_chars,
                max_unpacked_bytes=settings.max_unpacked_mb * 1024 * 1024,
                max_chars=settings.max_document_chars,
            ),
            quality=QualityThresholds(
                min_chars=settings.quality_min_chars,
                max_chars=settings.max_document_chars,
                min_alpha_ratio=settings.quality_min_alpha_ratio,
                max_repeated_line_ratio=settings.quality_max_repeated_line_ratio,
            ),
            chunking=ChunkingConfig(
                strategy=settings.chunk_strategy,
                size=settings.chunk_tokens,
                overlap=settings.chunk_overlap,
            ),
        )


@dataclass(frozen=True)
class PreparedDocument:
    text: str
    content_type: str
    title: str
    chunks: list[Chunk]
    pii_counts: dict[str, int]
    content_hash: str
    signature: tuple[int, ...]


@dataclass(frozen=True)
class Refused:
    reasons: list[Rejection]
    pii_counts: dict[str, int] = field(default_factory=dict)


def submitted_bytes(event: DocumentSubmitted) -> tuple[bytes, str]:
    """The raw bytes and declared content type of a submission (``text`` is UTF-8 text)."""
    if (event.text is None) == (event.content is None):
        raise ExtractionError("bad_request", "exactly one of text or content must be set")
    if event.text is not None:
        content_type = event.content_type
        if "charset" not in content_type:
            content_type += "; charset=utf-8"
        return event.text.encode("utf-8"), content_type
    assert event.content is not None
    try:
        return base64.b64decode(event.content, validate=True), event.content_type
    except (binascii.Error, ValueError) as exc:
        raise ExtractionError("undecodable", f"content is not valid base64: {exc}") from exc


def redact_keeping_pages(doc: ExtractedDocument, policy: PiiPolicy) -> tuple[str, tuple[Page, ...], PiiOutcome]:
    """Apply the personal-data policy page by page, so page spans still fit the changed text."""
    if not doc.pages:
        outcome = apply_pii_policy(doc.text, policy)
        return outcome.text, (), outcome
    pieces: list[str] = []
    pages: list[Page] = []
    counts: dict[str, int] = {}
    rejected = None
    position = 0
    cursor = 0
    for page in doc.pages:
        gap = doc.text[cursor : page.start]
        pieces.append(gap)
        position += len(gap)
        outcome = apply_pii_policy(doc.text[page.start : page.end], policy)
        pieces.append(outcome.text)
        pages.append(Page(number=page.number, start=position, end=position + len(outcome.text)))
        position += len(outcome.text)
        cursor = page.end
        for kind, n in outcome.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        rejected = rejected or outcome.rejected
    pieces.append(doc.text[cursor:])
    text = "".join(pieces)
    if rejected is not None:  # one rejection with the whole document's counts
        rejected = apply_pii_policy(doc.text, policy).rejected
    return text, tuple(pages), PiiOutcome(text=text, counts=counts, rejected=rejected)


def prepare_document(
    event: DocumentSubmitted, tokenizer: Tokenizer, config: IngestConfig, pii_policy: PiiPolicy
) -> PreparedDocument | Refused:
    try:
        data, content_type = submitted_bytes(event)
        doc = extract(data, content_type, filename=str(event.metadata.get("filename", "")), options=config.extract)
    except ExtractionError as exc:
        return Refused([Rejection(code=exc.code, message=str(exc))])
    reasons = check_quality(doc.text, config.quality)
    if reasons:
        return Refused(reasons)
    text, pages, pii = redact_keeping_pages(doc, pii_policy)
    if pii.rejected is not None:
        return Refused([pii.rejected], pii.counts)
    chunks = chunk_document(text, tokenizer, config.chunking, pages)
    if not chunks:
        return Refused([Rejection(code="empty", message="the document has no text to index after cleaning")])
    return PreparedDocument(
        text=text,
        content_type=doc.content_type,
        title=event.title or doc.title,
        chunks=chunks,
        pii_counts=pii.counts,
        content_hash=content_hash(text),
        signature=tuple(minhash_signature(text)),
    )
