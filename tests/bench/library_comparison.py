"""Hand-written ingest code against the libraries that do the same: trafilatura (HTML) and datasketch (MinHash LSH).

Gyre does not depend on either library (docs/architecture.md, "Libraries adopted or kept by hand",
says why); this compares them on the Python documentation (Debian `python3.11-doc`, installed when
missing and running as root). Install the two beside the project, not into it:

  .venv/bin/uv pip install --python .venv/bin/python --target /tmp/gyre-libs trafilatura==2.3.1 datasketch==2.0.0
  PYTHONPATH=/tmp/gyre-libs .venv/bin/python -m tests.bench.library_comparison

The same module is a pytest plugin that puts the libraries in place of the hand-written functions,
so that the modules' own unit tests judge them:

  PYTHONPATH=/tmp/gyre-libs .venv/bin/pytest -p tests.bench.library_comparison \\
      tests/unit/ingest/test_formats.py tests/unit/ingest/test_dedup.py -k "html or sphinx or dedup or ..."
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import lxml.html
import numpy as np

from gyre_ingest import dedup
from gyre_ingest.cleaning import clean_text, decode_text
from gyre_ingest.formats import html
from gyre_ingest.formats.base import ExtractedDocument
from gyre_ingest.structure import parse_sections
from gyre_runtime.state.golden_sets import parse_golden_jsonl
from tests.eval.corpora import CORPORA_DIR, ensure_package, load_manifest

QUERIES = Path(__file__).resolve().parent / "data" / "python-doc-queries.jsonl"
NEAR_DUPLICATE_THRESHOLD = 0.9  # the setting's default
EDIT_RATES = (0.005, 0.01, 0.015, 0.02, 0.04)  # share of words replaced in each edited copy of a page
_WORD = re.compile(r"\w+")
_HEADING_MARKS = re.compile(r"[`¶\\*]")
# Sphinx furniture that must not reach the index ("¶" is the heading permalink mark).
_FURNITURE = tuple("Previous topic|Next topic|Report a Bug|Show Source|Quick search|Created using Sphinx|¶".split("|"))


# --- the libraries in place of the hand-written functions ----------------------------------------


def trafilatura_html(data: bytes, charset: str | None, mode: str = "default") -> ExtractedDocument:
    """``extract_html`` with trafilatura's main-content extraction (Markdown output) in place of gyre's."""
    import trafilatura
    from trafilatura.metadata import extract_metadata

    if not charset:
        declared = html._META_CHARSET.search(data[:4096])
        charset = declared.group(1).decode("ascii") if declared else None
    markup = html._XML_DECLARATION.sub("", decode_text(data, charset), count=1)
    if not markup.strip():
        return ExtractedDocument(text="", content_type=html.MEDIA_TYPE)
    text = trafilatura.extract(
        markup, output_format="markdown", include_tables=True, include_comments=False, include_formatting=True,
        include_links=False, include_images=False, deduplicate=False,
        favor_recall=mode == "recall", favor_precision=mode == "precision",
    )  # fmt: skip
    metadata = extract_metadata(markup)
    title = metadata.title if metadata is not None and metadata.title else ""
    return ExtractedDocument(text=clean_text(text or ""), content_type=html.MEDIA_TYPE, title=title)


def _blake2b64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def datasketch_signature(
    text: str,
    num_perm: int = dedup.DEFAULT_NUM_PERM,
    seed: int = dedup.DEFAULT_SEED,
    k: int = dedup.DEFAULT_SHINGLE_WORDS,
) -> tuple[int, ...]:
    """datasketch's MinHash (64-bit affine permutations) of gyre's shingles, hashed as gyre hashes them."""
    from datasketch import MinHash

    if num_perm < 1:
        raise ValueError(f"num_perm must be at least 1, not {num_perm}")
    minhash = MinHash(num_perm=num_perm, seed=seed, scheme="affine64", hashfunc=_blake2b64)
    minhash.update_batch([shingle.encode() for shingle in dedup.shingles(text, k)])
    return tuple(int(value) for value in minhash.hashvalues)


def datasketch_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    from datasketch import MinHash

    if len(a) != len(b):
        raise ValueError(f"signatures of different lengths ({len(a)} and {len(b)}) cannot be compared")
    if not a:
        raise ValueError("empty signatures cannot be compared")
    first, second = (MinHash(hashvalues=np.asarray(s, dtype=np.uint64), scheme="affine64") for s in (a, b))
    return float(first.jaccard(second))


def datasketch_band_keys(
    signature: Sequence[int], bands: int = dedup.DEFAULT_BANDS, rows: int = dedup.DEFAULT_ROWS
) -> list[str]:
    """The band keys datasketch's MinHashLSH would file a signature under, as KV-safe strings."""
    from datasketch import MinHashLSH

    if bands < 1 or rows < 1:
        raise ValueError(f"bands and rows must be at least 1, not {bands} and {rows}")
    if bands * rows > len(signature):
        raise ValueError(f"{bands} bands of {rows} rows need {bands * rows} values, the signature has {len(signature)}")
    lsh = MinHashLSH(num_perm=len(signature), params=(max(bands, 2), rows), hashfunc=_hex_digest)
    values = np.asarray(signature, dtype=np.uint64)
    return [f"{band:02d}_{lsh._H(values[start:end])}" for band, (start, end) in enumerate(lsh.hashranges[:bands])]


def _hex_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


_DEDUP_REPLACEMENTS = {
    "minhash_signature": datasketch_signature,
    "estimate_similarity": datasketch_similarity,
    "lsh_band_keys": datasketch_band_keys,
}


def pytest_configure(config: Any) -> None:
    html.extract_html = trafilatura_html  # type: ignore[assignment]
    for name, replacement in _DEDUP_REPLACEMENTS.items():
        setattr(dedup, name, replacement)


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    # Test modules import the functions by name before pytest_configure's patch can reach them.
    for item in items:
        for name, replacement in _DEDUP_REPLACEMENTS.items():
            if hasattr(item.module, name):
                setattr(item.module, name, replacement)


# --- HTML: extraction quality on python-doc ------------------------------------------------------


def _words(text: str) -> Counter[str]:
    return Counter(word.casefold() for word in _WORD.findall(text))


def _sphinx_main_words(data: bytes) -> Counter[str]:
    """The reference: the words of the element Sphinx marks role=main, without permalink marks."""
    main = lxml.html.document_fromstring(data.decode("utf-8")).xpath("//*[@role='main']")[0]
    for element in main.xpath(".//a[contains(@class,'headerlink')]|.//script|.//style"):
        element.drop_tree()
    return _words(main.text_content())


def _section_found(text: str, section: str) -> bool:
    """Whether the structure parser sees ``section`` as a heading, as the retrieval benchmark grades it."""
    wanted = _HEADING_MARKS.sub("", section).strip()
    return any(
        _HEADING_MARKS.sub("", heading).strip().startswith(wanted)
        for parsed in parse_sections(text)
        for heading in parsed.heading_path
    )


def compare_html(pages: dict[str, bytes]) -> dict[str, str]:
    """Prints one table row per extractor; returns gyre's texts for the de-duplication comparison."""
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    hand = [
        item for item in parse_golden_jsonl((CORPORA_DIR / "python-doc" / "hand.jsonl").read_bytes()) if item.relevant
    ]
    reference = {page: _sphinx_main_words(data) for page, data in pages.items()}
    extractors: dict[str, Callable[[bytes], ExtractedDocument]] = {
        "gyre (hand-written)": lambda data: html.extract_html(data, None),
        "trafilatura": lambda data: trafilatura_html(data, None),
        "trafilatura favor_recall": lambda data: trafilatura_html(data, None, "recall"),
        "trafilatura favor_precision": lambda data: trafilatura_html(data, None, "precision"),
    }
    print(f"\n{len(pages)} pages, {len(queries)} query sections, {len(hand)} hand-checked answerable items\n")
    print(
        "| extractor | word recall / precision vs role=main | query sections kept as headings | hand items "
        "whose terms occur | pages with Sphinx furniture | CPU ms/page |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    gyre_texts: dict[str, str] = {}
    for name, extract in extractors.items():
        start = time.process_time()
        texts = {page: extract(data).text for page, data in pages.items()}
        ms = (time.process_time() - start) * 1000 / len(pages)
        gyre_texts = gyre_texts or texts
        common = sum(sum((_words(texts[p]) & reference[p]).values()) for p in pages)
        recall = common / sum(sum(words.values()) for words in reference.values())
        precision = common / sum(sum(_words(text).values()) for text in texts.values())
        sections = sum(_section_found(texts[q["document_id"]], q["section"]) for q in queries)
        answered = sum(
            all(
                any(term.lower() in " ".join(texts.get(p, "") for p in item.relevant).lower() for term in terms)
                for terms in item.alternatives()
            )
            for item in hand
        )
        furniture = sum(any(mark in text for mark in _FURNITURE) for text in texts.values())
        print(f"| {name} | {recall:.3f} / {precision:.3f} | {sections} | {answered} | {furniture} | {ms:.0f} |")
    return gyre_texts


# --- MinHash LSH: near-duplicate decisions and speed ---------------------------------------------


def compare_dedup(texts: dict[str, str]) -> None:
    from datasketch import MinHashLSH

    rng = random.Random(5)
    corpus: dict[str, str] = {}
    for page, text in sorted(texts.items()):
        words = text.split()
        if len(words) < 50:
            continue
        corpus[page] = text
        for rate in EDIT_RATES:
            edited = [word if rng.random() >= rate else f"zz{rng.randrange(10**6)}" for word in words]
            corpus[f"{page}~{rate}"] = " ".join(edited)
    shingles = {document: dedup.shingles(text) for document, text in corpus.items()}

    def jaccard(a: str, b: str) -> float:
        return len(shingles[a] & shingles[b]) / len(shingles[a] | shingles[b])

    documents = sorted(corpus)
    pairs = len(documents) * (len(documents) - 1) // 2
    true_pairs = {
        frozenset(pair)
        for pair in combinations(documents, 2)
        if pair[0].split("~")[0] == pair[1].split("~")[0] and jaccard(*pair) >= NEAR_DUPLICATE_THRESHOLD
    }
    tuned = MinHashLSH(threshold=NEAR_DUPLICATE_THRESHOLD, num_perm=dedup.DEFAULT_NUM_PERM)
    methods: dict[str, tuple[Callable[[str], Sequence[int]], Callable[[Sequence[int]], list[str]]]] = {
        "gyre (hand-written), 32 bands x 4 rows": (dedup.minhash_signature, dedup.lsh_band_keys),
        "datasketch affine64, 32 x 4": (datasketch_signature, datasketch_band_keys),
        f"datasketch affine64, its own {tuned.b} x {tuned.r}": (
            datasketch_signature, lambda s: datasketch_band_keys(s, tuned.b, tuned.r),
        ),
    }  # fmt: skip
    print(
        f"\n{len(corpus)} documents ({len(texts)} pages and {len(EDIT_RATES)} edited copies of each), "
        f"{pairs} pairs, {len(true_pairs)} with exact Jaccard >= {NEAR_DUPLICATE_THRESHOLD}\n"
    )
    print("| method | signatures/s (CPU) | near duplicates found | missed | false | decisions equal to gyre's |")
    print("| --- | --- | --- | --- | --- | --- |")
    similarity = {"gyre": dedup.estimate_similarity, "datasketch": datasketch_similarity}
    gyre_found: set[frozenset[str]] | None = None
    for name, (signature, band_keys) in methods.items():
        start = time.process_time()
        signatures = {document: signature(corpus[document]) for document in documents}
        rate = len(documents) / (time.process_time() - start)
        estimate = similarity[name.split()[0]]
        buckets: dict[str, list[str]] = {}
        found: set[frozenset[str]] = set()
        for document in documents:
            keys = band_keys(signatures[document])
            for candidate in {c for key in keys for c in buckets.get(key, [])}:
                if estimate(signatures[candidate], signatures[document]) >= NEAR_DUPLICATE_THRESHOLD:
                    found.add(frozenset((candidate, document)))
            for key in keys:
                buckets.setdefault(key, []).append(document)
        gyre_found = found if gyre_found is None else gyre_found
        false = sum(jaccard(*sorted(pair)) < NEAR_DUPLICATE_THRESHOLD for pair in found - true_pairs)
        equal = pairs - len(found ^ gyre_found)
        print(f"| {name} | {rate:.0f} | {len(found)} | {len(true_pairs - found)} | {false} | {equal} |")


def main() -> None:
    manifest = load_manifest("python-doc")
    ensure_package(manifest)
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    names = sorted(set(manifest.documents) | {query["document_id"] for query in queries})
    pages = {name: (Path(manifest.root) / name).read_bytes() for name in names}
    compare_dedup(compare_html(pages))


if __name__ == "__main__":
    main()
