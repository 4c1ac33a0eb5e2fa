"""The prompt registry: versioned prompt templates and their labels, in the KV bucket ``gyre_prompts``.

Keys: ``template.<name>.<version>`` holds one PromptTemplate (never changed once written: a change
is a new version); ``labels.<name>`` holds ``{label: version}`` for that name (``production``,
``candidate``, any other). Writers use compare-and-set (KV create/update with the last revision), so
two operators putting a template at once get versions n+1 and n+2, never one overwriting the other.

Readers resolve ``(name, label)`` with one KV read of the labels key per call (the template itself is
immutable, so it is cached): a ``gyre prompts label`` is seen by the very next request of every
replica, with no restart and no cache to wait for.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import msgspec
from nats.js.kv import KeyValue

from gyre_runtime.state import buckets
from gyre_runtime.state.kv_listing import current_values
from gyre_runtime.state.kv_store import (
    KvStore,
    WriteConflict,
    compare_and_set,
    create,
    read,
    retry_on_conflict,
    write,
)

DEFAULT_PROMPT_NAME = "rag-answer"
DEFAULT_LABELS = ("production", "candidate")
SOURCES_PLACEHOLDER = "{sources}"
QUESTION_PLACEHOLDER = "{question}"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CAS_ATTEMPTS = 20


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PromptTemplate(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a prompt.

    ``system_with_sources`` is the system message when sources were retrieved: ``{sources}`` marks
    where the numbered sources go (appended at the end when it is absent). ``system_without_sources``
    is used when retrieval is off. ``no_answer_text`` is the whole answer, sent without calling the
    model, when retrieval found nothing relevant.

    The other fields choose the answer path, so that it is versioned, evaluated and promoted like the
    text (their defaults are the behaviour of templates written before they existed):

    - ``user_with_sources``: when set, the sources go into the last user turn instead of the system
      message: this text with ``{sources}`` and ``{question}`` replaced;
    - ``source_text``: ``chunk`` (whole retrieved chunks) or ``sentences`` (only the sentences of each
      chunk closest to the question, at most ``max_source_sentences``);
    - ``max_sources``: at most this many sources (0: as many as fit the token budget);
    - ``best_source_last``: list the best source last, closest to the question (numbers stay by rank);
    - ``grounding``: ``check`` drops answer sentences the sources do not support, falls back to quoting
      the best source sentences when too little is supported, and cites only what the answer uses;
    - ``stop_on_loop``: stop the model as soon as it starts repeating itself;
    - ``min_relevance``: the "don't know" gate: below this cosine similarity of the best dense hit
      nothing retrieved is relevant and the answer is ``no_answer_text`` (None: GYRE_RETRIEVAL_MIN_SCORE);
    - ``min_question_coverage``: the other half of that gate: below this share of what the question
      names (its content words) mentioned by the retrieved passages (text, title, headings), the answer
      is ``no_answer_text`` too (0: off).
    """

    name: str
    version: int
    system_with_sources: str
    system_without_sources: str
    no_answer_text: str
    created_at: dt.datetime = msgspec.field(default_factory=_now)
    description: str = ""
    user_with_sources: str = ""
    source_text: Literal["chunk", "sentences"] = "chunk"
    max_source_sentences: Annotated[int, msgspec.Meta(ge=1, le=50)] = 4
    max_sources: Annotated[int, msgspec.Meta(ge=0, le=50)] = 0
    best_source_last: bool = False
    grounding: Literal["off", "check"] = "off"
    stop_on_loop: bool = False
    min_relevance: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    min_question_coverage: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0

    @property
    def ref(self) -> str:
        """``name:version``, what GenerationCompleted.prompt_version records."""
        return f"{self.name}:{self.version}"


# The first default (Gyre 0.1): a long system prompt with every chunk, the model's answer as it comes.
# Kept to compare against (the answer-quality benchmark runs it as the "before").
LEGACY_TEMPLATE = PromptTemplate(
    name=DEFAULT_PROMPT_NAME,
    version=1,
    system_with_sources=(
        "You are a helpful assistant. Answer the user's question using only the numbered sources below, "
        "and cite the sources you use like [1]. If the sources do not contain the answer, say that you do not "
        "know.\n\n{sources}"
    ),
    system_without_sources="You are a helpful assistant. Answer briefly and accurately.",
    no_answer_text="I don't know: none of the indexed documents answers that.",
    description="the first default template (whole chunks in the system message, no grounding check)",
    min_relevance=0.2,  # GYRE_RETRIEVAL_MIN_SCORE's default then
)

# The default, chosen by measurement (docs/benchmarks.md, "Answer quality"): a tiny model answers
# best from a short instruction, few sources cut to their sentences closest to the question, the best
# one next to the question, and a request for a short answer; every answer is checked against them.
DEFAULT_TEMPLATE = PromptTemplate(
    name=DEFAULT_PROMPT_NAME,
    version=1,
    system_with_sources="Answer the question using the numbered sources. Cite a source like [1].",
    user_with_sources="{sources}\n\nQuestion: {question}\nAnswer in one short sentence.",
    system_without_sources="You are a helpful assistant. Answer briefly and accurately.",
    no_answer_text="I don't know: none of the indexed documents answers that.",
    source_text="sentences",
    max_source_sentences=3,
    max_sources=3,
    best_source_last=True,
    grounding="check",
    stop_on_loop=True,
    # Calibrated on the unanswerable items of the Python documentation set (docs/benchmarks.md).
    min_relevance=0.3,
    min_question_coverage=0.67,
    description="the default template, seeded at first start",
)

# The fields a template file may set (``gyre prompts put``).
TEMPLATE_FIELDS = (
    "system_with_sources", "system_without_sources", "no_answer_text", "description", "user_with_sources",
    "source_text", "max_source_sentences", "max_sources", "best_source_last", "grounding", "stop_on_loop",
    "min_relevance", "min_question_coverage",
)
# Fields a new prompt must set (the others have defaults).
REQUIRED_TEMPLATE_FIELDS = ("system_with_sources", "system_without_sources", "no_answer_text")


class PromptError(LookupError):
    """An unknown prompt name, version or label, or an invalid one; the message says which and what exists."""


_template_decoder = msgspec.json.Decoder(PromptTemplate)
_labels_decoder = msgspec.json.Decoder(dict[str, int])


def check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise PromptError(f"invalid {kind} {value!r}: use 1-64 letters, digits, '-' or '_'")
    return value


def template_key(name: str, version: int) -> str:
    return f"template.{name}.{version}"


def labels_key(name: str) -> str:
    return f"labels.{name}"


class PromptRegistry(KvStore):
    bucket = buckets.PROMPTS

    def __init__(self, kv: KeyValue) -> None:
        super().__init__(kv)
        self._templates: dict[tuple[str, int], PromptTemplate] = {}

    # -- reading -------------------------------------------------------------------------------

    async def _keys(self, pattern: str) -> list[str]:
        """Keys matching a subject ``pattern`` (filtered by the server), deleted ones left out."""
        return [entry.key for entry in await current_values(self.kv, pattern, meta_only=True)]

    async def names(self) -> list[str]:
        return sorted({key.split(".")[1] for key in await self._keys("template.*.*")})

    async def versions(self, name: str) -> list[int]:
        suffixes = (key.rpartition(".")[2] for key in await self._keys(f"template.{name}.*"))
        return sorted(int(s) for s in suffixes if s.isdigit())

    async def get(self, name: str, version: int) -> PromptTemplate | None:
        cached = self._templates.get((name, version))
        if cached is not None:
            return cached
        template = (await read(self.kv, template_key(name, version), _template_decoder.decode)).value
        if template is not None:
            self._templates[(name, version)] = template
        return template

    async def labels(self, name: str) -> dict[str, int]:
        return (await read(self.kv, labels_key(name), _labels_decoder.decode)).value or {}

    async def resolve(self, name: str, *, label: str | None = None, version: int | None = None) -> PromptTemplate:
        """The template a label (or an explicit version) points at; PromptError says what is known instead."""
        if version is None:
            label = label or "production"
            labels = await self.labels(name)
            if label not in labels:
                if not labels and not await self.versions(name):
                    raise PromptError(f"unknown prompt {name!r} (create it with `gyre prompts put {name} --file F`)")
                known = ", ".join(sorted(labels)) or "none"
                raise PromptError(
                    f"unknown prompt label {label!r} for prompt {name!r} (labels: {known}); "
                    f"set one with `gyre prompts label {name} VERSION {label}`"
                )
            version = labels[label]
        template = await self.get(name, version)
        if template is None:
            known = ", ".join(str(v) for v in await self.versions(name)) or "none"
            raise PromptError(f"prompt {name!r} has no version {version} (versions: {known})")
        return template

    # -- writing -------------------------------------------------------------------------------

    async def put(self, name: str, fields: dict[str, Any]) -> PromptTemplate:
        """Store ``fields`` as the next version of ``name``; fields left out are the latest version's.

        A new name needs ``system_with_sources``, ``system_without_sources`` and ``no_answer_text``.
        """
        check_name("prompt name", name)
        unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
        if unknown:
            raise PromptError(f"unknown template field(s) {', '.join(unknown)}: expected {', '.join(TEMPLATE_FIELDS)}")

        async def put_next_version() -> PromptTemplate:
            versions = await self.versions(name)
            latest = await self.get(name, versions[-1]) if versions else None
            values: dict[str, Any] = {f: getattr(latest, f) for f in TEMPLATE_FIELDS} if latest else {}
            values.update(fields)
            missing = [f for f in REQUIRED_TEMPLATE_FIELDS if not str(values.get(f) or "").strip()]
            if missing:
                raise PromptError(f"prompt {name!r}: {', '.join(missing)} missing or empty")
            try:
                template = msgspec.convert(
                    {**values, "name": name, "version": (versions[-1] if versions else 0) + 1}, PromptTemplate
                )
            except msgspec.ValidationError as exc:
                raise PromptError(f"prompt {name!r}: {exc}") from exc
            # Conflict when another writer took this version number: the retry takes the next one.
            await write(self.kv, template_key(name, template.version), msgspec.json.encode(template), 0)
            self._templates[(name, template.version)] = template
            return template

        try:
            return await retry_on_conflict(put_next_version, what=f"prompt {name!r}", attempts=_CAS_ATTEMPTS)
        except WriteConflict as exc:
            raise PromptError(f"prompt {name!r}: too many concurrent writers, try again") from exc

    async def set_label(self, name: str, label: str, version: int) -> dict[str, int]:
        """Point ``label`` of ``name`` at ``version`` (which must exist); returns all labels of ``name``."""
        check_name("label", label)
        if await self.get(name, version) is None:
            known = ", ".join(str(v) for v in await self.versions(name)) or "none"
            raise PromptError(f"prompt {name!r} has no version {version} (versions: {known})")
        try:
            labels = await compare_and_set(
                self.kv, labels_key(name), lambda current: {**(current or {}), label: version},
                decode=_labels_decoder.decode, what=f"labels of prompt {name!r}", attempts=_CAS_ATTEMPTS,
            )
        except WriteConflict as exc:
            raise PromptError(f"prompt {name!r}: too many concurrent label changes, try again") from exc
        return labels or {}

    async def seed(self, template: PromptTemplate = DEFAULT_TEMPLATE, labels: tuple[str, ...] = DEFAULT_LABELS) -> bool:
        """On a registry with no templates at all, store ``template`` as version 1 with ``labels``.

        Safe when several replicas start at once: one creates it, the others find it there. Returns
        whether this call seeded the registry.
        """
        if await self.names():
            return False
        first = msgspec.structs.replace(template, version=1, created_at=_now())
        if not await create(self.kv, template_key(first.name, 1), msgspec.json.encode(first)):
            return False
        for label in labels:
            await self.set_label(first.name, label, 1)
        return True
