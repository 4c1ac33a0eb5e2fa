"""Guarding answers: personal data and blocked terms replaced, in a whole answer or while it streams.

Streaming: text already sent cannot be taken back, so the guard holds back the tail of the answer
that may still turn into something to replace, and sends only a stable prefix of the guarded text:

- the last word (an e-mail address, IP address or blocked term may still be growing);
- a trailing run of digits, capitals and the separators numbers are written with (a phone, card,
  IBAN or social security number may still be growing: "+44 20 7946" before " 0958");
- as many characters as the longest blocked term (a term of several words).

What is sent is the guard applied to everything before that tail, and only when it is also how the
guard reads the whole text so far (a value straddling the cut waits). No personal data value or
blocked term spans a line break, so each completed line is guarded once and never looked at again:
the work per token is that of the current line. The final answer is the guard applied to the whole
text; the streamed text is the same string, except in one corner: a value that later characters
turn into a non-finding ("020 7946 0958" followed by more digit groups is not a phone number) was
sent redacted but is final unredacted, an over-redaction, never a leak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gyre_runtime.guardrails.blocked_terms import BLOCKED_PLACEHOLDER, BlockedTerms
from gyre_runtime.guardrails.pii import PLACEHOLDERS, count_pii, find_pii

# Characters a phone, card, IBAN or SSN is written with: a trailing run of them may still grow into one.
_NUMBER_RUN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ +()./-")


@dataclass(frozen=True)
class GuardedText:
    text: str
    pii: dict[str, int] = field(default_factory=dict)  # findings by kind
    blocked: int = 0  # blocked-term occurrences replaced

    @property
    def acted(self) -> tuple[str, ...]:
        """Guardrail names for GenerationCompleted.guardrails."""
        return (("pii_redacted",) if self.pii else ()) + (("answer_blocked_term",) if self.blocked else ())


@dataclass(frozen=True)
class AnswerGuard:
    """Replaces personal data (typed placeholders, e.g. ``[EMAIL]``) and blocked terms (``[BLOCKED]``)."""

    redact_pii: bool = True
    blocked: BlockedTerms = field(default_factory=BlockedTerms)

    @property
    def active(self) -> bool:
        return self.redact_pii or bool(self.blocked)

    def apply(self, text: str) -> GuardedText:
        matches = find_pii(text) if self.redact_pii else []
        replacements = [(m.start, m.end, PLACEHOLDERS.get(m.kind, "[PII]")) for m in matches]
        blocked = 0
        for start, end in self.blocked.spans(text):
            # Personal data wins where both overlap: its placeholder already hides the term.
            if not any(s < end and start < e for s, e, _ in replacements):
                replacements.append((start, end, BLOCKED_PLACEHOLDER))
                blocked += 1
        if not replacements:
            return GuardedText(text)
        pieces: list[str] = []
        position = 0
        for start, end, placeholder in sorted(replacements):
            pieces += [text[position:start], placeholder]
            position = end
        pieces.append(text[position:])
        return GuardedText("".join(pieces), count_pii(matches), blocked)

    def streaming(self) -> StreamingGuard:
        return StreamingGuard(self)


def held_tail_start(text: str, min_hold: int = 0) -> int:
    """Where the part of ``text`` that may still change under the guard begins (see the module doc)."""
    end = len(text)
    word = end
    while word > 0 and not text[word - 1].isspace():
        word -= 1
    run = end
    while run > 0 and text[run - 1] in _NUMBER_RUN_CHARS:
        run -= 1
    if not any(ch.isdigit() for ch in text[run:]):
        run = end
    return max(0, min(word, run, end - min_hold))


class StreamingGuard:
    """Feed raw deltas, send what ``feed`` returns; at the end send ``finish()``; ``result`` is the final answer."""

    def __init__(self, guard: AnswerGuard) -> None:
        self.guard = guard
        self._raw: list[str] = []
        self._line = ""  # raw text since the last line break
        self._line_sent = ""  # guarded text of the current line already sent
        self._min_hold = guard.blocked.longest
        self.diverged = False  # sent text is not a prefix of the final answer (over-redaction, see above)
        self._result: GuardedText | None = None

    def feed(self, delta: str) -> str:
        self._raw.append(delta)
        if not self.guard.active:
            return delta
        self._line += delta
        out = ""
        newline = self._line.rfind("\n")
        if newline >= 0:
            done, self._line = self._line[: newline + 1], self._line[newline + 1 :]
            out += self._extend(self.guard.apply(done).text)
            self._line_sent = ""
        cut = held_tail_start(self._line, self._min_hold)
        if cut > 0:
            stable = self.guard.apply(self._line[:cut]).text
            if len(stable) > len(self._line_sent) and self.guard.apply(self._line).text.startswith(stable):
                out += self._extend(stable)
                self._line_sent = stable
        return out

    def _extend(self, guarded: str) -> str:
        """What to send so the current line's sent text becomes ``guarded``."""
        if guarded.startswith(self._line_sent):
            return guarded[len(self._line_sent) :]
        self.diverged = True
        return ""

    def finish(self) -> str:
        """The rest of the answer, once the model has finished."""
        raw = "".join(self._raw)
        self._result = self.guard.apply(raw) if self.guard.active else GuardedText(raw)
        if not self.guard.active:
            return ""
        rest = self._extend(self.guard.apply(self._line).text)
        self._line = self._line_sent = ""
        return rest

    @property
    def raw(self) -> str:
        return "".join(self._raw)

    @property
    def result(self) -> GuardedText:
        """The guarded answer (call ``finish`` first; before that, the guard applied to the text so far)."""
        if self._result is not None:
            return self._result
        return self.guard.apply(self.raw) if self.guard.active else GuardedText(self.raw)
