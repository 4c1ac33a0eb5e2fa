"""Synthetic golden items from a corpus's own sentences and headings, with no LLM: seeded and reproducible.

Four kinds, each item tagged with its kind:

- "definition": a definitional sentence ("X is a ...", "X returns ...", "X provides ...") becomes
  "What is X?" / "What does X return?"; a term line and the paragraph after it, an API signature
  followed by "Return ..." or a command-line option followed by its description, becomes "What does
  f() return?" / "What does the --opt option do?". The sentence is the reference. A subject that
  could be many things is led by the page's short title ("In configparser, what does options() return?").
- "summary": a manual page's NAME line ("git-stash - Stash the changes ...") becomes "What is
  git-stash used for?".
- "heading": a heading that names one section of one document, and the first sentence of that
  section, become "What does the documentation say about <heading>?" (a heading that is itself a
  question, as on FAQ pages, is asked as it is).
- "unanswerable": fixed question templates about off-domain topics none of whose words occur
  anywhere in the corpus.

must_include of the answerable kinds holds 1-2 words of the reference that are not in the question
(nor share a stem with it) and that tell most about the document (tf-idf), so an answer that only
repeats the question cannot pass. A question or reference found in two documents is left out: it
would have no single relevant document.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gyre_runtime.state.golden_sets import GoldenItem
from gyre_runtime.state.golden_synth.candidates import answerable_candidates
from gyre_runtime.state.golden_synth.corpus import CorpusStatistics, SourceChunk, corpus_vocabulary
from gyre_runtime.state.golden_synth.selection import (
    UNANSWERABLE_TEMPLATES,
    UNANSWERABLE_TOPICS,
    pick_spread,
    unanswerable_items,
)

__all__ = ["UNANSWERABLE_TEMPLATES", "UNANSWERABLE_TOPICS", "SourceChunk", "corpus_vocabulary", "synthesize"]


def synthesize(
    chunks: Sequence[SourceChunk], n: int, *, seed: int = 0, unanswerable_share: float = 0.2
) -> list[GoldenItem]:
    """Up to ``n`` items, about ``unanswerable_share`` of them unanswerable; the same inputs give the same items.

    Fewer come back when the corpus offers fewer candidates (the shortfall is not made up with
    unanswerable items, which would skew the share). Answerable items are spread over the
    documents (one per document before a second from any) and mix the kinds.
    """
    if n < 0 or not 0.0 <= unanswerable_share <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= unanswerable_share <= 1, got n={n}, share={unanswerable_share}")
    rng = random.Random(seed)
    statistics = CorpusStatistics.of(chunks)
    unanswerable_wanted = round(n * unanswerable_share)
    answerable = pick_spread(answerable_candidates(chunks, statistics), n - unanswerable_wanted, rng)
    unanswerable = unanswerable_items(statistics.vocabulary, unanswerable_wanted, rng)
    questions = {item.question for item in answerable}
    return answerable + [item for item in unanswerable if item.question not in questions]
