"""Multipart upload: file -> DocumentSubmitted as plain functions, and the 4xx a client gets before the bus."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gyre_contracts.media_types import guess_content_type
from gyre_gateway.app import create_app
from gyre_gateway.documents.upload import UploadedFile, parse_upload_metadata, upload_document_id, upload_submissions
from gyre_gateway.documents.validation import upload_content_type
from gyre_gateway.errors import ApiError
from gyre_runtime.config import load_settings


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# ---------------------------------------------------------------- content types


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("notes.md", "text/markdown"),
        ("README.MARKDOWN", "text/markdown"),
        ("a.txt", "text/plain"),
        ("page.html", "text/html"),
        ("report.pdf", "application/pdf"),
        ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("rows.csv", "text/csv"),
        ("data.json", "application/json"),
        ("data.jsonl", "application/x-ndjson"),
        ("mystery.zzz-unknown", "application/octet-stream"),
        ("no-extension", "application/octet-stream"),
    ],
)
def test_a_files_type_is_guessed_from_its_name(filename: str, expected: str) -> None:
    assert guess_content_type(filename) == expected


def test_a_parts_own_content_type_wins_unless_it_says_nothing() -> None:
    assert upload_content_type("text/html; charset=ISO-8859-1", "page.txt") == "text/html; charset=ISO-8859-1"
    # curl and browsers send octet-stream for what they do not know: the file name says more.
    assert upload_content_type("application/octet-stream", "notes.md") == "text/markdown"
    assert upload_content_type(None, "report.pdf") == "application/pdf"
    assert upload_content_type("not a type", "report.pdf") == "application/pdf"
    assert upload_content_type(None, "blob") == "application/octet-stream"


# ---------------------------------------------------------------- ids, metadata, submissions


def test_the_document_id_is_the_prefix_and_the_file_name_unless_given() -> None:
    assert upload_document_id("notes.md", None, None) == "notes.md"
    assert upload_document_id("notes.md", "handbook/", None) == "handbook/notes.md"
    assert upload_document_id("/abs/notes.md", "", None) == "abs/notes.md"
    assert upload_document_id("notes.md", "ignored/", "my-id") == "my-id"


@pytest.mark.parametrize(
    ("filename", "prefix", "fragment"),
    [("a\nb.txt", None, "control characters"), ("x" * 300, None, "the limit is 256"), ("a.txt", "p" * 256, "256")],
)
def test_an_unusable_document_id_is_400(filename: str, prefix: str | None, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        upload_document_id(filename, prefix, None)
    assert caught.value.status_code == 400 and fragment in caught.value.message


def test_metadata_is_a_json_object_or_nothing() -> None:
    assert parse_upload_metadata(None) == {} and parse_upload_metadata("  ") == {}
    assert parse_upload_metadata('{"team": "docs", "n": 2}') == {"team": "docs", "n": 2}
    with pytest.raises(ApiError, match="not valid JSON"):
        parse_upload_metadata("{team")
    with pytest.raises(ApiError, match="JSON object"):
        parse_upload_metadata("[1, 2]")


def test_each_file_becomes_a_base64_submission_of_its_raw_bytes() -> None:
    files = [
        UploadedFile(filename="guide.md", content_type="application/octet-stream", data=b"# Guide\n"),
        UploadedFile(filename="scan.pdf", content_type="application/pdf", data=b"%PDF-1.7\x00\xff"),
    ]
    first, second = upload_submissions(
        "tenant-a", files, metadata={"team": "docs"}, id_prefix="kb/", document_id=None, max_bytes=100
    )
    assert (first.tenant, first.document_id, first.content_type) == ("tenant-a", "kb/guide.md", "text/markdown")
    assert base64.b64decode(second.content or "") == b"%PDF-1.7\x00\xff" and second.text is None
    assert (second.document_id, second.content_type, second.title) == ("kb/scan.pdf", "application/pdf", "scan")
    assert second.metadata == {"filename": "scan.pdf", "team": "docs"} and second.source == "upload"
    assert first.submission_id and first.submission_id != second.submission_id


@pytest.mark.parametrize(
    ("files", "document_id", "status", "fragment"),
    [
        ([], None, 400, "at least one file"),
        ([UploadedFile(filename="a.txt", content_type=None, data=b"")], None, 400, "is empty"),
        ([UploadedFile(filename="a.txt", content_type=None, data=b"x" * 11)], None, 413, "limit is 10"),
        ([UploadedFile(filename="a.txt", content_type=None, data=b"x")] * 2, None, 400, "two files map"),
        ([UploadedFile(filename="a.txt", content_type=None, data=b"x"),
          UploadedFile(filename="b.txt", content_type=None, data=b"y")], "one-id", 400, "names one document"),
    ],
)
def test_a_file_the_client_must_fix_stops_the_whole_upload(
    files: list[UploadedFile], document_id: str | None, status: int, fragment: str
) -> None:
    with pytest.raises(ApiError) as caught:
        upload_submissions("t", files, metadata={}, id_prefix=None, document_id=document_id, max_bytes=10)
    assert caught.value.status_code == status and fragment in caught.value.message


# ---------------------------------------------------------------- over HTTP, without a bus


def test_a_valid_upload_passes_validation_and_meets_the_missing_bus(client: TestClient) -> None:
    response = client.post(
        "/v1/documents/upload",
        files=[("files", ("a.md", b"# A", "text/markdown")), ("files", ("b.bin", b"\x00\x01", None))],
        data={"metadata": json.dumps({"team": "docs"}), "id_prefix": "kb/"},
    )
    assert error_of(response, 503)["code"] == "bus_unavailable"


def test_an_upload_without_files_is_400_naming_the_field(client: TestClient) -> None:
    error = error_of(client.post("/v1/documents/upload", data={"id_prefix": "kb/"}))
    assert error["param"] == "files" and "field required" in error["message"]


def test_an_upload_with_bad_metadata_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/documents/upload", files=[("files", ("a.md", b"# A", "text/markdown"))], data={"metadata": "{oops"}
    )
    error = error_of(response)
    assert error["param"] == "metadata" and error["code"] == "invalid_json"


def test_an_upload_needs_an_api_key(settings: Any) -> None:
    anonymous = TestClient(create_app(settings))
    response = anonymous.post("/v1/documents/upload", files=[("files", ("a.md", b"# A", "text/markdown"))])
    assert error_of(response, 401)["code"] == "invalid_api_key"


def test_an_uploaded_file_over_the_byte_limit_is_413(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path), api_keys="k:t", max_document_chars=10)
    client = TestClient(create_app(settings), headers={"Authorization": "Bearer k"})
    response = client.post("/v1/documents/upload", files=[("files", ("big.pdf", b"x" * 61, "application/pdf"))])
    error = error_of(response, 413)
    assert error["code"] == "document_too_large" and "'big.pdf'" in error["message"] and "60" in error["message"]
