"""Builds each evaluation corpus's golden.jsonl: its committed hand items, then synthetic items from its pages.

Run: `.venv/bin/python -m tests.eval.build_corpora [NAME ...] [--check]`. The Debian package of each
corpus is installed with apt-get when missing and running as root. The output depends only on the
pages, `hand.jsonl`, the seed and the generator, so a rebuild on the same package version writes the
same bytes; `--check` fails when the committed file differs from a rebuild.

Pages become text with the ingest service's own HTML extraction and are cut into sections by its
structure parser, so the generator sees the text the pipeline indexes. Every must_include entry of a
hand item must occur in the text of one of its relevant pages: a check against typos, not a substitute
for reading the page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gyre_ingest.formats.html import extract_html
from gyre_ingest.sections import parse_sections
from gyre_runtime.state.golden_sets import (
    GoldenItem,
    GoldenSetError,
    describe,
    dump_golden_jsonl,
    parse_golden_jsonl,
    set_checksum,
)
from gyre_runtime.state.golden_synth import SourceChunk, synthesize
from tests.eval.corpora import CORPORA_DIR, CorpusManifest, corpus_names, ensure_package, load_manifest

SYNTHETIC_ITEMS = 130
UNANSWERABLE_SHARE = 0.2
SEED = 7


def read_page(root: Path, document: str) -> tuple[str, list[SourceChunk]]:
    """A page's text as ingestion extracts it (headings as ``#`` lines), and its sections as chunks."""
    extracted = extract_html((root / document).read_bytes(), None)
    chunks: list[SourceChunk] = []
    for index, section in enumerate(parse_sections(extracted.text)):
        if not section.blocks:
            continue
        text = extracted.text[section.blocks[0].start : section.blocks[-1].end]
        chunks.append(
            SourceChunk(
                document_id=document, chunk_id=f"{document}#{index}", title=extracted.title,
                heading_path=section.heading_path, text=text,
            )
        )
    return extracted.text, chunks


def hand_item_problems(items: list[GoldenItem], documents: list[str], texts: dict[str, str]) -> list[str]:
    """Why hand items cannot be trusted: unknown pages, unchecked items, terms their pages do not contain.

    Headings count as page text: a chunk carries its heading path into retrieval and the prompt.
    """
    problems: list[str] = []
    for item in items:
        if item.origin != "hand" or not item.checked:
            problems.append(f"{item.id}: hand.jsonl holds only hand-checked items (origin hand, checked true)")
        unknown = [ident for ident in item.relevant if ident not in documents]
        if unknown:
            problems.append(f"{item.id}: relevant pages not in the corpus: {unknown}")
        pages = " ".join(texts[ident] for ident in item.relevant if ident in texts).lower()
        for alternatives in item.alternatives():
            if not any(alternative.lower() in pages for alternative in alternatives):
                problems.append(f"{item.id}: none of {alternatives} occurs in its relevant pages")
    return problems


def build(manifest: CorpusManifest) -> list[GoldenItem]:
    ensure_package(manifest)
    root = Path(manifest.root)
    texts: dict[str, str] = {}
    chunks: list[SourceChunk] = []
    for document in manifest.documents:
        texts[document], page_chunks = read_page(root, document)
        chunks.extend(page_chunks)
    hand = parse_golden_jsonl((CORPORA_DIR / manifest.name / "hand.jsonl").read_bytes())
    problems = hand_item_problems(hand, manifest.documents, texts)
    if problems:
        raise SystemExit(f"{manifest.name}: hand items need fixing:\n  " + "\n  ".join(problems))
    asked = {item.question.lower() for item in hand}
    synthetic = [
        item for item in synthesize(chunks, SYNTHETIC_ITEMS, seed=SEED, unanswerable_share=UNANSWERABLE_SHARE)
        if item.question.lower() not in asked
    ]
    return hand + synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help=f"corpora to build (default: all of {', '.join(corpus_names())})")
    parser.add_argument("--check", action="store_true", help="compare with the committed golden.jsonl, write nothing")
    args = parser.parse_args(argv)
    differing: list[str] = []
    for name in args.names or corpus_names():
        manifest = load_manifest(name)
        data = dump_golden_jsonl(build(manifest))
        try:
            items = parse_golden_jsonl(data)  # what is written must read back
        except GoldenSetError as exc:
            raise SystemExit(f"{name}: the built set does not parse: {exc}") from None
        target = CORPORA_DIR / name / "golden.jsonl"
        print(f"{name}: {describe(items)} checksum {set_checksum(items)[:12]}", file=sys.stderr)
        if args.check:
            if not target.is_file() or target.read_bytes() != data:
                differing.append(name)
        else:
            target.write_bytes(data)
    if differing:
        print(f"golden.jsonl differs from a rebuild: {', '.join(differing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
