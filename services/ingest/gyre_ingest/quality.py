"""Quality checks on cleaned text, with configurable thresholds; every failing check is a named Rejection."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gyre_contracts import Rejection

# The settings that hold each threshold, named in every rejection so an operator knows what to change.
MIN_CHARS_SETTING = "GYRE_QUALITY_MIN_CHARS"
MAX_CHARS_SETTING = "GYRE_MAX_DOCUMENT_CHARS"
MIN_ALPHA_RATIO_SETTING = "GYRE_QUALITY_MIN_ALPHA_RATIO"
MAX_REPEATED_LINE_RATIO_SETTING = "GYRE_QUALITY_MAX_REPEATED_LINE_RATIO"

# Short lines (list bullets, "Yes", table cells) repeat in good documents; only longer ones count.
MIN_REPEATED_LINE_CHARS = 10


@dataclass(frozen=True)
class QualityThresholds:
    """The limits a document's cleaned text must stay within."""

    min_chars: int = 20
    max_chars: int = 2_000_000
    min_alpha_ratio: float = 0.5  # letters / non-space characters
    max_repeated_line_ratio: float = 0.5  # repeated lines / lines of at least MIN_REPEATED_LINE_CHARS

    def __post_init__(self) -> None:
        if not 0 <= self.min_chars <= self.max_chars:
            raise ValueError(f"need 0 <= min_chars <= max_chars, got {self.min_chars} and {self.max_chars}")
        for name in ("min_alpha_ratio", "max_repeated_line_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class QualityMeasures:
    """What the checks measure, kept apart so it can also be logged or exported as metrics."""

    chars: int
    non_space_chars: int
    letters: int
    long_lines: int
    repeated_long_lines: int

    @property
    def alpha_ratio(self) -> float:
        return self.letters / self.non_space_chars if self.non_space_chars else 0.0

    @property
    def repeated_line_ratio(self) -> float:
        return self.repeated_long_lines / self.long_lines if self.long_lines else 0.0


def measure_quality(text: str) -> QualityMeasures:
    stripped = text.strip()
    non_space = [char for char in stripped if not char.isspace()]
    long_lines = [
        " ".join(line.split()).casefold()
        for line in stripped.split("\n")
        if len(line.strip()) >= MIN_REPEATED_LINE_CHARS
    ]
    # A repeat is every occurrence of a line after its first one.
    repeats = sum(count - 1 for count in Counter(long_lines).values())
    return QualityMeasures(
        chars=len(stripped),
        non_space_chars=len(non_space),
        letters=sum(1 for char in non_space if char.isalpha()),
        long_lines=len(long_lines),
        repeated_long_lines=repeats,
    )


def check_quality(text: str, t: QualityThresholds) -> list[Rejection]:
    """Every check the text fails, each with the measured value, the threshold and the setting to change.

    Empty text fails only ``empty``: the other measures mean nothing without text.
    """
    m = measure_quality(text)
    if m.non_space_chars == 0:
        return [Rejection(code="empty", message="the document has no text after extraction and cleaning")]
    # (failed, code, message): every message names the measured value, the threshold and its setting.
    checks = (
        (
            m.chars < t.min_chars,
            "too_short",
            f"the document has {m.chars} characters, fewer than the minimum of {t.min_chars} ({MIN_CHARS_SETTING})",
        ),
        (
            m.chars > t.max_chars,
            "too_long",
            f"the document has {m.chars} characters, more than the maximum of {t.max_chars} ({MAX_CHARS_SETTING})",
        ),
        (
            m.alpha_ratio < t.min_alpha_ratio,
            "too_little_text",
            f"letters are {m.alpha_ratio:.2f} of the non-space characters ({m.letters} of {m.non_space_chars}), "
            f"below the minimum of {t.min_alpha_ratio:.2f} ({MIN_ALPHA_RATIO_SETTING})",
        ),
        (
            m.repeated_line_ratio > t.max_repeated_line_ratio,
            "too_many_repeated_lines",
            f"{m.repeated_long_lines} of {m.long_lines} lines of {MIN_REPEATED_LINE_CHARS}+ characters repeat an "
            f"earlier line ({m.repeated_line_ratio:.2f}), more than the maximum of {t.max_repeated_line_ratio:.2f} "
            f"({MAX_REPEATED_LINE_RATIO_SETTING})",
        ),
    )
    return [Rejection(code=code, message=message) for failed, code, message in checks if failed]
