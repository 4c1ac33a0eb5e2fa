"""A real local HTTP server for tests that fetch web pages (the CLI's URL inputs), on a free port in a thread."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator, Mapping
from typing import ClassVar


class StaticPages(http.server.BaseHTTPRequestHandler):
    """Answers GET with the page of ``pages`` at the request's path (content type, body); 404 otherwise."""

    pages: ClassVar[Mapping[str, tuple[str, bytes]]] = {}

    def do_GET(self) -> None:
        if self.path not in self.pages:
            self.send_error(404)
            return
        content_type, body = self.pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 for as long as the block runs; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serving_pages(pages: Mapping[str, tuple[str, bytes]]) -> contextlib.AbstractContextManager[str]:
    """Fixed pages, by path: ``{"/a.html": ("text/html; charset=utf-8", b"<html>...")}``."""
    return serving(type("Pages", (StaticPages,), {"pages": dict(pages)}))
