"""What became of each input of a `gyre ingest` run, and the summary printed at its end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

DUPLICATE_CODES = frozenset({"duplicate", "near_duplicate"})
MAX_PROBLEM_LINES = 50

OutcomeKind = Literal["indexed", "rejected", "deleted", "pending", "unchanged", "fetch_failed", "submit_failed"]


@dataclass(frozen=True)
class Outcome:
    document_id: str
    kind: OutcomeKind
    reasons: tuple[str, ...] = ()  # rejection codes, or the one failure code
    message: str = ""


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    unchanged: int = 0
    deleted: int = 0
    pending: int = 0
    fetch_failed: Counter[str] = field(default_factory=Counter)
    submit_failed: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.fetch_failed.values()) + sum(self.submit_failed.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def is_duplicate(reasons: Iterable[str]) -> bool:
    return any(code in DUPLICATE_CODES for code in reasons)


def summarise(outcomes: Iterable[Outcome]) -> Summary:
    """Counts by verdict; a rejection naming a duplicate counts as a duplicate, not under its reasons."""
    summary = Summary()
    for outcome in outcomes:
        if outcome.kind == "indexed":
            summary.accepted += 1
        elif outcome.kind == "unchanged":
            summary.unchanged += 1
        elif outcome.kind == "pending":
            summary.pending += 1
        elif outcome.kind == "deleted":
            summary.deleted += 1
        elif outcome.kind == "rejected" and is_duplicate(outcome.reasons):
            summary.duplicates += 1
            summary.problems.append(f"duplicate  {outcome.document_id}: {outcome.message}")
        elif outcome.kind == "rejected":
            summary.rejected += 1
            summary.rejected_by_reason.update(outcome.reasons or ("unknown",))
            summary.problems.append(f"rejected   {outcome.document_id}: {outcome.message}")
        elif outcome.kind == "fetch_failed":
            summary.fetch_failed.update(outcome.reasons)
            summary.problems.append(f"not read   {outcome.document_id}: {outcome.message}")
        else:
            summary.submit_failed.update(outcome.reasons)
            summary.problems.append(f"not sent   {outcome.document_id}: {outcome.message}")
    return summary


def _by_reason(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{code}: {n}" for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) + ")"


def format_summary(summary: Summary, *, wait_timeout_s: float | None = None) -> str:
    lines = [
        f"accepted: {summary.accepted}",
        f"rejected: {summary.rejected}{_by_reason(summary.rejected_by_reason)}",
        f"duplicates: {summary.duplicates}",
        f"unchanged: {summary.unchanged}",
        f"failed to fetch: {sum(summary.fetch_failed.values())}{_by_reason(summary.fetch_failed)}",
        f"failed to submit: {sum(summary.submit_failed.values())}{_by_reason(summary.submit_failed)}",
    ]
    if summary.deleted:
        lines.append(f"deleted meanwhile: {summary.deleted}")
    if summary.pending:
        waited = f" after {wait_timeout_s:g} s without progress" if wait_timeout_s is not None else " (not waited for)"
        lines.append(f"still pending{waited}: {summary.pending} (see GET /v1/documents/{{id}}; a re-run resumes)")
    shown = summary.problems[:MAX_PROBLEM_LINES]
    if shown:
        lines.append("")
        lines.extend(shown)
        if len(summary.problems) > len(shown):
            lines.append(f"... and {len(summary.problems) - len(shown)} more")
    return "\n".join(lines)

