"""JSON and JSON Lines: the text fields of each record (dotted paths), one paragraph per record."""

from __future__ import annotations

import json
from typing import Any

from gyre_ingest.cleaning import clean_text, decode_text
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError

JSON_MEDIA_TYPE = "application/json"
JSONL_MEDIA_TYPE = "application/x-ndjson"


def extract_json(data: bytes, charset: str | None, text_fields: tuple[str, ...]) -> ExtractedDocument:
    source = decode_text(data, charset)
    if not source.strip():
        return ExtractedDocument(text="", content_type=JSON_MEDIA_TYPE)
    try:
        value = json.loads(source)
    except (ValueError, RecursionError) as exc:
        raise ExtractionError("invalid_json", f"the content is not valid JSON: {exc}") from exc
    records = value if isinstance(value, list) else [value]
    title = value.get("title") if isinstance(value, dict) else None
    return _document(records, text_fields, JSON_MEDIA_TYPE, title if isinstance(title, str) else "")


def extract_json_lines(data: bytes, charset: str | None, text_fields: tuple[str, ...]) -> ExtractedDocument:
    records: list[Any] = []
    for number, line in enumerate(decode_text(data, charset).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise ExtractionError("invalid_json", f"line {number} is not valid JSON: {exc}") from exc
    return _document(records, text_fields, JSONL_MEDIA_TYPE, "")


def _document(records: list[Any], text_fields: tuple[str, ...], media_type: str, title: str) -> ExtractedDocument:
    paragraphs = [text for record in records if (text := clean_text(record_text(record, text_fields)))]
    if records and not paragraphs:
        fields = ", ".join(text_fields)
        raise ExtractionError(
            "no_text_fields",
            f"none of the {len(records)} record(s) has text in the fields {fields}; "
            "name the fields that hold the text (dotted paths such as 'body.text' work)",
        )
    return ExtractedDocument(text="\n\n".join(paragraphs), content_type=media_type, title=clean_text(title))


def record_text(record: Any, text_fields: tuple[str, ...]) -> str:
    """The text of one record: the strings found at each field path, in the order of the fields."""
    if isinstance(record, str):
        return record
    found: list[str] = []
    for field in text_fields:
        found.extend(_strings_at(record, field.split(".")))
    return "\n\n".join(found)


def _strings_at(value: Any, path: list[str]) -> list[str]:
    if isinstance(value, list):
        return [text for item in value for text in _strings_at(item, path)]
    if not path:
        return [value] if isinstance(value, str) and value.strip() else []
    if isinstance(value, dict) and path[0] in value:
        return _strings_at(value[path[0]], path[1:])
    return []
