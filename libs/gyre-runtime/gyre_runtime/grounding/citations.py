"""Citation markers in answers: which sources "[1]", "[2, 3]", "[1][3]" or "[1-2]" cite, and removing them."""

from __future__ import annotations

import re
from collections.abc import Collection

_CITED_NUMBER = r"(?:(?:source|src|doc(?:ument)?|ref)\s*#?\s*)?\d{1,4}"
CITATION_GROUP = rf"\[\s*{_CITED_NUMBER}(?:\s*(?:[,;]|-|–|\band\b)\s*{_CITED_NUMBER})*\s*\]"
# A run of adjacent groups ("[1][3]"); one right after a word or a call is code ("argv[1]", "f()[0]").
CITATION_RUN = re.compile(rf"(?<![\w)\]])(?:{CITATION_GROUP})+", re.IGNORECASE)
_GROUP = re.compile(CITATION_GROUP, re.IGNORECASE)
_GROUP_ITEM_SEPARATOR = re.compile(r"\s*(?:[,;]|\band\b)\s*", re.IGNORECASE)
_RANGE = re.compile(r"\D*(\d+)\s*[-–]\s*\D*(\d+)")
# "[1-3]" means 1, 2, 3; a wider range is more likely a typo than a citation of twenty sources.
_MAX_RANGE = 20


def _group_numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for item in _GROUP_ITEM_SEPARATOR.split(group.strip()[1:-1].strip()):
        ranged = _RANGE.fullmatch(item)
        if ranged:
            low, high = int(ranged.group(1)), int(ranged.group(2))
            numbers.extend(range(low, high + 1) if 0 <= high - low <= _MAX_RANGE else (low, high))
        else:
            digits = re.search(r"\d+", item)
            if digits:
                numbers.append(int(digits.group()))
    return numbers


def _run_numbers(run: str) -> list[int]:
    return [number for group in _GROUP.finditer(run) for number in _group_numbers(group.group())]


def citation_numbers(text: str) -> tuple[int, ...]:
    """The source numbers ``text`` cites ("[1]", "[2, 3]", "[1][3]", "[1-2]"), unique, in order of first citation."""
    seen: dict[int, None] = {}
    for run in CITATION_RUN.finditer(text):
        for number in _run_numbers(run.group()):
            seen.setdefault(number, None)
    return tuple(seen)


def _tidy(text: str) -> str:
    """Spaces left behind by removed citations: none doubled, none before closing punctuation."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r"[ \t]+([.,;:!?)])", r"\1", text).strip()


def strip_citations(text: str) -> str:
    """``text`` without its citation markers: "in Qdrant [1]." -> "in Qdrant."."""
    return _tidy(re.sub(rf"[ \t]*{CITATION_RUN.pattern}", "", text, flags=re.IGNORECASE))


def filter_citations(text: str, valid: Collection[int]) -> str:
    """``text`` citing only the numbers in ``valid``: other numbers go, and a citation left empty goes."""

    def keep(match: re.Match[str]) -> str:
        numbers = _run_numbers(match.group())
        if all(number in valid for number in numbers):
            return match.group()
        kept = list(dict.fromkeys(number for number in numbers if number in valid))
        return " [" + ", ".join(map(str, kept)) + "]" if kept else ""

    return _tidy(re.sub(rf"[ \t]*{CITATION_RUN.pattern}", keep, text, flags=re.IGNORECASE))
