"""Writes docs/settings.md from the Settings object, the one place settings are defined."""

from __future__ import annotations

import sys
from pathlib import Path

from gyre_runtime.config import settings_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def render() -> str:
    lines = [
        "# Settings",
        "",
        "Every Gyre process reads the same typed settings from `GYRE_*` environment variables",
        "(`libs/gyre-runtime/gyre_runtime/config.py`; this file is generated from it by `just docs`).",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{name}` | `{default}` | {description} |" for name, default, description in settings_table()]
    lines += [
        "",
        "The local stack (`gyre up`) also reads `GYRE_GATEWAY_PORT` (8080), `GYRE_NATS_PORT` (4222),",
        "`GYRE_NATS_MONITOR_PORT` (8222) and `GYRE_PORT_BASE` (services on base+1 .. base+7; default 8091-8097).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if DOC.exists() and DOC.read_text() == render() else 1)
    DOC.write_text(render())
