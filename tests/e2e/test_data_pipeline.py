"""The data pipeline end to end: formats, personal data, duplicates, rejections and search modes."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import docx
import httpx
import pytest
from fpdf import FPDF

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e


def unique(word: str) -> str:
    return f"{word}-{uuid.uuid4().hex[:8]}"


def pdf_bytes(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def docx_bytes(heading: str, body: str) -> bytes:
    document = docx.Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(body)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def submit(client: httpx.Client, events: EventWatcher, doc_id: str, data: bytes, content_type: str) -> str:
    response = client.post("/v1/documents", json={
        "id": doc_id, "content": base64.b64encode(data).decode(), "content_type": content_type,
    })
    assert response.status_code == 202, response.text
    return await events.wait_for_any(("gyre.index.updated", "gyre.ingest.rejected"), doc_id)


def search(client: httpx.Client, query: str, mode: str = "hybrid", top_k: int = 5) -> list[dict[str, object]]:
    response = client.post("/v1/search", json={"query": query, "mode": mode, "top_k": top_k})
    assert response.status_code == 200, response.text
    hits: list[dict[str, object]] = response.json()["hits"]
    return hits


async def test_a_pdf_is_indexed_with_page_numbers(client_a: httpx.Client, events: EventWatcher) -> None:
    doc_id = unique("pdf")
    subject = await submit(client_a, events, doc_id, pdf_bytes([
        "The Varnholt observatory opened in 1887 on a granite hill above the harbour town.",
        "Its brass refractor telescope was restored by volunteers and is shown to visitors on Fridays.",
    ]), "application/pdf")
    assert subject == "gyre.index.updated"
    hits = [h for h in search(client_a, "Varnholt brass refractor telescope visitors") if h["document_id"] == doc_id]
    assert hits and hits[0]["page"] == 2


async def test_html_docx_and_markdown_upload_become_searchable(client_a: httpx.Client, events: EventWatcher) -> None:
    html = (b"<html><head><title>Quorn mill</title></head><body><nav>Home | About | Contact</nav>"
            b"<main><h1>Quorn mill</h1><p>The Quorn mill grinds spelt with a water wheel built of oak.</p></main>"
            b"<footer>Copyright Quorn heritage trust</footer></body></html>")
    prefix = unique("upload") + "/"
    response = client_a.post("/v1/documents/upload", data={"id_prefix": prefix}, files=[
        ("files", ("mill.html", html, "text/html")),
        ("files", ("ferry.docx", docx_bytes("Ferry", "The Tallon ferry crosses the estuary every forty minutes."),
                   "application/vnd.openxmlformats-officedocument.wordprocessingml.document")),
    ])
    assert response.status_code == 202, response.text
    ids = [d["document_id"] for d in response.json()["documents"]]
    for doc_id in ids:
        assert await events.wait_for_any(("gyre.index.updated", "gyre.ingest.rejected"), doc_id) == "gyre.index.updated"
    mill = [h for h in search(client_a, "Quorn mill water wheel spelt") if h["document_id"] == prefix + "mill.html"]
    assert mill and "Copyright" not in str(mill[0]["text"]) and "Home | About" not in str(mill[0]["text"])
    ferry = [h for h in search(client_a, "Tallon ferry estuary crossing") if h["document_id"] == prefix + "ferry.docx"]
    assert ferry and ferry[0]["heading_path"] == ["Ferry"]


async def test_personal_data_is_redacted_before_indexing(client_a: httpx.Client, events: EventWatcher) -> None:
    doc_id = unique("contact")
    text = ("The Brindle bakery takes orders by e-mail at orders.brindle@example.com or by phone on "
            "+44 20 7946 0958; payment card 4111 1111 1111 1111 is on file for the account.")
    assert await submit(client_a, events, doc_id, text.encode(), "text/plain") == "gyre.index.updated"
    accepted = json.loads(await events.wait_for("gyre.ingest.accepted", doc_id))
    assert accepted["pii_found"] == {"email": 1, "phone": 1, "card": 1}
    hit = next(h for h in search(client_a, "Brindle bakery orders") if h["document_id"] == doc_id)
    assert "[EMAIL]" in str(hit["text"]) and "example.com" not in str(hit["text"]) and "4111" not in str(hit["text"])


async def test_a_tenant_whose_policy_is_reject_gets_personal_data_refused(
    stack: LocalStack, tenant_b: Tenant, client_b: httpx.Client, events: EventWatcher
) -> None:
    env = {**os.environ, "GYRE_NATS_URL": stack.nats_url}
    gyre = str(Path(sys.executable).parent / "gyre")
    subprocess.run([gyre, "tenants", "set", tenant_b.name, "--pii", "reject"], env=env, check=True, capture_output=True)
    doc_id = unique("ssn")
    text = "Employee record for the Ardley depot: social security number 123-45-6789, start date March."
    assert await submit(client_b, events, doc_id, text.encode(), "text/plain") == "gyre.ingest.rejected"
    status = client_b.get(f"/v1/documents/{doc_id}").json()
    assert status["status"] == "rejected" and status["reasons"][0]["code"] == "personal_data"
    assert "123-45-6789" not in json.dumps(status)


async def test_duplicates_are_rejected_naming_the_original(client_a: httpx.Client, events: EventWatcher) -> None:
    words = " ".join(f"Paragraph {i} of the Elmstead canal survey lists lock {i} and its keeper." for i in range(40))
    original, copy, near = unique("canal"), unique("canal-copy"), unique("canal-near")
    assert await submit(client_a, events, original, words.encode(), "text/plain") == "gyre.index.updated"
    assert await submit(client_a, events, copy, words.upper().encode(), "text/plain") == "gyre.ingest.rejected"
    status = client_a.get(f"/v1/documents/{copy}").json()
    assert status["reasons"][0]["code"] == "duplicate" and original in status["reasons"][0]["message"]
    nearly = words.replace("Paragraph 7 of", "Section seven of")
    assert await submit(client_a, events, near, nearly.encode(), "text/plain") == "gyre.ingest.rejected"
    assert client_a.get(f"/v1/documents/{near}").json()["reasons"][0]["code"] == "near_duplicate"


async def test_bad_content_is_rejected_with_a_reason_not_a_crash(client_a: httpx.Client, events: EventWatcher) -> None:
    png, short = unique("image"), unique("short")
    assert await submit(client_a, events, png, b"\x89PNG\r\n\x1a\n" + bytes(64), "application/octet-stream") == (
        "gyre.ingest.rejected"
    )
    assert client_a.get(f"/v1/documents/{png}").json()["reasons"][0]["code"] == "unsupported_type"
    assert await submit(client_a, events, short, b"Hi.", "text/plain") == "gyre.ingest.rejected"
    assert client_a.get(f"/v1/documents/{short}").json()["reasons"][0]["code"] == "too_short"


async def test_sparse_finds_a_rare_keyword_and_hybrid_finds_both_kinds(
    client_a: httpx.Client, events: EventWatcher
) -> None:
    code_doc, prose_doc = unique("code"), unique("prose")
    token = "XQ7-" + uuid.uuid4().hex[:6].upper()
    await submit(client_a, events, code_doc, f"The maintenance ticket {token} concerns the east pump.".encode(),
                 "text/plain")
    await submit(client_a, events, prose_doc, b"Lighthouse keepers trimmed the lamp wicks every evening at dusk.",
                 "text/plain")
    assert search(client_a, token, mode="sparse")[0]["document_id"] == code_doc
    assert search(client_a, "who looked after the light at night", mode="dense", top_k=3)[0]["document_id"] == (
        prose_doc
    )
    hybrid = [h["document_id"] for h in search(client_a, f"{token} lighthouse lamp", mode="hybrid", top_k=10)]
    assert code_doc in hybrid and prose_doc in hybrid
