"""Collections and the models that fill them: a target's life cycle, the serving one's KV record, opening others."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from gyre_embed.batching import EmbeddingScheduler
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.state import buckets
from gyre_runtime.state.kv_store import KvStore, compare_and_set, read
from gyre_runtime.vectorstore import VectorStore, drop_vector_collection, open_vector_store

log = get_logger()

# Key of the record naming the collection that serves search (see ActiveIndex).
ACTIVE_KEY = "active_collection"


class Embedder(Protocol):
    @property
    def version(self) -> str: ...
    @property
    def dimension(self) -> int: ...


class TargetClosed(RuntimeError):
    """The collection was switched out and closed after this call picked it: the caller retries."""


@dataclass(eq=False)
class IndexTarget:
    """One collection and the embedding model whose vectors fill it (the model embeds its queries too).

    Calls that read or write the collection hold it with :meth:`use`, so that after a switch it is
    closed only once the calls still running on it are done.
    """

    collection: str
    model: str  # folder name in the model store
    embedder: Embedder
    scheduler: EmbeddingScheduler
    store: VectorStore
    _users: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def __post_init__(self) -> None:
        self._idle.set()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[IndexTarget]:
        """Hold the target for one call. Taken without awaiting, so a caller that just read
        ``ServingIndex.active`` never meets a target closed in between."""
        if self.closed:
            raise TargetClosed(f"collection {self.collection!r} was switched out")
        self._users += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no call holds the target; False when some still did after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def shares_model_with(self, other: IndexTarget) -> bool:
        return self.scheduler is other.scheduler

    async def close(self, *, keep_model: bool) -> None:
        """Let the collection go; stop the model too unless another target still uses it."""
        self.closed = True
        if not keep_model:
            await self.scheduler.stop()
        await self.store.close()

    async def drop(self, *, keep_model: bool) -> None:
        """Close the target and delete its collection with every point in it."""
        self.closed = True
        if not keep_model:
            await self.scheduler.stop()
        await self.store.drop()


class ActiveIndex(msgspec.Struct, kw_only=True):
    """What `gyre_index/active_collection` holds: the collection serving search and how it was made."""

    collection: str
    embedding_model: str
    previous_collection: str = ""
    request_id: str = ""  # the ReindexRequested that switched to it
    switched_at: dt.datetime | None = None


_decoder = msgspec.json.Decoder(ActiveIndex)


class ActiveIndexMoved(RuntimeError):
    """Another replica switched the active collection since this one read it: this switch is not recorded."""


class ActiveIndexRecord(KvStore):
    """Reads and writes the active collection's record; every embed replica reads it at start."""

    bucket = buckets.INDEX

    async def get(self) -> ActiveIndex | None:
        return (await read(self.kv, ACTIVE_KEY, _decoder.decode)).value

    async def put(self, active: ActiveIndex) -> None:
        """Record a switch to ``active``, by compare-and-set: only while the record still names the
        collection the switch is from (``previous_collection``), so no replica's switch overwrites another's."""

        def switch(current: ActiveIndex | None) -> ActiveIndex:
            if current is not None and current.collection != active.previous_collection:
                raise ActiveIndexMoved(
                    f"the active collection is {current.collection!r} now, not {active.previous_collection!r}: "
                    f"another replica switched; {active.collection!r} is not recorded"
                )
            return active

        await compare_and_set(self.kv, ACTIVE_KEY, switch, decode=_decoder.decode, what="the active collection record")


class TargetFactory(Protocol):
    """Opens collections and loads embedding models (the real one: :class:`LocalTargets`)."""

    def has_model(self, model: str) -> bool: ...

    async def open(self, collection: str, model: str, *, share_model_of: IndexTarget | None) -> IndexTarget:
        """Open (creating it when missing) ``collection``, filled by ``model``; reuse the model of
        ``share_model_of`` when it is the same model."""
        ...

    async def drop_leftover(self, collection: str) -> None:
        """Delete a collection no target has open (left by an interrupted rebuild)."""
        ...


class LocalTargets:
    """ONNX Runtime models from the model store, collections in the vector store the settings choose."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def has_model(self, model: str) -> bool:
        return (self.settings.model_path / model / "manifest.json").is_file()

    async def load_model(self, model: str) -> tuple[Any, EmbeddingScheduler]:
        from gyre_runtime.models.embedder import OnnxEmbedder

        settings = self.settings
        embedder = await asyncio.to_thread(
            OnnxEmbedder, settings.model_path / model, threads=settings.model_threads,
            batch_size=settings.embed_batch_size,
        )
        scheduler = EmbeddingScheduler(
            embedder.embed, max_batch=settings.embed_batch_size, max_wait_s=settings.embed_max_wait_ms / 1000,
            max_waiting_per_tenant=settings.embed_tenant_queue_inputs, embed_queries=embedder.embed_each,
        )
        return embedder, scheduler

    async def open(self, collection: str, model: str, *, share_model_of: IndexTarget | None) -> IndexTarget:
        if share_model_of is not None and share_model_of.model == model:
            embedder: Any = share_model_of.embedder
            scheduler = share_model_of.scheduler
        else:
            embedder, scheduler = await self.load_model(model)
        try:
            store = await open_vector_store(self.settings, collection, embedder.dimension)
        except BaseException:
            if share_model_of is None or scheduler is not share_model_of.scheduler:
                await scheduler.stop()
            raise
        return IndexTarget(collection=collection, model=model, embedder=embedder, scheduler=scheduler, store=store)

    async def drop_leftover(self, collection: str) -> None:
        await drop_vector_collection(self.settings, collection)
