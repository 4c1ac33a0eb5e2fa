"""Checking an answer against its sources without a model: sentences, citations, lexical support, loops.

A tiny model rambles, loops and invents. What is checked here is what can be checked cheaply and
deterministically: whether each answer sentence's content words (stemmed, stopwords out) are found in
one source sentence, or in two consecutive ones (optionally also their embedding cosine); whether the
sources a sentence cites are ones that support it; and whether the text has started repeating itself.

One module per check; generate and evaluate both use them, through the names below.
"""

from gyre_runtime.grounding.citations import citation_numbers, filter_citations, strip_citations
from gyre_runtime.grounding.lexical import (
    QUESTION_WORDS,
    content_tokens,
    lexical_support,
    question_coverage,
    stem,
)
from gyre_runtime.grounding.loops import loop_start, repetition_loop
from gyre_runtime.grounding.refusals import is_refusal
from gyre_runtime.grounding.sentences import sentence_spans, split_sentences
from gyre_runtime.grounding.support import Embed, SentenceSupport, sentence_support

__all__ = [
    "QUESTION_WORDS",
    "Embed",
    "SentenceSupport",
    "citation_numbers",
    "content_tokens",
    "filter_citations",
    "is_refusal",
    "lexical_support",
    "loop_start",
    "question_coverage",
    "repetition_loop",
    "sentence_spans",
    "sentence_support",
    "split_sentences",
    "stem",
    "strip_citations",
]
