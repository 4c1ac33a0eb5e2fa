"""Blocked terms (``GYRE_BLOCKED_TERMS``): case-insensitive whole-word matching of an operator's list."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BLOCKED_PLACEHOLDER = "[BLOCKED]"


def parse_blocked_terms(setting: str) -> tuple[str, ...]:
    """``"foo, Bar baz,,foo"`` -> ``("foo", "Bar baz")``: trimmed, empty ones dropped, first spelling kept."""
    terms: dict[str, str] = {}
    for raw in setting.split(","):
        term = " ".join(raw.split())
        if term:
            terms.setdefault(term.casefold(), term)
    return tuple(terms.values())


def _term_pattern(term: str) -> str:
    # Words of a term may be separated by any run of spaces or tabs (not newlines: a term never
    # spans lines, so streamed answers can be guarded line by line).
    return r"[ \t]+".join(re.escape(word) for word in term.split())


@dataclass(frozen=True)
class BlockedTerms:
    """A compiled list; empty matches nothing. A term matches only as whole words: "ass" is not in "class"."""

    terms: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.terms:
            alternatives = "|".join(_term_pattern(t) for t in sorted(self.terms, key=len, reverse=True))
            pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)

    @classmethod
    def from_setting(cls, setting: str) -> BlockedTerms:
        return cls(parse_blocked_terms(setting))

    def __bool__(self) -> bool:
        return bool(self.terms)

    @property
    def longest(self) -> int:
        """Characters of the longest term: how much of a streamed answer may still turn into one."""
        return max((len(t) for t in self.terms), default=0)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where blocked terms occur in ``text``: non-overlapping ``(start, end)`` pairs, in order."""
        if self._pattern is None:
            return []
        return [m.span() for m in self._pattern.finditer(text)]

    def found(self, text: str) -> list[str]:
        """The configured terms that occur in ``text`` (each once, as configured)."""
        if self._pattern is None:
            return []
        configured = {t.casefold(): t for t in self.terms}
        found = dict.fromkeys(" ".join(m.group().split()).casefold() for m in self._pattern.finditer(text))
        return [configured.get(key, key) for key in found]
