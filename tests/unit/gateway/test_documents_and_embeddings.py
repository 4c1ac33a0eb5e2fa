"""Document registry changes and embedding encodings, as plain functions."""

from __future__ import annotations

import base64
import datetime as dt
import struct

import pytest

from gyre_contracts import DocumentSubmitted, EmbedResult, Rejection
from gyre_gateway.documents.serving import mark_pending
from gyre_gateway.documents.validation import normalise_content_type
from gyre_gateway.embeddings.protocol import EmbeddingRequest
from gyre_gateway.embeddings.serving import embedding_list, encode_base64_floats
from gyre_runtime.state.documents import DocumentRecord

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def submission(title: str = "") -> DocumentSubmitted:
    return DocumentSubmitted(
        tenant="t", document_id="d", text="x", title=title, submission_id="sub-2", submitted_at=NOW
    )


def test_a_new_document_is_recorded_pending_with_its_submission() -> None:
    record = mark_pending(None, submission(title="T"))
    # The submission id is ingest's to set, when it assigns the version.
    assert (record.status, record.version, record.submission_id, record.title) == ("pending", 0, "", "T")
    assert record.submitted_at == NOW and record.tenant == "t"


def test_a_resubmission_keeps_the_indexed_version_and_drops_old_reasons() -> None:
    current = DocumentRecord(
        document_id="d", tenant="t", status="rejected", version=3, chunks=7, submission_id="sub-1", title="Old",
        reasons=[Rejection(code="empty", message="no text")],
    )
    record = mark_pending(current, submission())
    assert (record.status, record.version, record.chunks, record.title) == ("pending", 3, 7, "Old")
    assert record.reasons == [] and record.submission_id == "sub-1"


def test_a_content_type_is_lowered_and_keeps_its_parameters() -> None:
    # The charset helps ingest decode text that is not UTF-8.
    assert normalise_content_type(" Text/Markdown ;charset=UTF-8") == "text/markdown; charset=UTF-8"
    assert normalise_content_type("application/PDF") == "application/pdf"


@pytest.mark.parametrize("value", ["pdf", "", "text/", "/plain", "text plain/x", "text/plain/x"])
def test_what_is_no_media_type_is_recognised(value: str) -> None:
    assert normalise_content_type(value) is None


def test_base64_embeddings_are_little_endian_float32() -> None:
    encoded = encode_base64_floats((1.0, -0.5, 0.25))
    assert struct.unpack("<3f", base64.b64decode(encoded)) == (1.0, -0.5, 0.25)


def test_the_embedding_list_has_openais_shape_and_token_usage() -> None:
    result = EmbedResult(vectors=((0.1, 0.2), (0.3, 0.4)), token_counts=(3, 4), embedding_model="minilm:1")
    body = EmbeddingRequest(input=["a", "b"], model="all-minilm-l6-v2")
    response = embedding_list(body, result, expected=2).model_dump()
    assert response["object"] == "list" and response["model"] == "minilm:1"
    assert [d["index"] for d in response["data"]] == [0, 1]
    assert response["data"][1] == {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}
    assert response["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
