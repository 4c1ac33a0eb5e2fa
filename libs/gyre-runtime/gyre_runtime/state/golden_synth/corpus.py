"""The corpus as the question generator sees it: chunks, and word statistics over its documents."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gyre_runtime.state.golden_synth.text import CODE_TOKEN, STOP_WORDS, WORD


@dataclass(frozen=True)
class SourceChunk:
    """A piece of a document as the generator sees it: plain text under its heading path."""

    document_id: str
    chunk_id: str
    title: str
    heading_path: tuple[str, ...]
    text: str


# A subject word found in at most this share of the documents names something specific.
MAX_DISTINCTIVE_DF_SHARE = 0.05


def corpus_vocabulary(chunks: Iterable[SourceChunk]) -> dict[str, int]:
    """Each lower-cased word (letters and digits) of the chunks' text, with the number of documents holding it."""
    documents: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks:
        documents[chunk.document_id].update(WORD.findall(chunk.text.lower()))
    frequency: dict[str, int] = defaultdict(int)
    for words in documents.values():
        for word in words:
            frequency[word] += 1
    return dict(frequency)


@dataclass(frozen=True)
class CorpusStatistics:
    vocabulary: dict[str, int]  # word -> documents holding it
    frequencies: dict[str, Counter[str]]  # document id -> word -> occurrences
    unique_headings: set[str]

    @classmethod
    def of(cls, chunks: Sequence[SourceChunk]) -> CorpusStatistics:
        frequencies: dict[str, Counter[str]] = defaultdict(Counter)
        for chunk in chunks:
            frequencies[chunk.document_id].update(WORD.findall(chunk.text.lower()))
        return cls(corpus_vocabulary(chunks), dict(frequencies), headings_of_one_document(chunks))

    @property
    def documents(self) -> int:
        return len(self.frequencies)

    def is_distinctive(self, word: str) -> bool:
        """A code name, or a word found in few documents: a subject that names one thing."""
        if CODE_TOKEN.search(word):
            return True
        max_df = max(1, int(self.documents * MAX_DISTINCTIVE_DF_SHARE))
        tokens = [token for token in WORD.findall(word.lower()) if token not in STOP_WORDS]
        return any(len(token) >= 3 and self.vocabulary.get(token, 0) <= max_df for token in tokens)

    def weight(self, document_id: str, word: str) -> float:
        """tf-idf: high for what the document is about, low for words every page uses."""
        tf = self.frequencies.get(document_id, Counter()).get(word, 0)
        df = self.vocabulary.get(word, 0)
        if tf == 0 or df == 0:
            return 0.0
        return (1.0 + math.log(tf)) * math.log((1 + self.documents) / df)


def headings_of_one_document(chunks: Sequence[SourceChunk]) -> set[str]:
    """Lower-cased last headings that occur in exactly one document: "Examples" names a section of many."""
    documents: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks:
        if chunk.heading_path:
            documents[" ".join(chunk.heading_path[-1].split()).lower()].add(chunk.document_id)
    return {heading for heading, where in documents.items() if len(where) == 1}
