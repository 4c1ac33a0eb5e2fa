"""Structure-aware chunking: sections by heading, then blocks, sentences and pages, sized in embedding tokens."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from gyre_contracts import Chunk
from gyre_ingest.chunking import Encoding, Tokenizer, chunk_text
from gyre_ingest.formats.base import Page

Strategy = Literal["structure", "tokens"]


@dataclass(frozen=True)
class ChunkingConfig:
    """How a document is cut; sizes are in tokens of the embedding model's tokenizer (no special tokens)."""

    strategy: Strategy = "structure"
    size: int = 200  # hard maximum per chunk; leaves room in MiniLM's 254 for the heading prefix added at embed time
    overlap: int = 40  # "structure": whole trailing sentences carried into the next chunk of the same section
    min_size: int = 40  # "structure": a smaller open chunk is filled from an oversized next block, not left alone

    def __post_init__(self) -> None:
        if self.strategy not in ("structure", "tokens"):
            raise ValueError(f"strategy must be 'structure' or 'tokens', got {self.strategy!r}")
        if self.size <= 0 or not 0 <= self.overlap < self.size:
            raise ValueError(f"need size > 0 and 0 <= overlap < size, got size={self.size} overlap={self.overlap}")
        if not 0 <= self.min_size <= self.size:
            raise ValueError(f"need 0 <= min_size <= size, got min_size={self.min_size} size={self.size}")


def chunk_document(
    text: str, tokenizer: Tokenizer, config: ChunkingConfig, pages: Sequence[Page] = ()
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``config.size`` tokens, indexed 0..n-1 in document order.

    With "structure", a chunk lies inside one section (its heading path in ``heading_path``; heading
    lines themselves are not chunk text) and inside one page; ``text[c.start:c.end] == c.text``.
    """
    page_index = _PageIndex(pages)
    if config.strategy == "tokens":
        return [
            Chunk(
                index=c.index, text=c.text, start=c.start, end=c.end, token_count=c.token_count,
                page=page_index.number_at(c.start),
            )
            for c in chunk_text(text, tokenizer, config.size, config.overlap)
        ]

    counter = _TokenCounter(_token_offsets(text, tokenizer))
    emitter = _Emitter(text, tokenizer, config.size)
    for section in parse_sections(text):
        for page, blocks in _split_by_page(text, section.blocks, page_index):
            emitter.heading_path, emitter.page = section.heading_path, page
            packer = _Packer(text, tokenizer, config, counter, emitter.emit)
            for block in blocks:
                packer.add_block(block)
            packer.finish()
    return emitter.chunks()


# --- sentences ---------------------------------------------------------------------------------------

# A period after one of these does not end a sentence (lower-case, without the period). "etc." is left
# out on purpose: it ends a sentence far more often than not when a capital follows.
_ABBREVIATIONS = frozenset(
    """mr mrs ms mx dr prof sr jr st mt rev gen col lt sgt capt gov sen rep hon
    vs cf al fig figs eq eqs no nos vol vols pp p ch sec art ed eds approx ca est dept univ
    inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
    e.g i.e viz ex incl resp min max""".split()
)
_DOTTED = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")  # "U.S", "e.g", "Ph.D" (not "3.14" or "example.com")
# A whole run of end punctuation (never from inside one), closing quotes or brackets, white space, then the next
# sentence's first character. Linear time: each attempt starts only at a run's first character and the possessive
# quantifiers never give back, so no character is scanned twice. (The word before the punctuation used to be a
# lazy ``(\S*?)`` here, which re-scanned a long run of non-space characters from every position in it: quadratic.)
_SENTENCE_END = re.compile(r"""(?<![.!?…])([.!?…]++)["'”’)\]]*+(\s++)(?=\S)""")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans in ``text[start:end]``, trimmed of surrounding whitespace.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes or brackets) followed by white
    space and a capital, digit, quote or bracket; a period after a known abbreviation ("Dr.", "e.g."),
    a single letter (initials) or a dotted word ("U.S.") does not end one, and decimals ("3.14") never do.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    sentence_start = start
    # Matched on the slice so that a run of punctuation just before ``start`` does not hide one starting at it.
    for match in _SENTENCE_END.finditer(text[start:end]):
        following = text[start + match.end()]
        if not (following.isupper() or following.isdigit() or following in "\"'“‘([¿¡"):
            continue
        if match.group(1) == "." and _is_abbreviation(_word_before(text, start, start + match.start())):
            continue
        _append_trimmed(text, sentence_start, start + match.start(2), spans)
        sentence_start = start + match.end()
    _append_trimmed(text, sentence_start, end, spans)
    return spans


def _word_before(text: str, start: int, position: int) -> str:
    """The non-space characters just before ``position`` (not before ``start``).

    Linear over a whole split: each match's word lies between the white space that ended the previous
    match and this match's punctuation, so no character is walked over twice.
    """
    word_start = position
    while word_start > start and not text[word_start - 1].isspace():
        word_start -= 1
    return text[word_start:position]


def _is_abbreviation(word: str) -> bool:
    word = word.lstrip("\"'“‘([")
    return (len(word) == 1 and word.isalpha()) or bool(_DOTTED.fullmatch(word)) or word.lower() in _ABBREVIATIONS


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    start, end = _trim(text, start, end)
    if start < end:
        spans.append((start, end))


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# --- sections and blocks --------------------------------------------------------------------------------

BlockKind = Literal["paragraph", "list", "code"]


@dataclass
class Block:
    """A paragraph, a run of list items or a fenced code block, as offsets into the text."""

    kind: BlockKind
    start: int
    end: int
    item_starts: list[int] = field(default_factory=list)  # lists only: where each item begins


@dataclass
class Section:
    """The body under one heading (the heading line excluded), up to the next heading of any level."""

    heading_path: tuple[str, ...]
    blocks: list[Block] = field(default_factory=list)


# Fences and list items: possessive runs, so a long run of backticks, tildes or blanks is walked once.
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}+|~{3,}+)(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}+|~{3,}+)[ \t]*+")
_LIST_ITEM = re.compile(r"[ \t]*+(?:[-*+]|(\d{1,9})[.)])(?:[ \t]|$)")


def parse_sections(text: str) -> list[Section]:
    """Markdown-ish structure: ATX ``#`` headings (not inside code fences), blank-line paragraphs,
    ``-``/``*``/``+``/``1.`` list runs and fenced code blocks (``` or ~~~; unclosed runs to the end)."""
    sections = [Section(())]
    titles: list[tuple[int, str]] = []  # the open headings, outermost first: (level, title)
    block: Block | None = None
    fence: tuple[str, int] | None = None  # character and length of the open fence

    def close_block() -> None:
        nonlocal block
        if block is not None:
            sections[-1].blocks.append(block)
            block = None

    for start, end in _lines(text):
        line = text[start:end]
        if fence is not None and block is not None:
            block.end = end
            closing = _FENCE_CLOSE.fullmatch(line)
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= fence[1]:
                fence = None
                close_block()
            continue
        opening = _FENCE_OPEN.fullmatch(line)
        if opening and not (opening[1][0] == "`" and "`" in opening[2]):
            close_block()
            block, fence = Block("code", start, end), (opening[1][0], len(opening[1]))
            continue
        heading = atx_heading(line)
        if heading:
            close_block()
            level, title = heading
            while titles and titles[-1][0] >= level:
                titles.pop()
            titles.append((level, title.strip()))
            sections.append(Section(tuple(title for _, title in titles if title)))
            continue
        if not line.strip():
            close_block()
            continue
        item = _LIST_ITEM.match(line)
        # An ordered item other than "1." does not interrupt a paragraph (a wrapped line may start "2019. ").
        if item and not (block is not None and block.kind == "paragraph" and item[1] not in (None, "1")):
            if block is not None and block.kind == "list":
                block.item_starts.append(start)
                block.end = end
            else:
                close_block()
                block = Block("list", start, end, [start])
        elif block is not None:
            block.end = end  # a paragraph line, or a continuation line of the current list item
        else:
            block = Block("paragraph", start, end)
    close_block()
    return sections


def atx_heading(line: str) -> tuple[int, str] | None:
    """An ATX heading line's level and title (closing ``#`` run dropped), or None for any other line.

    Up to three spaces, one to six ``#``, then white space or the end of the line; the title is the rest
    without trailing blanks and without a closing run of ``#`` that follows a blank ("## Title ##").
    Scanned by hand, in linear time: a regex with a lazy title and an optional closing run backtracks
    quadratically on lines such as ``# a # # # ... b``.
    """
    indent = len(line) - len(line.lstrip(" "))
    if indent > 3:
        return None
    after_marks = len(line) - len(line[indent:].lstrip("#"))
    level = after_marks - indent
    if not 1 <= level <= 6:
        return None
    rest = line[after_marks:]
    if not rest:
        return level, ""
    if rest[0] not in " \t":
        return None
    title = rest.lstrip(" \t").rstrip(" \t")
    without_closing = title.rstrip("#")
    if without_closing != title and without_closing[-1:] in (" ", "\t"):
        title = without_closing.rstrip(" \t")
    return level, title


def _lines(text: str) -> Iterator[tuple[int, int]]:
    position = 0
    while position < len(text):
        newline = text.find("\n", position)
        end = len(text) if newline < 0 else newline
        yield position, end - 1 if end > position and text[end - 1] == "\r" else end
        position = end + 1


# --- pages ---------------------------------------------------------------------------------------------


class _PageIndex:
    def __init__(self, pages: Sequence[Page]) -> None:
        self.pages = sorted(pages, key=lambda p: p.start)
        self.starts = [p.start for p in self.pages]
        # Every page edge inside a block cuts it, so no chunk spans two pages.
        self.edges = sorted({p.start for p in self.pages} | {p.end for p in self.pages})

    def number_at(self, position: int) -> int | None:
        i = bisect.bisect_right(self.starts, position) - 1
        return self.pages[i].number if i >= 0 and position < self.pages[i].end else None

    def cut(self, start: int, end: int) -> list[tuple[int, int]]:
        inside = self.edges[bisect.bisect_right(self.edges, start) : bisect.bisect_left(self.edges, end)]
        bounds = [start, *inside, end]
        return list(pairwise(bounds))


def _split_by_page(
    text: str, blocks: list[Block], pages: _PageIndex
) -> Iterator[tuple[int | None, list[Block]]]:
    """Runs of (pieces of) blocks that lie on one page, in order."""
    run: list[Block] = []
    run_page: int | None = None
    for block in blocks:
        for start, end in pages.cut(block.start, block.end):
            start, end = _trim(text, start, end)
            if start >= end:
                continue
            piece = Block(block.kind, start, end, _items_within(block.item_starts, start, end))
            page = pages.number_at(start)
            if run and page != run_page:
                yield run_page, run
                run = []
            run.append(piece)
            run_page = page
    if run:
        yield run_page, run


def _items_within(item_starts: list[int], start: int, end: int) -> list[int]:
    if not item_starts:
        return []
    inside = [s for s in item_starts if start < s < end]
    return [start, *inside]


# --- packing -------------------------------------------------------------------------------------------


class _TokenCounter:
    """Tokens of any span, from the token offsets of the whole text (no re-encoding while packing).

    Exact for spans cut at white space or punctuation (the tokenizer never joins across those), which is
    where blocks and sentences are cut; the emitter re-encodes every chunk, so any other cut is still safe.
    """

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.starts = [o[0] for o in offsets]
        self.ends = [o[1] for o in offsets]

    def __call__(self, start: int, end: int) -> int:
        return max(0, bisect.bisect_right(self.ends, end) - bisect.bisect_left(self.starts, start))


Span = tuple[int, int, tuple[str, ...], int | None]  # start, end, heading path, page


class _Emitter:
    """Collects chunk spans, then re-encodes each so that none exceeds ``size`` tokens."""

    def __init__(self, text: str, tokenizer: Tokenizer, size: int) -> None:
        self.text, self.tokenizer, self.size = text, tokenizer, size
        self.spans: list[Span] = []
        self.heading_path: tuple[str, ...] = ()
        self.page: int | None = None

    def emit(self, start: int, end: int) -> None:
        start, end = _trim(self.text, start, end)
        if start < end:
            self.spans.append((start, end, self.heading_path, self.page))

    def chunks(self) -> list[Chunk]:
        out: list[Chunk] = []
        encodings = _encode_all(self.tokenizer, [self.text[s:e] for s, e, _, _ in self.spans])
        for (start, end, path, page), encoding in zip(self.spans, encodings, strict=True):
            for s, e, tokens in self._fitted(start, end, encoding.offsets):
                out.append(
                    Chunk(index=len(out), text=self.text[s:e], start=s, end=e, token_count=tokens,
                          heading_path=path, page=page)
                )
        return out

    def _fitted(self, start: int, end: int, offsets: list[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
        cut = offsets[self.size - 1][1] if len(offsets) > self.size else 0
        if not 0 < cut < end - start:
            yield start, end, len(offsets)
            return
        # Only reached when a cut fell inside a word (token windows, page edges): cut again here.
        for s, e in ((start, start + cut), _trim(self.text, start + cut, end)):
            if s < e:
                yield from self._fitted(s, e, self.tokenizer.encode(self.text[s:e], add_special_tokens=False).offsets)


def _encode_all(tokenizer: Tokenizer, texts: list[str]) -> list[Encoding]:
    """Encodings of ``texts``, in parallel through ``encode_batch`` when the tokenizer has it."""
    encode_batch = getattr(tokenizer, "encode_batch", None)
    if encode_batch is not None:
        return list(encode_batch(texts, add_special_tokens=False))
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


_PIECE_CHARS = 8192  # long enough that batching overhead is small, short enough to spread over cores


def _token_offsets(text: str, tokenizer: Tokenizer) -> list[tuple[int, int]]:
    """Token offsets of the whole text, encoded in paragraph-aligned pieces so that cores share the work."""
    bounds = [0]
    while len(text) - bounds[-1] > _PIECE_CHARS:
        cut = text.find("\n\n", bounds[-1] + _PIECE_CHARS)
        if cut < 0:
            break
        bounds.append(cut + 1)  # both sides of a blank line are white space: no token spans it
    bounds.append(len(text))
    pieces = list(pairwise(bounds))
    offsets: list[tuple[int, int]] = []
    for (base, _), encoding in zip(pieces, _encode_all(tokenizer, [text[s:e] for s, e in pieces]), strict=True):
        offsets.extend((base + s, base + e) for s, e in encoding.offsets)
    return offsets


UnitKind = Literal["block", "sentence", "rigid"]


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    kind: UnitKind  # "block": a whole block; "sentence": prose; "rigid": code lines, token windows
    block: Block | None = None


class _Packer:
    """Packs the blocks of one section on one page into chunks, greedily, carrying trailing sentences over."""

    def __init__(
        self,
        text: str,
        tokenizer: Tokenizer,
        config: ChunkingConfig,
        count: _TokenCounter,
        emit: Callable[[int, int], None],
    ) -> None:
        self.text, self.tokenizer, self.config, self.count, self.emit = text, tokenizer, config, count, emit
        self.units: list[_Unit] = []  # the open chunk: carried-over units first, then fresh ones
        self.tokens = 0
        self.fresh_units = 0
        self.fresh_tokens = 0

    def add_block(self, block: Block) -> None:
        size = self.config.size
        tokens = self.count(block.start, block.end)
        if self.tokens + tokens <= size:
            self._append(_Unit(block.start, block.end, tokens, "block", block))
            return
        # A block that fits a chunk alone is never split; an oversized one only waits for a fresh chunk
        # when the open chunk is already big enough to stand on its own.
        if self.fresh_units and (tokens <= size or self.fresh_tokens >= self.config.min_size):
            self._flush(carry=True)
        if tokens <= size:
            self._trim_carry(size - tokens)
            self._append(_Unit(block.start, block.end, tokens, "block", block))
            return
        for unit in self._split(block):
            self._add_unit(unit)

    def finish(self) -> None:
        self._flush(carry=False)

    def _add_unit(self, unit: _Unit) -> None:
        size = self.config.size
        if self.tokens + unit.tokens <= size:
            self._append(unit)
            return
        if unit.tokens > size:
            # One sentence (or code line) too long for any chunk: token windows, the last one left open.
            self._flush(carry=False)
            windows = chunk_text(self.text[unit.start : unit.end], self.tokenizer, size, self.config.overlap)
            for window in windows[:-1]:
                self.emit(unit.start + window.start, unit.start + window.end)
            if windows:
                last = windows[-1]
                self._append(_Unit(unit.start + last.start, unit.start + last.end, last.token_count, "rigid"))
            return
        if self.fresh_units:
            self._flush(carry=True)
        self._trim_carry(size - unit.tokens)
        self._append(unit)

    def _append(self, unit: _Unit) -> None:
        self.units.append(unit)
        self.tokens += unit.tokens
        self.fresh_units += 1
        self.fresh_tokens += unit.tokens

    def _flush(self, carry: bool) -> None:
        if self.fresh_units:
            self.emit(self.units[0].start, self.units[-1].end)
        self.units = self._carry() if carry and self.fresh_units else []
        self.tokens = sum(u.tokens for u in self.units)
        self.fresh_units = self.fresh_tokens = 0

    def _carry(self) -> list[_Unit]:
        """Whole trailing sentences of the chunk just emitted, up to ``overlap`` tokens, never all of it."""
        carried: list[_Unit] = []
        budget = self.config.overlap
        for unit in reversed(self.units):
            sentences = self._sentences(unit)
            if sentences is None:
                break  # code and token windows are not carried: they would start the next chunk mid-block
            for sentence in reversed(sentences):
                if sentence.tokens > budget or sentence.start <= self.units[0].start:
                    return carried[::-1]
                carried.append(sentence)
                budget -= sentence.tokens
        return carried[::-1]

    def _trim_carry(self, room: int) -> None:
        while self.units and self.tokens > room:
            self.tokens -= self.units.pop(0).tokens

    def _sentences(self, unit: _Unit) -> list[_Unit] | None:
        if unit.kind == "sentence":
            return [unit]
        if unit.kind == "rigid" or unit.block is None or unit.block.kind == "code":
            return None
        return self._split(unit.block)

    def _split(self, block: Block) -> list[_Unit]:
        """A block as its smallest packable units: sentences (per list item), or lines of code."""
        if block.kind == "code":
            return [
                _Unit(start, end, self.count(start, end), "rigid")
                for start, end in _lines_within(self.text, block.start, block.end)
            ]
        items = block.item_starts or [block.start]
        bounds = [*items, block.end]
        return [
            _Unit(start, end, self.count(start, end), "sentence")
            for item_start, item_end in pairwise(bounds)
            for start, end in split_sentences(self.text, item_start, item_end)
        ]


def _lines_within(text: str, start: int, end: int) -> list[tuple[int, int]]:
    lines: list[tuple[int, int]] = []
    for line_start, line_end in _lines(text[start:end]):
        s, e = _trim(text, start + line_start, start + line_end)
        if s < e:
            lines.append((s, e))
    return lines
