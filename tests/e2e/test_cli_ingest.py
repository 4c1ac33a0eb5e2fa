"""`gyre ingest` on the real local stack: a folder and a web page in, verdicts out, and a re-run that skips."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant
from tests.support.web import serving_pages

pytestmark = pytest.mark.e2e
GYRE = str(Path(sys.executable).parent / "gyre")

LIGHTHOUSE = """# The Varnholm lighthouse

The keeper of the Varnholm lighthouse winds the clockwork that turns the lens every four hours.
In winter storms the keeper also rings a bronze bell so that fishing boats can find the harbour.
The lighthouse was built from granite quarried on the island itself and painted white in 1894.
"""

BEES = """Beekeeping notes for the orchard.

The orchard keeps six hives of Carniolan bees along the southern wall, away from the footpath.
Each spring the hives are inspected for queen cells, and a super is added when the apple trees bloom.
Honey is extracted in late August and the frames are returned to the bees to clean before winter.
"""

PAGE = b"""<!doctype html>
<html><head><title>Tide tables</title></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<main>
<h1>Tide tables for Varnholm harbour</h1>
<p>High tide at Varnholm harbour comes roughly fifty minutes later each day, following the moon.</p>
<p>Spring tides after the full moon can flood the lower quay, so boats are moored on the outer pier.</p>
<p>The harbour office posts the week's tide table on the door of the old customs house every Monday.</p>
</main>
<footer>Copyright the harbour office</footer>
</body></html>
"""


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    with serving_pages({"/tides.html": ("text/html; charset=utf-8", PAGE)}) as base:
        yield f"{base}/tides.html"


def gyre_ingest(stack: LocalStack, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GYRE, "ingest", "--gateway", stack.gateway_url, "--api-key", key, "--timeout", "180", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def count(output: str, label: str) -> int:
    match = re.search(rf"^{label}: (\d+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match.group(1))


def test_a_folder_and_a_page_are_ingested_and_a_rerun_skips_them(
    stack: LocalStack, tenant_a: Tenant, client_a: httpx.Client, page_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    (root / "notes").mkdir(parents=True)
    (root / "lighthouse.md").write_text(LIGHTHOUSE)
    (root / "notes" / "bees.txt").write_text(BEES)
    (root / "notes" / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not taken: not a document type")
    prefix = f"cli-{uuid.uuid4().hex[:8]}/"
    state = tmp_path / "ingest-state.json"

    first = gyre_ingest(stack, tenant_a.key, str(root), page_url, "--id-prefix", prefix, "--state", str(state))
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert count(first.stdout, "failed to fetch") == 0 and count(first.stdout, "failed to submit") == 0
    for name in ("lighthouse.md", "notes/bees.txt", page_url):
        assert client_a.get(f"/v1/documents/{prefix}{name}").json()["status"] == "indexed", output
    # The page's main content was read, without its navigation and footer.
    hits = client_a.post("/v1/search", json={"query": "Varnholm harbour high tide moon", "top_k": 5}).json()["hits"]
    page_text = " ".join(h["text"] for h in hits if h["document_id"] == prefix + page_url)
    assert "fifty minutes later" in page_text and "Copyright" not in page_text, hits
    assert count(first.stdout, "accepted") == 3 and count(first.stdout, "rejected") == 0, output

    second = gyre_ingest(stack, tenant_a.key, str(root), page_url, "--id-prefix", prefix, "--state", str(state))
    assert second.returncode == 0, second.stdout + second.stderr
    assert count(second.stdout, "unchanged") == 3, second.stdout
    assert count(second.stdout, "accepted") == 0
