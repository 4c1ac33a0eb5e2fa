"""`gyre ingest` on the real local stack: a folder and a web page in, verdicts out, and a re-run that skips."""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import KEY_A

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
</main>
<footer>Copyright the harbour office</footer>
</body></html>
"""


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tides.html"
    server.shutdown()
    server.server_close()


def gyre_ingest(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GYRE, "ingest", "--gateway", stack.gateway_url, "--api-key", KEY_A, "--timeout", "180", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def count(output: str, label: str) -> int:
    match = re.search(rf"^{label}: (\d+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match.group(1))


def test_a_folder_and_a_page_are_ingested_and_a_rerun_skips_them(
    stack: LocalStack, client_a: httpx.Client, page_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    (root / "notes").mkdir(parents=True)
    (root / "lighthouse.md").write_text(LIGHTHOUSE)
    (root / "notes" / "bees.txt").write_text(BEES)
    (root / "notes" / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not taken: not a document type")
    prefix = f"cli-{uuid.uuid4().hex[:8]}/"
    state = tmp_path / "ingest-state.json"

    first = gyre_ingest(stack, str(root), page_url, "--id-prefix", prefix, "--state", str(state))
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert count(first.stdout, "failed to fetch") == 0 and count(first.stdout, "failed to submit") == 0
    for name in ("lighthouse.md", "notes/bees.txt"):
        assert client_a.get(f"/v1/documents/{prefix}{name}").json()["status"] == "indexed", output
    # The page: indexed, or rejected with a reason (HTML support is the ingest service's to decide);
    # either way the summary counts it where its status says.
    page = client_a.get("/v1/documents/" + prefix + page_url).json()
    assert page["status"] in ("indexed", "rejected"), page
    indexed = 2 + (page["status"] == "indexed")
    assert count(first.stdout, "accepted") == indexed
    if page["status"] == "rejected":
        codes = [r["code"] for r in page["reasons"]]
        assert count(first.stdout, "rejected") + count(first.stdout, "duplicates") == 1
        assert any(code in first.stdout for code in codes), output

    second = gyre_ingest(stack, str(root), page_url, "--id-prefix", prefix, "--state", str(state))
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"unchanged: {indexed}" in second.stdout
    assert count(second.stdout, "accepted") == 0
