"""A document's media type from its file name, the same for every producer (the gateway's upload, `gyre ingest`).

Unknown names get ``application/octet-stream``: the ingest service sniffs what such content is.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

UNKNOWN_CONTENT_TYPE = "application/octet-stream"

# Extensions whose type ``mimetypes`` does not know on every system (it reads /etc/mime.types).
EXTENSION_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
}


def guess_content_type(filename: str) -> str:
    """The media type a file name (or URL path) suggests; unknown -> ``application/octet-stream``."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix in EXTENSION_TYPES:
        return EXTENSION_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or UNKNOWN_CONTENT_TYPE
