"""Ingest's handler: DocumentSubmitted -> DocumentAccepted + ChunksReady, or DocumentRejected."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gyre_contracts import (
    ChunksReady,
    DocumentAccepted,
    DocumentRejected,
    DocumentSubmitted,
    Rejection,
    utc_now,
)
from gyre_ingest.checks import check_document
from gyre_ingest.chunking import Tokenizer, chunk_text
from gyre_ingest.normalise import ContentError, decode_content, normalise_text
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry

log = get_logger()


@dataclass
class IngestHandler:
    settings: Settings
    tokenizer: Tokenizer
    registry: DocumentRegistry
    publisher: Publisher

    async def __call__(self, event: DocumentSubmitted, ctx: MessageContext) -> None:
        submission_id = event.submission_id or ctx.event_id
        try:
            text = normalise_text(decode_content(event.text, event.content, event.content_type))
            reasons = check_document(text, self.settings.max_document_chars)
        except ContentError as exc:
            text, reasons = "", [Rejection(code=exc.code, message=str(exc))]
        if reasons:
            await self._reject(event, submission_id, reasons)
            return

        chunks = chunk_text(text, self.tokenizer, self.settings.chunk_tokens, self.settings.chunk_overlap)
        content_hash = hashlib.sha256(text.encode()).hexdigest()

        def assign_version(current: DocumentRecord | None) -> DocumentRecord:
            if current is not None and current.submission_id == submission_id and current.version > 0:
                return current  # a redelivery: keep the version already assigned
            version = (current.version if current else 0) + 1
            return DocumentRecord(
                document_id=event.document_id, tenant=event.tenant, status="pending", version=version,
                submission_id=submission_id, content_hash=content_hash, chunks=len(chunks), title=event.title,
                submitted_at=event.submitted_at, accepted_at=utc_now(),
            )

        record = await self.registry.update(event.tenant, event.document_id, assign_version)
        assert record is not None
        key = (event.tenant, event.document_id, record.version)
        await self.publisher.publish(
            ChunksReady(
                tenant=event.tenant, document_id=event.document_id, version=record.version, title=event.title,
                metadata=event.metadata, chunks=tuple(chunks), submitted_at=event.submitted_at,
            ),
            event_id=derived_id("chunks", *key),
            traceparent=ctx.traceparent,
        )
        await self.publisher.publish(
            DocumentAccepted(
                tenant=event.tenant, document_id=event.document_id, version=record.version,
                content_hash=content_hash, chunk_count=len(chunks), characters=len(text),
                submitted_at=event.submitted_at,
            ),
            event_id=derived_id("accepted", *key),
            traceparent=ctx.traceparent,
        )
        log.info("document_accepted", document_id=event.document_id, tenant=event.tenant,
                 version=record.version, chunks=len(chunks))

    async def _reject(self, event: DocumentSubmitted, submission_id: str, reasons: list[Rejection]) -> None:
        def mark_rejected(current: DocumentRecord | None) -> DocumentRecord:
            return DocumentRecord(
                document_id=event.document_id, tenant=event.tenant, status="rejected",
                version=current.version if current else 0, submission_id=submission_id,
                reasons=reasons, title=event.title, submitted_at=event.submitted_at,
            )

        await self.registry.update(event.tenant, event.document_id, mark_rejected)
        await self.publisher.publish(
            DocumentRejected(
                tenant=event.tenant, document_id=event.document_id, reasons=tuple(reasons),
                submitted_at=event.submitted_at,
            ),
            event_id=derived_id("rejected", event.tenant, event.document_id, submission_id),
        )
        log.info("document_rejected", document_id=event.document_id, tenant=event.tenant,
                 reasons=[r.code for r in reasons])
