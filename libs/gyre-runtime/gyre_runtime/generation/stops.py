"""Stop sequences for backends whose model knows none: generated text is released only once it cannot
become one, and ends where the first one starts."""

from __future__ import annotations

from collections.abc import Iterable


class StopSequences:
    """The text of one generation, fed as it comes; ``feed`` returns what may be released now.

    The tail that could still grow into a stop sequence (its longest length less one character) is
    held back. When a stop sequence appears the text is cut just before it and ``stopped`` is set;
    nothing more is released. Without stop sequences every delta is released at once.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._text = ""  # everything fed, cut at a stop
        self._released = 0  # how much of it has been released
        self.stopped = False

    def feed(self, delta: str) -> str:
        if self.stopped or not delta:
            return ""
        self._text += delta
        start = self._released
        # A stop cannot start before `start`: the held tail is longer than any stop's unfinished part.
        hits = [i for i in (self._text.find(s, start) for s in self._stops) if i >= 0]
        if hits:
            self._text = self._text[: min(hits)]
            self.stopped = True
            return self.rest()
        safe = len(self._text) - self._hold
        if safe <= start:
            return ""
        self._released = safe
        return self._text[start:safe]

    def rest(self) -> str:
        """What is still held, released now (the generation ended without a stop sequence)."""
        start, self._released = self._released, len(self._text)
        return self._text[start:]
