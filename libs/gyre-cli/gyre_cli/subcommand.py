"""How a `gyre` subcommand declares its parser: its module docstring is its help page, kept as written."""

from __future__ import annotations

import argparse


def command_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str, doc: str | None
) -> argparse.ArgumentParser:
    """Subcommand ``name``: ``help_text`` in `gyre --help`, ``doc`` (its layout kept) in `gyre NAME --help`."""
    return sub.add_parser(name, help=help_text, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
