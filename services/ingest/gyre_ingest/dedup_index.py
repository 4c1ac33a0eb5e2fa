"""The per-tenant de-duplication index in the ``gyre_dedup`` KV bucket: exact hashes and near-duplicate bands.

Key layout (each part base64url-encoded with ``encode_key_part``):

    doc.<tenant>.<document id>   {"text_hash", "signature", "bands"}: what the document holds
    hash.<tenant>.<text hash>    JSON list of the document ids with that normalised content hash,
                                 the original first (more than one only under policy ``keep``)
    band.<tenant>.<band key>     JSON list of the document ids whose signature has that LSH band

Every key carries the tenant, so one tenant's documents are never another's duplicates.

Writes to the lists are compare-and-set (``gyre_runtime.state.kv_store.compare_and_set``), so
concurrent writers to one list never lose each other's ids.

Concurrency: of documents with the same content remembered at the same time, exactly one wins.
A document's own ``doc`` entry is written before it claims its hash, and the claim is the one
atomic step: the first ``create`` of the hash key wins; every other claimant re-reads the list,
sees a live holder (its ``doc`` entry names this hash) and gets that holder back as an exact
``Duplicate``, writing nothing. Near duplicates get no such guarantee: two near-identical (but
not identical) documents submitted at the same instant can both be accepted, since neither is
in the index when the other looks. That is accepted: it costs a duplicate, never a lost document.

The index heals itself after a crash between steps: a hash holder or band member whose ``doc``
entry is missing or names another hash is ignored (and pruned on the next claim of that hash),
and the redelivered ingestion rewrites the document's entries.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import msgspec
from nats.js.kv import KeyValue

from gyre_ingest.dedup import DEFAULT_BANDS, DEFAULT_ROWS, Duplicate, estimate_similarity, lsh_band_keys
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import encode_key_part
from gyre_runtime.state.kv_store import KvStore, compare_and_set, read

__all__ = ["DedupIndex", "Duplicate"]

# Past this many members a band keeps only the newest: one near-identical boilerplate page
# submitted thousands of times must not grow a value without bound.
MAX_BAND_MEMBERS = 1000
# Near-duplicate candidates compared per lookup, those sharing the most bands first.
MAX_CANDIDATES = 200


class _DocumentEntry(msgspec.Struct, frozen=True):
    text_hash: str
    signature: list[int]
    bands: list[str]


_entry_decoder = msgspec.json.Decoder(_DocumentEntry)
_ids_decoder = msgspec.json.Decoder(list[str])


def _encode_ids(ids: list[str]) -> bytes | None:
    """An id list as stored; an empty one deletes its key."""
    return msgspec.json.encode(ids) if ids else None


class DedupIndex(KvStore):
    """Exact and near-duplicate lookups within a tenant, over the ``gyre_dedup`` bucket."""

    bucket = buckets.DEDUP

    def __init__(self, kv: KeyValue, *, bands: int = DEFAULT_BANDS, rows: int = DEFAULT_ROWS) -> None:
        super().__init__(kv)
        self.bands = bands
        self.rows = rows

    # Keys -----------------------------------------------------------------------------------

    @staticmethod
    def _doc_key(tenant: str, document_id: str) -> str:
        return f"doc.{encode_key_part(tenant)}.{encode_key_part(document_id)}"

    @staticmethod
    def _hash_key(tenant: str, text_hash: str) -> str:
        return f"hash.{encode_key_part(tenant)}.{encode_key_part(text_hash)}"

    @staticmethod
    def _band_key(tenant: str, band: str) -> str:
        return f"band.{encode_key_part(tenant)}.{encode_key_part(band)}"

    # Lookups --------------------------------------------------------------------------------

    async def find_duplicate(
        self,
        tenant: str,
        document_id: str,
        text_hash: str,
        signature: Sequence[int],
        threshold: float,
    ) -> Duplicate | None:
        """Another document of ``tenant`` this one duplicates: exact first, else the most similar near one.

        ``threshold`` is the smallest estimated Jaccard similarity that counts as a near duplicate.
        The document's own id (a resubmission) never counts.
        """
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        holder = await self._live_holder(tenant, document_id, text_hash)
        if holder is not None:
            return Duplicate(kind="exact", document_id=holder, similarity=1.0)

        bands = lsh_band_keys(signature, self.bands, self.rows)
        members = await asyncio.gather(*(self._read_ids(self._band_key(tenant, band)) for band in bands))
        shared = Counter(member for ids in members for member in set(ids) if member != document_id)
        # Most shared bands first (they are the likeliest to be similar), ties by id for a stable answer.
        candidates = sorted(shared, key=lambda d: (-shared[d], d))[:MAX_CANDIDATES]
        entries = await asyncio.gather(*(self._read_entry(tenant, c) for c in candidates))
        best: Duplicate | None = None
        for candidate, entry in zip(candidates, entries, strict=True):
            if entry is None or len(entry.signature) != len(signature):
                continue
            similarity = estimate_similarity(signature, entry.signature)
            if similarity >= threshold and (best is None or similarity > best.similarity):
                best = Duplicate(kind="near", document_id=candidate, similarity=similarity)
        return best

    # Writes ---------------------------------------------------------------------------------

    async def remember(
        self,
        tenant: str,
        document_id: str,
        text_hash: str,
        signature: Sequence[int],
        *,
        allow_duplicate: bool = False,
    ) -> Duplicate | None:
        """Record the document's hash, signature and bands, replacing what it held before.

        The hash is claimed atomically. If another live document of the tenant already holds it,
        that document comes back as an exact ``Duplicate``: without ``allow_duplicate`` (policy
        ``reject``) nothing is recorded and the document's previous entries are kept; with it
        (policy ``keep``) the document is recorded beside the holder. ``None``: recorded, unique.
        A resubmission replaces the document's old entries itself; calling ``forget`` first is
        not needed (and harmless).
        """
        bands = lsh_band_keys(signature, self.bands, self.rows)
        holder = await self._live_holder(tenant, document_id, text_hash)
        if holder is not None and not allow_duplicate:
            return Duplicate(kind="exact", document_id=holder, similarity=1.0)

        doc_key = self._doc_key(tenant, document_id)
        previous = await self._read_entry(tenant, document_id)
        entry = _DocumentEntry(text_hash=text_hash, signature=[int(v) for v in signature], bands=bands)
        # The entry goes first: a claim is only honoured while the claimant's entry names the hash.
        await self.kv.put(doc_key, msgspec.json.encode(entry))
        holder = await self._claim_hash(tenant, document_id, text_hash, allow_duplicate=allow_duplicate)
        if holder is not None and not allow_duplicate:
            # Lost a race for this content: put back what the document held before.
            if previous is not None:
                await self.kv.put(doc_key, msgspec.json.encode(previous))
            else:
                await self.kv.delete(doc_key)
            return Duplicate(kind="exact", document_id=holder, similarity=1.0)

        # Now the claim holds: join the new bands, leave what the previous content held.
        changes = [self._add_id(self._band_key(tenant, band), document_id) for band in bands]
        if previous is not None:
            if previous.text_hash != text_hash:
                changes.append(self._remove_id(self._hash_key(tenant, previous.text_hash), document_id))
            left = set(previous.bands) - set(bands)
            changes += [self._remove_id(self._band_key(tenant, band), document_id) for band in left]
        await asyncio.gather(*changes)
        return None if holder is None else Duplicate(kind="exact", document_id=holder, similarity=1.0)

    async def forget(self, tenant: str, document_id: str) -> None:
        """Remove the document's hash, signature and band entries (document deleted or replaced)."""
        entry = await self._read_entry(tenant, document_id)
        if entry is None:
            return
        await asyncio.gather(
            self._remove_id(self._hash_key(tenant, entry.text_hash), document_id),
            *(self._remove_id(self._band_key(tenant, band), document_id) for band in entry.bands),
        )
        # Last, so that a crash part way leaves the entry that lets a retry finish the job.
        await self.kv.delete(self._doc_key(tenant, document_id))

    # Internals ------------------------------------------------------------------------------

    async def _read_entry(self, tenant: str, document_id: str) -> _DocumentEntry | None:
        return (await read(self.kv, self._doc_key(tenant, document_id), _entry_decoder.decode)).value

    async def _read_ids(self, key: str) -> list[str]:
        return (await read(self.kv, key, _ids_decoder.decode)).value or []

    async def _holds(self, tenant: str, document_id: str, text_hash: str) -> bool:
        entry = await self._read_entry(tenant, document_id)
        return entry is not None and entry.text_hash == text_hash

    async def _live_holders(self, tenant: str, holders: list[str], text_hash: str) -> list[str]:
        alive = await asyncio.gather(*(self._holds(tenant, h, text_hash) for h in holders))
        return [h for h, is_alive in zip(holders, alive, strict=True) if is_alive]

    async def _live_holder(self, tenant: str, document_id: str, text_hash: str) -> str | None:
        holders = [h for h in await self._read_ids(self._hash_key(tenant, text_hash)) if h != document_id]
        live = await self._live_holders(tenant, holders, text_hash)
        return live[0] if live else None

    async def _claim_hash(self, tenant: str, document_id: str, text_hash: str, *, allow_duplicate: bool) -> str | None:
        """Add the document to the hash's holders, atomically; returns the live holder before it, if any."""
        key = self._hash_key(tenant, text_hash)
        holder: str | None = None

        async def claim(current: list[str] | None) -> list[str] | None:
            nonlocal holder
            holders = current or []
            others = await self._live_holders(tenant, [h for h in holders if h != document_id], text_hash)
            holder = others[0] if others else None
            if holder is not None and not allow_duplicate:
                return None
            wanted = [*others, document_id]  # stale holders pruned, the original stays first
            return None if wanted == holders else wanted

        await compare_and_set(
            self.kv, key, claim, decode=_ids_decoder.decode, encode=_encode_ids, what=f"dedup key {key!r}"
        )
        return holder

    async def _change_ids(self, key: str, change: Callable[[list[str]], list[str]]) -> None:
        def changed(current: list[str] | None) -> list[str] | None:
            ids = current or []
            wanted = change(ids)
            return None if wanted == ids else wanted

        await compare_and_set(
            self.kv, key, changed, decode=_ids_decoder.decode, encode=_encode_ids, what=f"dedup key {key!r}"
        )

    async def _add_id(self, key: str, document_id: str) -> None:
        def add(ids: list[str]) -> list[str]:
            if document_id in ids:
                return ids
            return [*ids, document_id][-MAX_BAND_MEMBERS:]

        await self._change_ids(key, add)

    async def _remove_id(self, key: str, document_id: str) -> None:
        await self._change_ids(key, lambda ids: [i for i in ids if i != document_id])
