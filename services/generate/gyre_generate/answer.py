"""One request's answer: what it produced (text, end, usage, citations, guardrails), its clock, and its words."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gyre_contracts import Citation, Grounding, RetrievedChunk, Timings
from gyre_generate.selection import cited_sources

_WORDS = re.compile(r"\s*\S+")


@dataclass
class Clock:
    """When the request started, when its first token went out, how long retrieval took: its Timings."""

    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    first_token_at: float | None = None
    retrieval_ms: float = 0.0

    def token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def timings(self) -> Timings:
        done = time.perf_counter()
        return Timings(
            retrieval_ms=self.retrieval_ms,
            time_to_first_token_ms=((self.first_token_at or done) - self.started) * 1000,
            total_ms=(done - self.started) * 1000,
            cpu_ms=(time.process_time() - self.cpu_started) * 1000,
        )


@dataclass
class Answer:
    """What one request produced, to publish as GenerationCompleted."""

    text: str
    finish_reason: str
    prompt_version: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    citations: tuple[Citation, ...] = ()
    guardrails: tuple[str, ...] = ()
    sources: tuple[Citation, ...] = ()
    grounding: Grounding | None = None
    model_version: str = ""  # the model that wrote it (empty: no model ran; the one served now is recorded)


def passages_of(hits: Sequence[RetrievedChunk]) -> list[str]:
    """What the retrieved chunks say, with the titles and headings they sit under."""
    return [" ".join((hit.title, *hit.heading_path, hit.text)) for hit in hits]


def citation_numbers_in(text: str, count: int) -> tuple[int, ...]:
    """The source numbers an answer cites that exist; every source when it cites none (it answered from all)."""
    cited = cited_sources(text, count)
    return cited or tuple(range(1, count + 1))


def words_of(text: str) -> list[str]:
    """A fixed answer streamed word by word, as a model's would be (spaces kept with the following word)."""
    pieces = _WORDS.findall(text)
    tail = text[len("".join(pieces)) :]
    return [*pieces[:-1], pieces[-1] + tail] if pieces else ([text] if text else [])
