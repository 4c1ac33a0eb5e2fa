"""A labelled query set built from the Python documentation (Debian `python3.11-doc`), for the issue-3 benchmark.

Construction (deterministic: a fixed seed, sorted inputs, no model involved):

1. Every HTML page of the corpus is parsed (lxml). Word statistics: for each lower-cased word, the
   number of pages whose main text contains it (document frequency, df).
2. Candidate sections: the h2 and h3 sections of the library reference pages (`library/*.html`)
   whose heading is unique within its page and whose first paragraph (the section's first `<p>`
   child) holds at least two usable words. Usable: letters only, 4+ characters, not a stop word,
   not a word of the heading or of the page title, and of middle frequency in the corpus
   (df between `MIN_DF` and `MAX_DF_SHARE` of the pages): neither so rare that one word names the
   page nor so common that it says nothing.
3. A seeded shuffle picks up to `PER_PAGE` sections per page until `size` sections are chosen.
4. Each query is a question-like rewrite: the heading's content words, 2 or 3 usable words of the
   first sentence drawn by the seeded generator in shuffled order (never the sentence itself), put
   into one of a few fixed templates. A heading that also names a section of another page
   ("Examples", "Functions") is preceded by the page's short name ("os", "json") as a user
   would write it.
5. Labels are not stored as chunk ids (they depend on the chunker): the benchmark grades a chunk 2
   when it belongs to the query's page and its heading path holds the section's heading, 1 when it
   belongs to the page only, 0 otherwise.

The set is saved to `tests/bench/data/python-doc-queries.jsonl` and reused by later runs, so
their figures are comparable; `python -m tests.bench.queries --rebuild` writes it again.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lxml.html

CORPUS_DIR = Path("/usr/share/doc/python3.11/html")
QUERIES_PATH = Path(__file__).resolve().parent / "data" / "python-doc-queries.jsonl"
SEED = 3
SIZE = 200
PER_PAGE = 2
MIN_DF = 3
MAX_DF_SHARE = 0.15

_WORD = re.compile(r"[A-Za-z][A-Za-z_']*[A-Za-z]|[A-Za-z]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_TEMPLATES = (
    "how does {heading} work with {words}?",
    "{heading}: what about {words}?",
    "where is {heading} explained, {words}",
    "{words} in {heading}?",
    "what should I know about {heading} and {words}?",
)
STOP_WORDS = frozenset(
    """a about above after again against all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each either else ever every few
    for from further had has have having here how however if in into is it its itself just less may
    might more most much must no nor not now of off on once one only or other otherwise our out over
    own per rather same see shall should since so some such than that the their them then there these
    they this those though through thus to too under until up upon use used uses using very via was
    way we well were what when where whether which while who whom whose why will with within without
    would yet you your given following example examples new returns return""".split()
)


@dataclass(frozen=True)
class Query:
    id: str
    query: str
    document_id: str  # the page's path under the corpus folder, e.g. "library/os.html"
    page_title: str  # the page's h1
    section: str  # the section's heading as displayed
    parent_section: str  # the enclosing h2 of an h3 section, else ""
    level: int
    words: tuple[str, ...]  # the first-sentence words the query uses
    template: int


@dataclass(frozen=True)
class Section:
    heading: str
    parent: str
    level: int
    first_paragraph: str


@dataclass(frozen=True)
class Page:
    document_id: str
    title: str
    sections: tuple[Section, ...]
    words: frozenset[str]


def normalize_heading(text: str) -> str:
    """Headings compared the same way on both sides: no pilcrow, single spaces, case-folded."""
    return _SPACES.sub(" ", text.replace("¶", " ")).strip().casefold()


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _heading_text(element: Any) -> str:
    # Sphinx appends a permalink anchor ("¶"); it is no part of the heading.
    parts = [element.text or ""]
    for child in element:
        if "headerlink" not in (child.get("class") or ""):
            parts.append(child.text_content())
        parts.append(child.tail or "")
    return _collapse("".join(parts))


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    seen: list[str] = []
    for word in words_of(text):
        if word not in STOP_WORDS and word not in seen:
            seen.append(word)
    return seen


def parse_page(path: Path, document_id: str) -> Page:
    tree: Any = lxml.html.document_fromstring(path.read_bytes())
    main_nodes = tree.xpath("//*[@role='main']")
    main = main_nodes[0] if main_nodes else tree
    h1 = main.find(".//h1")
    title = _heading_text(h1) if h1 is not None else ""
    sections: list[Section] = []
    parent = ""
    for heading in main.iter("h2", "h3"):
        level = int(heading.tag[1])
        text = _heading_text(heading)
        if level == 2:
            parent = text
        container = heading.getparent()
        paragraph = next((child for child in container if child.tag == "p"), None) if container is not None else None
        first = _collapse(paragraph.text_content()) if paragraph is not None else ""
        sections.append(Section(text, parent if level == 3 else "", level, first))
    return Page(document_id, title, tuple(sections), frozenset(words_of(main.text_content())))


def corpus_pages(corpus_dir: Path) -> list[Path]:
    return sorted(corpus_dir.rglob("*.html"))


def short_name(title: str) -> str:
    """The page's name as a user would type it: "os — Miscellaneous operating system interfaces" -> "os"."""
    return title.split(" — ", 1)[0].strip() if " — " in title else title


def first_sentence(paragraph: str) -> str:
    return _SENTENCE_END.split(paragraph, 1)[0]


def build_queries(corpus_dir: Path, size: int = SIZE, seed: int = SEED) -> list[Query]:
    pages = [parse_page(path, str(path.relative_to(corpus_dir))) for path in corpus_pages(corpus_dir)]
    df: Counter[str] = Counter()
    for page in pages:
        df.update(page.words)
    max_df = MAX_DF_SHARE * len(pages)
    heading_pages: Counter[str] = Counter()
    for page in pages:
        heading_pages.update({normalize_heading(s.heading) for s in page.sections})

    candidates: list[tuple[Page, Section, list[str]]] = []
    for page in pages:
        if not page.document_id.startswith("library/"):
            continue
        on_page = Counter(normalize_heading(s.heading) for s in page.sections)
        excluded = set(content_words(page.title))
        for section in page.sections:
            if not section.heading or on_page[normalize_heading(section.heading)] > 1:
                continue
            heading_words = set(words_of(section.heading))
            usable = [
                w for w in content_words(first_sentence(section.first_paragraph))
                if len(w) >= 4 and w.isalpha() and w not in heading_words and w not in excluded
                and MIN_DF <= df[w] <= max_df
            ]
            if len(usable) >= 2 and content_words(section.heading):
                candidates.append((page, section, usable))

    rng = random.Random(seed)
    rng.shuffle(candidates)
    chosen: list[tuple[Page, Section, list[str]]] = []
    per_page: Counter[str] = Counter()
    for page, section, usable in candidates:
        if per_page[page.document_id] < PER_PAGE:
            per_page[page.document_id] += 1
            chosen.append((page, section, usable))
        if len(chosen) == size:
            break
    order = {page.document_id: i for i, page in enumerate(pages)}
    chosen.sort(key=lambda c: (order[c[0].document_id], c[0].sections.index(c[1])))

    queries: list[Query] = []
    for number, (page, section, usable) in enumerate(chosen, start=1):
        picked = rng.sample(usable, k=min(len(usable), rng.choice((2, 3))))
        heading = " ".join(content_words(section.heading))
        if heading_pages[normalize_heading(section.heading)] > 1:
            heading = f"{short_name(page.title).lower()} {heading}"
        template = rng.randrange(len(_TEMPLATES))
        text = _TEMPLATES[template].format(heading=heading, words=" ".join(picked))
        queries.append(Query(
            id=f"q{number:03d}", query=text, document_id=page.document_id, page_title=page.title,
            section=section.heading, parent_section=section.parent, level=section.level,
            words=tuple(picked), template=template,
        ))
    return queries


def save_queries(queries: Iterable[Query], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(asdict(q), ensure_ascii=False, sort_keys=True) for q in queries]
    path.write_text("\n".join(lines) + "\n")


def load_queries(path: Path) -> list[Query]:
    queries = []
    for line in path.read_text().splitlines():
        if line.strip():
            raw = json.loads(line)
            raw["words"] = tuple(raw["words"])
            queries.append(Query(**raw))
    return queries


def load_or_build(path: Path, corpus_dir: Path, *, rebuild: bool = False) -> tuple[list[Query], bool]:
    """The saved set, or a new one written to ``path``; the flag says whether it was built now."""
    if path.exists() and not rebuild:
        return load_queries(path), False
    queries = build_queries(corpus_dir)
    save_queries(queries, path)
    return queries, True


# --- graded relevance and metrics -------------------------------------------------------------------


def grade(query: Query, document_id: str, heading_path: Sequence[str]) -> int:
    """2: a chunk of the query's section (or one of its subsections); 1: elsewhere on its page; 0: another page."""
    if document_id != query.document_id:
        return 0
    wanted = normalize_heading(query.section)
    return 2 if any(normalize_heading(h) == wanted for h in heading_path) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="Build (or show) the labelled query set of the issue-3 benchmark.")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--out", type=Path, default=QUERIES_PATH)
    parser.add_argument("--rebuild", action="store_true", help="write the set again even if it exists")
    args = parser.parse_args()
    queries, built = load_or_build(args.out, args.corpus, rebuild=args.rebuild)
    for q in queries[:10]:
        print(f"{q.id} {q.document_id} [{q.section}] -> {q.query}")
    print(f"{len(queries)} queries {'written to' if built else 'read from'} {args.out}")


if __name__ == "__main__":
    main()
