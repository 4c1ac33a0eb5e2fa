"""CSV and TSV: each row as a block of text, either "column: value" lines or the chosen text columns."""

from __future__ import annotations

import csv
import io

from gyre_ingest.cleaning import clean_text, decode_text
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError

CSV_MEDIA_TYPE = "text/csv"
TSV_MEDIA_TYPE = "text/tab-separated-values"

_DELIMITERS = ",;\t|"
# csv.Sniffer's quote and delimiter guesses are quadratic in their sample (regexes with lazy runs over
# the whole sample, and a pass per character code per line): a few dozen lines decide the dialect, so
# the sample stops there, which keeps the cost of any input a small constant.
_SNIFF_CHARS = 4096
_SNIFF_LINES = 64


def extract_csv(data: bytes, charset: str | None, media_type: str, text_columns: tuple[str, ...]) -> ExtractedDocument:
    source = decode_text(data, charset)
    if not source.strip():
        return ExtractedDocument(text="", content_type=media_type)
    try:
        rows = [row for row in csv.reader(io.StringIO(source, newline=""), _dialect(source, media_type)) if any(row)]
    except csv.Error as exc:
        raise ExtractionError("invalid_csv", f"the content is not valid CSV: {exc}") from exc
    if not rows:
        return ExtractedDocument(text="", content_type=media_type)
    header = [name.strip() for name in rows[0]]
    columns = _column_indexes(header, text_columns)
    blocks: list[str] = []
    for row in rows[1:]:
        if text_columns:
            lines = [row[i].strip() for i in columns if i < len(row) and row[i].strip()]
        else:
            lines = [f"{header[i]}: {row[i].strip()}" for i in columns if i < len(row) and row[i].strip()]
        if lines:
            blocks.append("\n".join(lines))
    return ExtractedDocument(text=clean_text("\n\n".join(blocks)), content_type=media_type)


def _dialect(source: str, media_type: str) -> type[csv.Dialect] | csv.Dialect:
    if media_type == TSV_MEDIA_TYPE:
        return csv.excel_tab
    try:
        sample = "\n".join(source[:_SNIFF_CHARS].split("\n", _SNIFF_LINES)[:_SNIFF_LINES])
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel  # one column, or too little to tell: plain commas


def _column_indexes(header: list[str], text_columns: tuple[str, ...]) -> list[int]:
    if not text_columns:
        return [i for i, name in enumerate(header) if name]
    by_name = {name.casefold(): i for i, name in enumerate(header)}
    missing = [name for name in text_columns if name.casefold() not in by_name]
    if missing:
        raise ExtractionError(
            "unknown_columns",
            f"the text column(s) {', '.join(missing)} are not in the CSV header ({', '.join(header)})",
        )
    return [by_name[name.casefold()] for name in text_columns]
