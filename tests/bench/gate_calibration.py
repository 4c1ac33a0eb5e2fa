"""How the "don't know" gate was calibrated: refusal rates of its two thresholds on the evaluation corpora.

The gate refuses (answers the no-answer text without calling the model) when the best dense hit's
cosine similarity is below ``min_relevance`` or when the retrieved passages (text, titles, headings)
mention less than ``min_question_coverage`` of what the question names. For each corpus and each
pair of thresholds this prints the share of unanswerable items refused (want high) and of
answerable items refused (want low), from the same retrieval calls generate makes (`POST
/v1/search`, dense top 1 and hybrid top_k). It needs a stack where each corpus is indexed in a tenant
of its own (the answer-quality benchmark's, while it runs, or any other):

  .venv/bin/python -m tests.bench.gate_calibration --url http://127.0.0.1:8080 --key-prefix gyre-eval-key- \\
      [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from gyre_runtime.grounding import question_coverage
from tests.bench.sections import write_section
from tests.eval.corpora import corpus_names, load_corpus

SECTION_MARKER = "## Issue 7: calibrating the don't-know gate"
RELEVANCE = (0.2, 0.3, 0.35, 0.4)
COVERAGE = (0.0, 0.5, 0.67, 0.75, 1.0)
TOP_K = 4


@dataclass(frozen=True)
class Observation:
    answerable: bool
    best_similarity: float
    coverage: float


def observe(client: httpx.Client, question: str, answerable: bool) -> Observation:
    dense = client.post("/v1/search", json={"query": question, "top_k": 1, "mode": "dense"}).json().get("hits", [])
    hybrid = client.post("/v1/search", json={"query": question, "top_k": TOP_K, "mode": "hybrid"}).json()
    passages = [" ".join((h.get("title") or "", *(h.get("heading_path") or []), h["text"])) for h in hybrid["hits"]]
    return Observation(answerable, dense[0]["score"] if dense else 0.0, question_coverage(question, passages))


def table(name: str, observations: Sequence[Observation]) -> list[str]:
    unanswerable = [o for o in observations if not o.answerable]
    answerable = [o for o in observations if o.answerable]
    lines = [
        f"{name} ({len(answerable)} answerable, {len(unanswerable)} unanswerable items): share refused, "
        "unanswerable / answerable",
        "",
        "| min_relevance \\ min_question_coverage | " + " | ".join(f"{c:g}" for c in COVERAGE) + " |",
        "| --- |" + " --- |" * len(COVERAGE),
    ]
    for relevance in RELEVANCE:
        cells = []
        for coverage in COVERAGE:
            def refused(o: Observation, r: float = relevance, c: float = coverage) -> bool:
                return o.best_similarity < r or o.coverage < c

            un = sum(map(refused, unanswerable)) / max(1, len(unanswerable))
            an = sum(map(refused, answerable)) / max(1, len(answerable))
            cells.append(f"{un:.2f} / {an:.2f}")
        lines.append(f"| {relevance:g} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key-prefix", default="gyre-eval-key-", help="the key of tenant T is PREFIX + T")
    parser.add_argument("--corpus", action="append", choices=corpus_names())
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    lines = [
        SECTION_MARKER, "",
        "`python -m tests.bench.gate_calibration` on the corpora indexed by `just bench-answers`. The default "
        "template's thresholds were chosen on python-doc (min_relevance 0.3, min_question_coverage 0.67: most "
        "unanswerable items refused for few answerable ones); git-doc was not looked at when choosing them.", "",
    ]
    for name in args.corpus or corpus_names():
        corpus = load_corpus(name)
        with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {args.key_prefix}{name}"},
                          timeout=60) as client:
            observations = [observe(client, item.question, item.answerable) for item in corpus.items]
        lines += [*table(name, observations), ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, text, SECTION_MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
