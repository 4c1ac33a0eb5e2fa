"""Building the prompt: instructions, numbered sources fitted to a token budget, the conversation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gyre_contracts import ChatMessage, Citation, RetrievedChunk

PROMPT_VERSION = "rag-answer:1"

SYSTEM_WITH_SOURCES = (
    "You are a helpful assistant. Answer the user's question using the numbered sources below. "
    "Cite the sources you use like [1]. If the sources do not contain the answer, say that you do not know."
)
SYSTEM_WITHOUT_SOURCES = "You are a helpful assistant. Answer briefly and accurately."
EXCERPT_CHARS = 240


@dataclass(frozen=True)
class Prompt:
    messages: list[tuple[str, str]]
    sources: list[RetrievedChunk]


def last_user_message(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def build_prompt(
    messages: Sequence[ChatMessage],
    hits: Sequence[RetrievedChunk],
    count_tokens: Callable[[str], int],
    budget_tokens: int,
) -> Prompt:
    """Numbered sources, best first, as many as fit in ``budget_tokens`` with the conversation."""
    conversation = [(m.role, m.content) for m in messages if m.role != "system"]
    system_extra = "\n".join(m.content for m in messages if m.role == "system")
    used: list[RetrievedChunk] = []
    seen_texts: set[str] = set()
    remaining = budget_tokens - sum(count_tokens(c) for _, c in conversation) - count_tokens(SYSTEM_WITH_SOURCES)
    blocks: list[str] = []
    for hit in hits:
        if hit.text in seen_texts:
            continue
        block = f"[{len(used) + 1}] {hit.title + ': ' if hit.title else ''}{hit.text.strip()}"
        cost = count_tokens(block)
        if cost > remaining:
            break
        remaining -= cost
        seen_texts.add(hit.text)
        used.append(hit)
        blocks.append(block)
    if used:
        system = SYSTEM_WITH_SOURCES + "\n\nSources:\n" + "\n\n".join(blocks)
    else:
        system = SYSTEM_WITHOUT_SOURCES
    if system_extra:
        system = system_extra + "\n\n" + system
    return Prompt(messages=[("system", system), *conversation], sources=used)


def citations_for(sources: Sequence[RetrievedChunk]) -> tuple[Citation, ...]:
    return tuple(
        Citation(
            number=i, document_id=s.document_id, chunk_id=s.chunk_id, title=s.title, score=s.score,
            excerpt=s.text[:EXCERPT_CHARS],
        )
        for i, s in enumerate(sources, start=1)
    )
