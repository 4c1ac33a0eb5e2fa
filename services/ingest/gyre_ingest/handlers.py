"""Ingest's handlers: DocumentSubmitted -> DocumentAccepted + ChunksReady, or DocumentRejected; deletions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gyre_contracts import (
    ChunksReady,
    DocumentAccepted,
    DocumentDeletionRequested,
    DocumentRejected,
    DocumentSubmitted,
    Rejection,
    utc_now,
)
from gyre_ingest.chunking import Tokenizer
from gyre_ingest.dedup import duplicate_rejection
from gyre_ingest.dedup_index import DedupIndex
from gyre_ingest.pipeline import IngestConfig, PreparedDocument, Refused, prepare_document
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from gyre_runtime.state.tenants import TenantPolicies

log = get_logger()


@dataclass
class IngestHandler:
    config: IngestConfig
    tokenizer: Tokenizer
    registry: DocumentRegistry
    dedup: DedupIndex
    policies: TenantPolicies
    publisher: Publisher

    async def __call__(self, event: DocumentSubmitted, ctx: MessageContext) -> None:
        submission_id = event.submission_id or ctx.event_id
        policy = await self.policies.get(event.tenant)
        outcome = await asyncio.to_thread(prepare_document, event, self.tokenizer, self.config, policy.pii)
        if isinstance(outcome, Refused):
            await self._reject(event, submission_id, outcome.reasons, outcome.pii_counts)
            return

        duplicate = await self.dedup.find_duplicate(
            event.tenant, event.document_id, outcome.content_hash, outcome.signature,
            policy.near_duplicate_threshold,
        )
        if duplicate is None or policy.duplicates == "keep":
            # The exact-hash claim is atomic: of two identical documents at once, one loses here.
            lost_to = await self.dedup.remember(
                event.tenant, event.document_id, outcome.content_hash, outcome.signature,
                allow_duplicate=policy.duplicates == "keep",
            )
            duplicate = duplicate or lost_to
        if duplicate is not None and policy.duplicates == "reject":
            await self._reject(
                event, submission_id, [duplicate_rejection(duplicate)], outcome.pii_counts,
                duplicate_of=duplicate.document_id,
            )
            return
        kept_near = duplicate.document_id if duplicate else ""
        await self._accept(event, submission_id, outcome, ctx, near_duplicate_of=kept_near, pii_policy=policy.pii)

    async def _accept(
        self, event: DocumentSubmitted, submission_id: str, doc: PreparedDocument, ctx: MessageContext,
        near_duplicate_of: str, pii_policy: str,
    ) -> None:
        def assign_version(current: DocumentRecord | None) -> DocumentRecord:
            if current is not None and current.submission_id == submission_id and current.version > 0:
                return current  # a redelivery: keep the version already assigned
            version = (current.version if current else 0) + 1
            return DocumentRecord(
                document_id=event.document_id, tenant=event.tenant, status="pending", version=version,
                submission_id=submission_id, content_hash=doc.content_hash, chunks=len(doc.chunks),
                title=doc.title, submitted_at=event.submitted_at, accepted_at=utc_now(),
            )

        record = await self.registry.update(event.tenant, event.document_id, assign_version)
        assert record is not None
        key = (event.tenant, event.document_id, record.version)
        await self.publisher.publish(
            ChunksReady(
                tenant=event.tenant, document_id=event.document_id, version=record.version, title=doc.title,
                metadata=event.metadata, chunks=tuple(doc.chunks), submitted_at=event.submitted_at,
            ),
            event_id=derived_id("chunks", *key),
            traceparent=ctx.traceparent,
        )
        await self.publisher.publish(
            DocumentAccepted(
                tenant=event.tenant, document_id=event.document_id, version=record.version,
                content_hash=doc.content_hash, chunk_count=len(doc.chunks), characters=len(doc.text),
                submitted_at=event.submitted_at, content_type=doc.content_type, pii_found=doc.pii_counts,
                pii_policy=pii_policy, near_duplicate_of=near_duplicate_of,
            ),
            event_id=derived_id("accepted", *key),
            traceparent=ctx.traceparent,
        )
        log.info("document_accepted", document_id=event.document_id, tenant=event.tenant,
                 version=record.version, chunks=len(doc.chunks), content_type=doc.content_type,
                 pii_found=doc.pii_counts)

    async def _reject(
        self, event: DocumentSubmitted, submission_id: str, reasons: list[Rejection], pii_counts: dict[str, int],
        duplicate_of: str = "",
    ) -> None:
        def mark_rejected(current: DocumentRecord | None) -> DocumentRecord:
            # A rejected resubmission leaves the previously indexed version (if any) searchable.
            return DocumentRecord(
                document_id=event.document_id, tenant=event.tenant, status="rejected",
                version=current.version if current else 0, submission_id=submission_id,
                chunks=current.chunks if current else 0, reasons=reasons,
                title=event.title or (current.title if current else ""), submitted_at=event.submitted_at,
                indexed_at=current.indexed_at if current else None,
            )

        await self.registry.update(event.tenant, event.document_id, mark_rejected)
        await self.publisher.publish(
            DocumentRejected(
                tenant=event.tenant, document_id=event.document_id, reasons=tuple(reasons),
                submitted_at=event.submitted_at, pii_found=pii_counts, duplicate_of=duplicate_of,
            ),
            event_id=derived_id("rejected", event.tenant, event.document_id, submission_id),
        )
        log.info("document_rejected", document_id=event.document_id, tenant=event.tenant,
                 reasons=[r.code for r in reasons], pii_found=pii_counts)


@dataclass
class DeletionHandler:
    """A deleted document stops counting as the original of later duplicates."""

    dedup: DedupIndex

    async def __call__(self, event: DocumentDeletionRequested, ctx: MessageContext) -> None:
        await self.dedup.forget(event.tenant, event.document_id)
