"""Golden sets: the JSONL format of questions with expected answer facts, its validation, checksum and sources."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

import msgspec

__all__ = [
    "ALTERNATIVES_SEPARATOR", "MAX_QUESTION_CHARS", "ORIGINS", "GoldenItem", "GoldenSetError", "SetDescription",
    "describe", "dump_golden_jsonl", "items_from_feedback", "parse_golden_jsonl", "set_checksum",
]

MAX_QUESTION_CHARS = 2000
ORIGINS = ("hand", "synthetic", "feedback")
# The "|" separating alternatives inside one must_include entry ("working directory|cwd").
ALTERNATIVES_SEPARATOR = "|"


class GoldenItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One question with what a right answer must contain; ``relevant`` holds document or chunk ids."""

    id: str
    question: str
    answer: str = ""  # the reference answer, for people and for overlap metrics
    must_include: tuple[str, ...] = ()  # every entry must occur in an answer; "a|b" accepts either
    relevant: tuple[str, ...] = ()
    answerable: bool = True
    origin: str = "hand"
    checked: bool = False  # a person verified the question, the reference and the must_include terms
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Raised here, construction in code and decoding of a file reject the same items.
        problem = _item_problem(self)
        if problem:
            raise ValueError(problem)

    def alternatives(self) -> list[tuple[str, ...]]:
        """``must_include`` split into its alternatives: one tuple per entry, any one of which satisfies it."""
        return [tuple(part.strip() for part in entry.split(ALTERNATIVES_SEPARATOR)) for entry in self.must_include]


def _item_problem(item: GoldenItem) -> str | None:
    if not item.id.strip():
        return "the id is empty"
    if not item.question.strip():
        return "the question is empty"
    if len(item.question) > MAX_QUESTION_CHARS:
        return f"the question has {len(item.question)} characters, more than {MAX_QUESTION_CHARS}"
    if item.origin not in ORIGINS:
        return f"origin {item.origin!r} is not one of {', '.join(ORIGINS)}"
    if not item.answerable and item.must_include:
        return "an unanswerable item cannot have must_include terms: no right answer names them"
    for entry in item.must_include:
        if any(not part.strip() for part in entry.split(ALTERNATIVES_SEPARATOR)):
            return f"must_include entry {entry!r} is empty or has an empty alternative"
    if any(not ident.strip() for ident in item.relevant):
        return "relevant holds an empty id"
    return None


class GoldenSetError(ValueError):
    """A golden set that cannot be used: ``line`` is the 1-based line of the first problem, ``reason`` says what."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def parse_golden_jsonl(data: bytes) -> list[GoldenItem]:
    """The items of a JSONL golden set, one JSON object a line; blank lines are skipped.

    An item without an id gets ``item-<line number>``. Raises GoldenSetError at the first bad line;
    an empty set is reported at line 1.
    """
    items: list[GoldenItem] = []
    lines_of_ids: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        item = _parse_line(raw, number)
        if item.id in lines_of_ids:
            raise GoldenSetError(number, f"duplicate id {item.id!r} (first on line {lines_of_ids[item.id]})")
        lines_of_ids[item.id] = number
        items.append(item)
    if not items:
        raise GoldenSetError(1, "the golden set is empty: no items")
    return items


def _parse_line(raw: bytes, number: int) -> GoldenItem:
    try:
        value: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise GoldenSetError(number, f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise GoldenSetError(number, f"expected a JSON object, got {type(value).__name__}")
    value.setdefault("id", f"item-{number}")
    try:
        return msgspec.convert(value, GoldenItem)
    except msgspec.ValidationError as exc:
        raise GoldenSetError(number, str(exc)) from None


def dump_golden_jsonl(items: Iterable[GoldenItem]) -> bytes:
    """The items as JSONL in the given order: fields in declaration order, defaults left out, UTF-8."""
    return b"".join(msgspec.json.encode(_without_defaults(item)) + b"\n" for item in items)


def _without_defaults(item: GoldenItem) -> dict[str, Any]:
    # Compared by value: msgspec's own omit_defaults tests strings by identity, so an item read from a
    # file and an equal one built in code would encode differently and change the checksum.
    return {
        field.encode_name: getattr(item, field.name)
        for field in msgspec.structs.fields(GoldenItem)
        if field.required or getattr(item, field.name) != field.default
    }


def set_checksum(items: Iterable[GoldenItem]) -> str:
    """The set's version label: sha256 (hex) of its canonical JSONL, the items sorted by id.

    Sorted, because reordering the lines of a file does not change which questions it asks.
    """
    return hashlib.sha256(dump_golden_jsonl(sorted(items, key=lambda item: item.id))).hexdigest()


class SetDescription(TypedDict):
    items: int
    answerable: int
    unanswerable: int
    with_labels: int  # items with at least one relevant document or chunk id
    checked: int
    by_origin: dict[str, int]


def describe(items: Sequence[GoldenItem]) -> SetDescription:
    """Counts that say what a set holds."""
    answerable = sum(item.answerable for item in items)
    return SetDescription(
        items=len(items),
        answerable=answerable,
        unanswerable=len(items) - answerable,
        with_labels=sum(bool(item.relevant) for item in items),
        checked=sum(item.checked for item in items),
        by_origin=dict(sorted(Counter(item.origin for item in items).items())),
    )


# --- items from user feedback --------------------------------------------------------------------------


def items_from_feedback(records: Iterable[Mapping[str, Any] | object]) -> list[GoldenItem]:
    """Golden items from rated answers (dicts, or objects such as FeedbackRecorded), origin "feedback".

    A thumbs-up (1) or 4-5 stars: the answer is the reference, its cited documents are relevant.
    A thumbs-down (-1) or 2 stars with a correction: the correction is the reference, tagged "negative"
    (the rejected answer's citations are not known to be relevant). Other ratings, a thumbs-down
    without a correction and records without a question are skipped. Ids are ``feedback-<request_id>``;
    of several records for one request the last one wins. Items are unchecked: no person verified them.
    """
    by_request: dict[str, GoldenItem] = {}
    for record in records:
        item = _feedback_item(record)
        if item is not None:
            by_request.pop(item.id, None)  # re-inserted: the order follows the last record
            by_request[item.id] = item
    return list(by_request.values())


def _feedback_item(record: Mapping[str, Any] | object) -> GoldenItem | None:
    question = str(_field(record, "question") or "").strip()
    request_id = str(_field(record, "request_id") or "").strip()
    rating = _field(record, "rating")
    if not question or len(question) > MAX_QUESTION_CHARS or not request_id or not isinstance(rating, int):
        return None
    item_id = f"feedback-{request_id}"
    if _is_positive(rating):
        answer = str(_field(record, "answer") or "").strip()
        if not answer:
            return None
        cited = _field(record, "citations")
        if cited is None:
            cited = _field(record, "cited_documents")  # FeedbackRecorded's name for the same list
        relevant = tuple(dict.fromkeys(str(ident) for ident in cited or () if str(ident).strip()))
        return GoldenItem(id=item_id, question=question, answer=answer, relevant=relevant, origin="feedback")
    correction = str(_field(record, "correction") or "").strip()
    if _is_negative(rating) and correction:
        return GoldenItem(id=item_id, question=question, answer=correction, origin="feedback", tags=("negative",))
    return None


# Thumbs are -1/1 and stars 1..5, so 1 is ambiguous: like gyre_improve's tallies, 1 counts as thumbs-up.
def _is_positive(rating: int) -> bool:
    return rating == 1 or 4 <= rating <= 5


def _is_negative(rating: int) -> bool:
    return rating in (-1, 2)


def _field(record: Mapping[str, Any] | object, name: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)
