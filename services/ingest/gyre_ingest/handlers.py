"""Ingest's handlers: submissions in the order they were sent -> ChunksReady or DocumentRejected; deletions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from nats.js.errors import BadRequestError, NotFoundError

from gyre_contracts import (
    ChunksReady,
    DocumentAccepted,
    DocumentDeletionRequested,
    DocumentRejected,
    DocumentSubmitted,
    Rejection,
    utc_now,
)
from gyre_ingest.dedup import duplicate_rejection
from gyre_ingest.dedup_index import DedupIndex
from gyre_ingest.extraction_pool import ExtractionPool
from gyre_ingest.pipeline import PreparedDocument, Refused
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.consumer import MessageContext, PermanentError
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import (
    DocumentRecord,
    DocumentRegistry,
    StoredMessage,
    Verdict,
    assigned_version,
    messages_to_purge,
    sent_before_deletion,
    submission_verdict,
    with_assigned_version,
    with_stored_message,
    with_tombstone,
    without_messages,
)
from gyre_runtime.state.tenants import TenantPolicies

log = get_logger()

# Streams (topology names) holding a document's content: raw submissions, and chunks ready to embed.
INGEST_STREAM = "GYRE_INGEST"
EMBED_STREAM = "GYRE_EMBED"


@dataclass
class IngestHandler:
    extraction: ExtractionPool  # reads each document in a worker process, within its time and memory limits
    registry: DocumentRegistry
    dedup: DedupIndex
    policies: TenantPolicies
    publisher: Publisher

    async def __call__(self, event: DocumentSubmitted, ctx: MessageContext) -> None:
        # The subject's last token is the tenant the publisher's NATS credential may publish for
        # (gyre_runtime.bus.permissions); a body naming another tenant is refused, never trusted.
        subject_tenant = ctx.subject.rpartition(".")[2]
        if event.tenant != subject_tenant:
            raise PermanentError(
                f"tenant mismatch: the event's tenant is {event.tenant!r} but it was published on"
                f" {ctx.subject}, the subject of tenant {subject_tenant!r}"
            )
        submission_id = event.submission_id or ctx.event_id
        version = await self._version_of(event, submission_id, ctx)
        if version is None:
            return  # deleted or replaced since it was sent: nothing to do
        policy = await self.policies.get(event.tenant)
        outcome = await self.extraction.prepare(event, policy.pii)
        if isinstance(outcome, Refused):
            await self._reject(event, submission_id, version, ctx, outcome.reasons, outcome.pii_counts)
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
                event, submission_id, version, ctx, [duplicate_rejection(duplicate)], outcome.pii_counts,
                duplicate_of=duplicate.document_id,
            )
            return
        kept_near = duplicate.document_id if duplicate else ""
        await self._accept(
            event, submission_id, version, outcome, ctx, near_duplicate_of=kept_near, pii_policy=policy.pii
        )

    async def _version_of(self, event: DocumentSubmitted, submission_id: str, ctx: MessageContext) -> int | None:
        """The submission's version (numbered when sent, or now for events that come without one);
        None when a deletion or a newer submission was sent after it (then it is dropped here)."""
        record = await self.registry.get(event.tenant, event.document_id)
        version = event.version or assigned_version(record, submission_id)
        if not version:
            if sent_before_deletion(record, ctx.stream_sequence):
                await self._drop(event, ctx, "deleted", 0)
                return None

            def assign(current: DocumentRecord | None) -> DocumentRecord | None:
                return with_assigned_version(
                    current, tenant=event.tenant, document_id=event.document_id, submission_id=submission_id,
                    submitted_at=event.submitted_at, title=event.title,
                )

            record = await self.registry.update(event.tenant, event.document_id, assign)
            version = assigned_version(record, submission_id)
        verdict = submission_verdict(record, version)
        if verdict != "current":
            await self._drop(event, ctx, verdict, version)
            return None
        return version

    async def _drop(self, event: DocumentSubmitted, ctx: MessageContext, verdict: Verdict, version: int) -> None:
        """A submission sent before a deletion or a newer submission: nothing of it is kept.

        A deleted one's raw content is removed from the bus as well (the deletion could not know
        where it was while it waited in the queue).
        """
        if verdict == "deleted" and ctx.stream_sequence:
            await purge_messages(self.publisher.bus, [StoredMessage(
                stream=INGEST_STREAM, sequence=ctx.stream_sequence, version=version,
            )])
        log.info("submission_dropped", document_id=event.document_id, tenant=event.tenant, version=version,
                 reason=verdict)

    async def _accept(
        self, event: DocumentSubmitted, submission_id: str, version: int, doc: PreparedDocument, ctx: MessageContext,
        near_duplicate_of: str, pii_policy: str,
    ) -> None:
        def accept(current: DocumentRecord | None) -> DocumentRecord | None:
            if current is not None and current.version == version and current.submission_id == submission_id:
                return None  # a redelivery: what it wrote (and maybe embed after it) stands
            base = current or DocumentRecord(document_id=event.document_id, tenant=event.tenant)
            return msgspec.structs.replace(
                base, status="pending", version=version, submissions=max(base.submissions, version),
                submission_id=submission_id, content_hash=doc.content_hash, chunks=len(doc.chunks), reasons=[],
                title=doc.title, submitted_at=event.submitted_at, accepted_at=utc_now(), indexed_at=None,
                embedding_model="",
            )

        verdict = await self._record_outcome(event, version, ctx, accept)
        if verdict != "current":
            if verdict == "deleted":
                # Its content was claimed for de-duplication a moment ago: a deleted document claims nothing.
                await self.dedup.forget(event.tenant, event.document_id)
            await self._drop(event, ctx, verdict, version)
            return
        key = (event.tenant, event.document_id, version)
        ack = await self.publisher.publish(
            ChunksReady(
                tenant=event.tenant, document_id=event.document_id, version=version, title=doc.title,
                metadata=event.metadata, chunks=tuple(doc.chunks), submitted_at=event.submitted_at,
            ),
            event_id=derived_id("chunks", *key),
            traceparent=ctx.traceparent,
        )
        await self._remember(event, StoredMessage(stream=EMBED_STREAM, sequence=ack.seq, version=version))
        await self.publisher.publish(
            DocumentAccepted(
                tenant=event.tenant, document_id=event.document_id, version=version,
                content_hash=doc.content_hash, chunk_count=len(doc.chunks), characters=len(doc.text),
                submitted_at=event.submitted_at, content_type=doc.content_type, pii_found=doc.pii_counts,
                pii_policy=pii_policy, near_duplicate_of=near_duplicate_of,
            ),
            event_id=derived_id("accepted", *key),
            traceparent=ctx.traceparent,
        )
        log.info("document_accepted", document_id=event.document_id, tenant=event.tenant,
                 version=version, chunks=len(doc.chunks), content_type=doc.content_type,
                 pii_found=doc.pii_counts)

    async def _record_outcome(
        self, event: DocumentSubmitted, version: int, ctx: MessageContext,
        change: Callable[[DocumentRecord | None], DocumentRecord | None],
    ) -> Verdict:
        """Writes a submission's outcome (``change`` of the current record; None leaves it) to the registry.

        Nothing is written unless the submission is still ``current``: one sent before a deletion or a
        newer submission must not win. The record notes where the raw submission is kept on the bus.
        """
        raw = StoredMessage(stream=INGEST_STREAM, sequence=ctx.stream_sequence, version=version)
        verdict: Verdict = "current"

        def update(current: DocumentRecord | None) -> DocumentRecord | None:
            nonlocal verdict
            verdict = submission_verdict(current, version)
            record = change(current) if verdict == "current" else None
            return None if record is None else with_stored_message(record, raw) or record

        await self.registry.update(event.tenant, event.document_id, update)
        return verdict

    async def _remember(self, event: DocumentSubmitted, message: StoredMessage) -> None:
        """Note a message carrying the document's content; if a deletion came meanwhile, purge it now."""
        record = await self.registry.update(
            event.tenant, event.document_id, lambda current: with_stored_message(current, message)
        )
        if submission_verdict(record, message.version) == "deleted":
            await purge_deleted_content(self.registry, self.publisher.bus, event.tenant, event.document_id)

    async def _reject(
        self, event: DocumentSubmitted, submission_id: str, version: int, ctx: MessageContext,
        reasons: list[Rejection], pii_counts: dict[str, int], duplicate_of: str = "",
    ) -> None:
        def mark_rejected(current: DocumentRecord | None) -> DocumentRecord:
            # A rejected resubmission leaves the previously accepted version (if any) searchable: its
            # version, chunks and timings stay.
            base = current or DocumentRecord(document_id=event.document_id, tenant=event.tenant)
            return msgspec.structs.replace(
                base, status="rejected", submissions=max(base.submissions, version), submission_id=submission_id,
                reasons=reasons, title=event.title or base.title, submitted_at=event.submitted_at,
            )

        verdict = await self._record_outcome(event, version, ctx, mark_rejected)
        if verdict != "current":
            await self._drop(event, ctx, verdict, version)
            return
        await self.publisher.publish(
            DocumentRejected(
                tenant=event.tenant, document_id=event.document_id, reasons=tuple(reasons),
                submitted_at=event.submitted_at, pii_found=pii_counts, duplicate_of=duplicate_of,
            ),
            event_id=derived_id("rejected", event.tenant, event.document_id, submission_id),
        )
        log.info("document_rejected", document_id=event.document_id, tenant=event.tenant,
                 reasons=[r.code for r in reasons], pii_found=pii_counts)


async def purge_messages(bus: Bus, messages: list[StoredMessage]) -> None:
    """Delete messages from their streams; one already gone (aged out, purged before) is no error."""
    for message in messages:
        try:
            await bus.js.delete_msg(bus.stream_name(message.stream), message.sequence)
        except NotFoundError:
            pass
        except BadRequestError as exc:  # "no message found": deleted already
            log.debug("message_already_gone", stream=message.stream, sequence=message.sequence, error=str(exc))


async def purge_deleted_content(registry: DocumentRegistry, bus: Bus, tenant: str, document_id: str) -> None:
    """Remove the raw submissions and chunks of the document's deleted versions from the streams."""
    record = await registry.get(tenant, document_id)
    messages = messages_to_purge(record)
    if not messages:
        return
    await purge_messages(bus, messages)
    await registry.update(tenant, document_id, lambda current: without_messages(current, messages))
    log.info("document_content_purged", document_id=document_id, tenant=tenant, messages=len(messages))


@dataclass
class DeletionHandler:
    """A deletion: the document's deleted versions leave the bus, and stop counting as the original
    of later duplicates."""

    dedup: DedupIndex
    registry: DocumentRegistry
    bus: Bus

    async def __call__(self, event: DocumentDeletionRequested, ctx: MessageContext) -> None:
        # The gateway wrote the tombstone before sending the deletion; another system's deletion
        # (no version named, or one the registry has not seen) writes it here.
        record = await self.registry.get(event.tenant, event.document_id)
        if record is not None and (not event.up_to_version or record.deleted_up_to_version < event.up_to_version):
            watermark = await ingest_stream_watermark(self.bus)

            def mark_deleted(current: DocumentRecord | None) -> DocumentRecord | None:
                if current is None:
                    return None
                return with_tombstone(current, up_to_version=event.up_to_version or None, ingest_watermark=watermark)

            record = await self.registry.update(event.tenant, event.document_id, mark_deleted)
        if record is None or record.version <= record.deleted_up_to_version:
            # The version holding the de-duplication claim is a deleted one (a newer version, accepted
            # since, holds its own claim and keeps it).
            await self.dedup.forget(event.tenant, event.document_id)
        await purge_deleted_content(self.registry, self.bus, event.tenant, event.document_id)


async def ingest_stream_watermark(bus: Bus) -> int:
    """The ingest stream's last sequence now."""
    info = await bus.js.stream_info(bus.stream_name(INGEST_STREAM))
    return int(info.state.last_seq)
