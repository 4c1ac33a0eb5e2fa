"""Sentences of the sources for the prompt and for the extractive answer, chosen by overlap with the question.

A tiny model answers better from a few sentences that bear on the question than from whole chunks,
and when its answer cannot be trusted, the source sentences that best match the question, quoted and
cited, are the answer. Relevance is lexical overlap with the question's content words (stemmed,
stopwords out: ``gyre_runtime.grounding``), optionally plus a score per sentence from the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gyre_runtime.grounding import citation_numbers, content_tokens, split_sentences, strip_citations

# A neighbour of a relevant sentence is worth a little: "It raises ..." often explains the sentence before.
NEIGHBOUR_WEIGHT = 0.25
# A further quoted sentence must match the question at least this share as well as the best one does:
# the fallback answer is better short than padded.
SECOND_SENTENCE_SHARE = 0.75
_LABEL_MAX_WORDS = 8


def _is_label(sentence: str) -> bool:
    """A heading or signature line ("os.getcwd()", "Installation"): short and without a full stop.

    It names what the next sentence describes, so it goes with that sentence."""
    return len(sentence.split()) <= _LABEL_MAX_WORDS and not re.search(r"[.!?…]['\"”’)]*$", sentence)


def _question_overlap(question_tokens: frozenset[str], sentence: str) -> float:
    """The share of the question's content tokens the sentence has."""
    if not question_tokens:
        return 0.0
    return len(question_tokens & set(content_tokens(sentence))) / len(question_tokens)


def select_passage(
    question: str, text: str, *, max_sentences: int = 4, embed_scores: Sequence[float] | None = None
) -> str:
    """The ``max_sentences`` sentences of ``text`` most relevant to ``question``, in their order, joined by spaces.

    A sentence's score is its share of the question's content tokens, plus ``embed_scores[i]`` when
    given (one score per sentence of ``split_sentences(text)``), plus a quarter of its best
    neighbour's, so context next to a match wins over unrelated text; ties go to the earlier sentence.
    A label line (signature, heading) is taken along with the sentence after it while room remains.
    Text with no more than ``max_sentences`` sentences comes back whole, whitespace-normalised.
    """
    sentences = split_sentences(text)
    if embed_scores is not None and len(embed_scores) != len(sentences):
        raise ValueError(f"embed_scores has {len(embed_scores)} scores for {len(sentences)} sentences")
    if len(sentences) <= max_sentences:
        return " ".join(text.split())
    question_tokens = frozenset(content_tokens(question))
    own = [_question_overlap(question_tokens, sentence) for sentence in sentences]
    if embed_scores is not None:
        own = [score + float(extra) for score, extra in zip(own, embed_scores, strict=True)]
    scores = [
        score + NEIGHBOUR_WEIGHT * max(own[i - 1] if i > 0 else 0.0, own[i + 1] if i + 1 < len(own) else 0.0)
        for i, score in enumerate(own)
    ]
    chosen: set[int] = set()
    for i in sorted(range(len(sentences)), key=lambda i: (-scores[i], i)):
        if len(chosen) >= max_sentences:
            break
        chosen.add(i)
        # A label and the sentence it labels go together: either alone says half of it.
        partner = i + 1 if _is_label(sentences[i]) else i - 1
        if 0 <= partner < len(sentences) and len(chosen) < max_sentences:
            if partner == i + 1 or _is_label(sentences[partner]):
                chosen.add(partner)
    return " ".join(sentences[i] for i in sorted(chosen))


def _label_before(sentences: Sequence[str], index: int) -> str:
    return sentences[index - 1] if index > 0 and _is_label(sentences[index - 1]) else ""


def _quoted(label: str, sentences: Sequence[str]) -> str:
    body = " ".join(sentences)
    if label:
        body = f"{label} {body}" if label.endswith(":") else f"{label}: {body}"
    return f'"{body}"'


def short_title(title: str) -> str:
    """A document title's name part: "shutil — High-level file operations — Python 3.11 documentation" -> "shutil"."""
    name = re.split(r"\s[—–-]\s", title.strip(), maxsplit=1)[0].strip()
    return name if len(name) <= 60 else ""


def extractive_answer(
    question: str, sources: Sequence[str], *, max_sentences: int = 2, titles: Sequence[str] = ()
) -> tuple[str, tuple[int, ...]]:
    """The source sentences that match ``question`` best, quoted and cited, and the sources cited.

    ``From [1]: "Gyre stores documents in Qdrant and answers with citations."``, or with the source's
    ``titles`` ``From [1] (gyre-intro): "..."`` (the page a passage comes from often names what the
    question asks for, as a manual page's name does, and its words count in the match): one line per source,
    the best-matching source first, its sentences in their order (adjacent ones in one quote), a label
    line before a sentence (a signature such as "os.getcwd()") quoted with it and counted in its match.
    Ties go to the earlier source and sentence; a further sentence is quoted only when it matches at
    least ``SECOND_SENTENCE_SHARE`` as well as the best one. ``("", ())`` when no sentence shares a
    content word with the question.
    """
    question_tokens = frozenset(content_tokens(question))
    candidates: list[tuple[float, int, int]] = []  # (overlap, source number, sentence index)
    per_source: dict[int, list[str]] = {}
    names = [short_title(title) for title in titles]
    for number, source in enumerate(sources, start=1):
        sentences = [strip_citations(sentence) for sentence in split_sentences(source)]
        per_source[number] = sentences
        name = names[number - 1] if number <= len(names) else ""
        for index, sentence in enumerate(sentences):
            if _is_label(sentence):
                continue  # quoted with the sentence it labels, never alone
            label = _label_before(sentences, index)
            overlap = _question_overlap(question_tokens, f"{name} {label} {sentence}")
            if overlap > 0:
                candidates.append((overlap, number, index))
    if not candidates:
        return "", ()
    candidates.sort(key=lambda candidate: (-candidate[0], candidate[1], candidate[2]))
    best = candidates[0][0]
    picked: list[tuple[int, int]] = []
    seen: set[frozenset[str]] = set()
    for overlap, number, index in candidates:
        if len(picked) >= max_sentences or overlap < SECOND_SENTENCE_SHARE * best:
            break
        key = frozenset(content_tokens(per_source[number][index]))
        if key in seen:  # the same sentence in two sources says nothing new
            continue
        seen.add(key)
        picked.append((number, index))
    order = tuple(dict.fromkeys(number for number, _ in picked))
    lines: list[str] = []
    for number in order:
        indices = sorted(index for source, index in picked if source == number)
        sentences = per_source[number]
        runs: list[list[int]] = []  # adjacent sentences quote as one passage
        for index in indices:
            if runs and index == runs[-1][-1] + 1:
                runs[-1].append(index)
            else:
                runs.append([index])
        quotes = (_quoted(_label_before(sentences, run[0]), [sentences[i] for i in run]) for run in runs)
        name = names[number - 1] if number <= len(names) else ""
        lines.append(f"From [{number}]{f' ({name})' if name else ''}: {' '.join(quotes)}")
    return "\n".join(lines), order


def cited_sources(answer: str, count: int) -> tuple[int, ...]:
    """The source numbers ``answer`` cites that exist (1..``count``), in order of first citation."""
    return tuple(number for number in citation_numbers(answer) if 1 <= number <= count)
