"""docs/benchmarks.md is shared by every benchmark: each replaces only its own section."""

from __future__ import annotations

import datetime as dt
from pathlib import Path


def heading(marker: str) -> str:
    """A section's heading line: its marker and when the benchmark ran (UTC, to the minute)."""
    return f"{marker} ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC})"


def replace_section(document: str, section: str, marker: str) -> str:
    """``document`` with the section starting at ``marker`` replaced by ``section`` (appended if absent)."""
    if marker not in document:
        return document.rstrip() + "\n\n" + section.rstrip() + "\n"
    head, _, tail = document.partition(marker)
    rest = tail.split("\n## ", 1)
    after = ("\n## " + rest[1]) if len(rest) > 1 else ""
    return head + section.rstrip() + "\n" + after


def write_section(path: Path, section: str, marker: str) -> None:
    """Replace (or append) the section starting at ``marker`` in the file at ``path`` (created if missing)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(existing, section, marker), encoding="utf-8")
