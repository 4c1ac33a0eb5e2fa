"""Synthetic golden items from a corpus's own sentences and headings, with no LLM: seeded and reproducible.

Four kinds, each item tagged with its kind:

- "definition": a definitional sentence ("X is a ...", "X returns ...", "X provides ...") becomes
  "What is X?" / "What does X return?"; a term line and the paragraph after it, an API signature
  followed by "Return ..." or a command-line option followed by its description, becomes "What does
  f() return?" / "What does the --opt option do?". The sentence is the reference. A subject that
  could be many things is led by the page's short title ("In configparser, what does options() return?").
- "summary": a manual page's NAME line ("git-stash - Stash the changes ...") becomes "What is
  git-stash used for?".
- "heading": a heading that names one section of one document, and the first sentence of that
  section, become "What does the documentation say about <heading>?" (a heading that is itself a
  question, as on FAQ pages, is asked as it is).
- "unanswerable": fixed question templates about off-domain topics none of whose words occur
  anywhere in the corpus.

must_include of the answerable kinds holds 1-2 words of the reference that are not in the question
(nor share a stem with it) and that tell most about the document (tf-idf), so an answer that only
repeats the question cannot pass. A question or reference found in two documents is left out: it
would have no single relevant document.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from gyre_runtime.state.golden_sets import GoldenItem


@dataclass(frozen=True)
class SourceChunk:
    """A piece of a document as the generator sees it: plain text under its heading path."""

    document_id: str
    chunk_id: str
    title: str
    heading_path: tuple[str, ...]
    text: str


# Sentences outside these bounds are fragments, or too long to be one short answer.
MIN_SENTENCE_CHARS = 40
MAX_SENTENCE_CHARS = 300
MAX_SUBJECT_WORDS = 6
# A subject word found in at most this share of the documents names something specific.
MAX_DISTINCTIVE_DF_SHARE = 0.05

UNANSWERABLE_TEMPLATES = (
    "How should I look after {topic}?",
    "How much does {topic} usually cost?",
    "What are the most common faults of {topic}?",
    "How long does {topic} typically last?",
    "Which tools do I need to mend {topic}?",
    "Where can I buy {topic} second-hand?",
    "What is the best season to buy {topic}?",
    "How do I clean {topic} without damaging it?",
)
# Off-domain topics: a topic is used only when none of its words (nor their plurals) is in the corpus.
UNANSWERABLE_TOPICS = (
    "the carburettor of a 1967 Mustang",
    "a sourdough starter",
    "a bonsai juniper",
    "a saltwater aquarium",
    "the bridge of a violin",
    "a wood-burning stove",
    "a mechanical wristwatch",
    "a beehive",
    "a canoe paddle",
    "an espresso grinder",
    "a velvet curtain",
    "a marble countertop",
    "a leather saddle",
    "a pottery kiln",
    "a tandem bicycle",
    "a snorkelling mask",
    "a wool cardigan",
    "a chimney flue",
    "a greenhouse heater",
    "a telescope eyepiece",
    "an orchid greenhouse",
    "a banjo",
    "a sailboat rudder",
    "a lawnmower blade",
    "a hiking boot sole",
    "a harpsichord",
    "a gingerbread house",
    "a tortoise enclosure",
    "a macrame hanger",
    "a kayak spraydeck",
    "a ceramic teapot",
    "a taxidermy owl",
    "a snowboard binding",
    "a goldfish pond",
    "a mahogany wardrobe",
    "a tuba mouthpiece",
    "a vintage gramophone",
    "a sheepskin rug",
    "a bamboo steamer",
    "a parquet floor",
    "a horse bridle",
    "a crochet blanket",
    "a trampoline",
    "a scuba regulator",
    "a pizza oven",
    "a chandelier",
    "a rosewood ukulele",
    "a birdbath",
    "a wicker armchair",
    "a diesel tractor",
)

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else even ever every few for
    from further had has have having he her here hers herself him himself his how i if in into is it its itself
    just least less may me might more most much must my myself neither no nor not now of off on once one only
    or other others our ours ourselves out over own same shall she should since so some such than that the
    their theirs them themselves then there these they this those through thus to too under until up upon us
    very was we were what when where whether which while who whom whose why will with within without would
    yet you your yours yourself yourselves""".split()
)
# Words too general to show that an answer knows the fact, whatever their frequency.
GENERIC_WORDS = frozenset(
    """return returns returned returning value values object objects function functions method methods class
    classes module modules argument arguments parameter parameters default defaults used using use uses given
    following specified specific provide provides provided example examples instance instances type types
    case cases number numbers string strings name names data list lists item items result results called
    call calls true false none option options command commands file files also like well need needs
    different various several possible usually always often never same new first last many made make makes
    within without whether other another each every except effect know known work works appropriate describes
    describe sometimes already still rather instead simply actually otherwise currently""".split()
)
# A sentence starting with one of these leans on the sentence before it.
_DEPENDENT_STARTS = frozenset(
    """it this that these those there here which what who whose each all both one some such if when while
    however also otherwise thus then so but and or however instead see note for in on at by with as""".split()
)
_GENERIC_HEADINGS = frozenset(
    """name synopsis description options examples example notes note see also bugs author authors
    configuration discussion introduction overview summary functions classes constants exceptions usage
    details reference""".split()
)

_WORD = re.compile(r"[a-z0-9]+")
# Words, hyphenated ones whole; not the stem of a contraction ("haven" of "haven't").
_TERM = re.compile(r"(?<![\w'’-])[A-Za-z][A-Za-z-]*[A-Za-z](?![\w'’-])")
_SECTION_NUMBER = re.compile(r"^(?:\d+\.)+\d*\s+|^\d+\s+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(`])")
_ABBREVIATION_END = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|approx|incl|resp|Mr|Dr|No|[A-Z])\.$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_DEFINITION = re.compile(
    r"^(?P<subject>[A-Za-z_][\w.()\-' ]*?)\s+(?P<verb>is|are)\s+(?P<rest>(?:a|an|the|one of)\s.+)$"
)
_ACTION = re.compile(r"^(?P<subject>[A-Za-z_][\w.()\-' ]*?)\s+(?P<verb>returns|provides)\s+(?P<rest>.+)$")
_SIGNATURE = re.compile(r"^(?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\(.{0,80}\)$")
_OPTION_LINE = re.compile(r"-{1,2}[A-Za-z0-9][^\n]{0,80}")
_OPTION_NAME = re.compile(r"(?<![\w-])--?[A-Za-z0-9][\w-]*")
_NAME_LINE = re.compile(r"(?P<name>[\w.+-]{2,40}) - (?P<summary>[^\n]{10,200})")
_RETURN_SENTENCE = re.compile(r"^Returns?\s+(?P<rest>.+)$")
_CODE_TOKEN = re.compile(r"\w[._]\w|\w\(\)|^--?\w|[a-z][A-Z]|^[A-Z]{2,}$")
# A sentence that points at text around it ("listed below") says nothing on its own.
_POINTS_ELSEWHERE = re.compile(r"\b(?:below|above|following|as follows|this section|previous section)\b", re.I)
_CODE_MARKS = re.compile(r"```|>>>|[{};\\]|==|=>|->|\$\s|\s[=<>]\s")


def corpus_vocabulary(chunks: Iterable[SourceChunk]) -> dict[str, int]:
    """Each lower-cased word (letters and digits) of the chunks' text, with the number of documents holding it."""
    documents: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks:
        documents[chunk.document_id].update(_WORD.findall(chunk.text.lower()))
    frequency: dict[str, int] = defaultdict(int)
    for words in documents.values():
        for word in words:
            frequency[word] += 1
    return dict(frequency)


def synthesize(
    chunks: Sequence[SourceChunk], n: int, *, seed: int = 0, unanswerable_share: float = 0.2
) -> list[GoldenItem]:
    """Up to ``n`` items, about ``unanswerable_share`` of them unanswerable; the same inputs give the same items.

    Fewer come back when the corpus offers fewer candidates (the shortfall is not made up with
    unanswerable items, which would skew the share). Answerable items are spread over the
    documents (one per document before a second from any) and mix the kinds.
    """
    if n < 0 or not 0.0 <= unanswerable_share <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= unanswerable_share <= 1, got n={n}, share={unanswerable_share}")
    rng = random.Random(seed)
    statistics = _CorpusStatistics.of(chunks)
    unanswerable_wanted = round(n * unanswerable_share)
    answerable = _pick_spread(_answerable_candidates(chunks, statistics), n - unanswerable_wanted, rng)
    unanswerable = _unanswerable(statistics.vocabulary, unanswerable_wanted, rng)
    questions = {item.question for item in answerable}
    return answerable + [item for item in unanswerable if item.question not in questions]


# --- answerable candidates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    kind: str
    document_id: str
    question: str
    reference: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class _CorpusStatistics:
    vocabulary: dict[str, int]  # word -> documents holding it
    frequencies: dict[str, Counter[str]]  # document id -> word -> occurrences
    unique_headings: set[str]

    @classmethod
    def of(cls, chunks: Sequence[SourceChunk]) -> _CorpusStatistics:
        frequencies: dict[str, Counter[str]] = defaultdict(Counter)
        for chunk in chunks:
            frequencies[chunk.document_id].update(_WORD.findall(chunk.text.lower()))
        return cls(corpus_vocabulary(chunks), dict(frequencies), _headings_of_one_document(chunks))

    @property
    def documents(self) -> int:
        return len(self.frequencies)

    def is_distinctive(self, word: str) -> bool:
        """A code name, or a word found in few documents: a subject that names one thing."""
        if _CODE_TOKEN.search(word):
            return True
        max_df = max(1, int(self.documents * MAX_DISTINCTIVE_DF_SHARE))
        tokens = [token for token in _WORD.findall(word.lower()) if token not in STOP_WORDS]
        return any(len(token) >= 3 and self.vocabulary.get(token, 0) <= max_df for token in tokens)

    def weight(self, document_id: str, word: str) -> float:
        """tf-idf: high for what the document is about, low for words every page uses."""
        tf = self.frequencies.get(document_id, Counter()).get(word, 0)
        df = self.vocabulary.get(word, 0)
        if tf == 0 or df == 0:
            return 0.0
        return (1.0 + math.log(tf)) * math.log((1 + self.documents) / df)


def _answerable_candidates(chunks: Sequence[SourceChunk], statistics: _CorpusStatistics) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    seen_sections: set[tuple[str, tuple[str, ...]]] = set()
    for chunk in chunks:
        paragraphs = list(_prose_paragraphs(chunk.text))
        candidates.extend(_definitions(chunk, paragraphs, statistics))
        section = (chunk.document_id, chunk.heading_path)
        if section not in seen_sections:  # only a section's first chunk holds its first sentence
            seen_sections.add(section)
            heading = _heading_candidate(chunk, paragraphs, statistics)
            if heading is not None:
                candidates.append(heading)
    # A question or a reference found in two documents has no single right source: no copy is kept.
    sources: dict[str, set[str]] = defaultdict(set)
    for candidate in candidates:
        sources[candidate.question.lower()].add(candidate.document_id)
        sources[candidate.reference.lower()].add(candidate.document_id)
    kept: list[_Candidate] = []
    taken: set[str] = set()
    for candidate in candidates:
        key = candidate.question.lower()
        if len(sources[key]) == 1 and len(sources[candidate.reference.lower()]) == 1 and key not in taken:
            taken.add(key)
            kept.append(candidate)
    return kept


def _definitions(chunk: SourceChunk, paragraphs: list[str], statistics: _CorpusStatistics) -> Iterator[_Candidate]:
    if chunk.heading_path and chunk.heading_path[-1].strip().lower() == "name":
        yield from _man_page_name(chunk, paragraphs, statistics)
        return
    previous = ""
    options: list[str] = []  # the option lines just before this paragraph: "-n", "--dry-run"
    for paragraph in paragraphs:
        sentences = _sentences(paragraph)
        # A term line (an API signature, a command-line option) and the paragraph after it: its definition.
        signature = _SIGNATURE.fullmatch(previous) if "\n" not in previous else None
        option = _option_name(options)
        for position, sentence in enumerate(sentences):
            if not _usable_sentence(sentence):
                continue
            question: str | None
            if position == 0 and signature is not None and _RETURN_SENTENCE.match(sentence):
                question = _in_context(f"what does {signature['name']}() return?", signature["name"], chunk.title)
            elif position == 0 and option is not None and sentence.split()[0].lower() not in _DEPENDENT_STARTS:
                question = _in_context(f"what does the {option} option do?", option, chunk.title)
            else:
                question = _definition_question(sentence, chunk.title, statistics)
            if question is None:
                continue
            terms = _answer_terms(sentence, question, chunk.document_id, statistics)
            if terms:
                yield _Candidate("definition", chunk.document_id, question, sentence, terms)
        options = [*options, paragraph] if "\n" not in paragraph and _OPTION_LINE.fullmatch(paragraph) else []
        previous = paragraph


def _option_name(lines: list[str]) -> str | None:
    """The first long name among option lines ("-A", "--all", "--no-ignore-removal": "--all"), else the first name."""
    names: list[str] = [name for line in lines for name in _OPTION_NAME.findall(line)]
    long_names = [name for name in names if name.startswith("--") and len(name) > 3]
    return (long_names or names)[0] if names else None


def _man_page_name(chunk: SourceChunk, paragraphs: list[str], statistics: _CorpusStatistics) -> Iterator[_Candidate]:
    """A manual page's NAME line, "git-stash - Stash the changes ...": what the named thing is for."""
    for paragraph in paragraphs[:1]:
        line = _NAME_LINE.fullmatch(paragraph)
        if line is None:
            continue
        question = f"What is {line['name']} used for?"
        terms = _answer_terms(line["summary"], question, chunk.document_id, statistics)
        if terms:
            yield _Candidate("summary", chunk.document_id, question, paragraph, terms)


def _definition_question(sentence: str, title: str, statistics: _CorpusStatistics) -> str | None:
    match = _DEFINITION.match(sentence) or _ACTION.match(sentence)
    if match is None:
        return None
    subject = match["subject"].strip()
    words = subject.split()
    if not 1 <= len(words) <= MAX_SUBJECT_WORDS or words[0].lower() in _DEPENDENT_STARTS:
        return None
    if words[-1].lower() in STOP_WORDS or subject.count("(") != subject.count(")"):
        return None
    if not any(statistics.is_distinctive(word) for word in words):
        return None
    if words[0] in ("The", "A", "An"):
        words[0] = words[0].lower()
    subject = " ".join(words)
    verb = match["verb"]
    if verb == "returns":
        question = f"what does {subject} return?"
    elif verb == "provides":
        question = f"what does {subject} provide?"
    else:
        question = f"what {verb} {subject}?"
    return _in_context(question, subject, title)


def _in_context(question: str, subject: str, title: str) -> str:
    """The question, led by the page's short title when the subject alone could be many things.

    "What does options() return?" has an answer in every module with an options(); "In configparser,
    what does options() return?" has one. A dotted subject ("os.path.join") already says where.
    """
    short = _short_title(title)
    if "." in subject or not short or short.lower() in question.lower():
        return question[0].upper() + question[1:]
    return f"In {short}, {question}"


def _short_title(title: str) -> str:
    """A page title's first part without section numbers: "os.path — Common ... — Python 3.11" -> "os.path"."""
    first = _SECTION_NUMBER.sub("", re.split(r"\s+[—–|]\s+|\(\d\)", title, maxsplit=1)[0]).strip()
    return first if 0 < len(first) <= 40 and len(first.split()) <= 4 else ""


def _heading_candidate(chunk: SourceChunk, paragraphs: list[str], statistics: _CorpusStatistics) -> _Candidate | None:
    if not chunk.heading_path:
        return None
    heading = _SECTION_NUMBER.sub("", " ".join(chunk.heading_path[-1].split()))
    if heading.isupper():  # manual pages shout their headings; the question need not
        heading = heading.capitalize()
    if not 4 <= len(heading) <= 100 or heading.lower() in _GENERIC_HEADINGS:
        return None
    if " ".join(chunk.heading_path[-1].split()).lower() not in statistics.unique_headings:
        return None
    # A heading that asks a question (FAQ pages) is the question; others are asked about, on their page
    # when the heading is a common phrase ("Available Functions").
    if heading.endswith("?"):
        if len(heading.split()) < 4:
            return None
        question = heading
    elif any(statistics.is_distinctive(word) for word in heading.split()):
        question = f"What does the documentation say about {heading}?"
    else:
        question = _in_context(f"what does the documentation say about {heading}?", heading, chunk.title)
    for paragraph in paragraphs[:3]:
        sentences = _sentences(paragraph)
        if sentences and _usable_sentence(sentences[0]):
            terms = _answer_terms(sentences[0], question, chunk.document_id, statistics)
            return _Candidate("heading", chunk.document_id, question, sentences[0], terms[:1]) if terms else None
    return None


def _headings_of_one_document(chunks: Sequence[SourceChunk]) -> set[str]:
    """Lower-cased last headings that occur in exactly one document: "Examples" names a section of many."""
    documents: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks:
        if chunk.heading_path:
            documents[" ".join(chunk.heading_path[-1].split()).lower()].add(chunk.document_id)
    return {heading for heading, where in documents.items() if len(where) == 1}


def _answer_terms(
    reference: str, question: str, document_id: str, statistics: _CorpusStatistics
) -> tuple[str, ...]:
    """1-2 words of the reference that the question lacks, the most telling in the document first."""
    asked = {word for word in _WORD.findall(question.lower()) if len(word) >= 3}
    found: dict[str, str] = {}
    first_word = reference.split()[0] if reference.split() else ""
    for term in _TERM.findall(reference):
        lower = term.lower()
        # A capital that only starts the sentence ("Turn on rename detection") looks rarer than it is.
        if term == first_word and term[1:].islower():
            continue
        if len(term) < 4 or lower in STOP_WORDS or lower in GENERIC_WORDS or lower in found:
            continue
        # "returned" answers "What does f return?" as little as "return" does: no shared stems either.
        if any(lower.startswith(word[:5]) or word.startswith(lower[:5]) for word in asked if len(word) >= 4):
            continue
        if any(part in asked for part in _WORD.findall(lower)):
            continue
        found[lower] = term
    # Stable sort: equal weights keep the sentence's order.
    ranked = sorted(found, key=lambda lower: -max(statistics.weight(document_id, part) for part in lower.split("-")))
    wanted = 2 if len(ranked) >= 4 else 1
    return tuple(found[lower] for lower in ranked[:wanted])


# --- text ---------------------------------------------------------------------------------------------


def _prose_paragraphs(text: str) -> Iterator[str]:
    """Blank-line separated paragraphs without fenced code and heading lines, list markers stripped."""
    in_fence = False
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            lines = []
            continue
        if in_fence:
            continue
        if not stripped or stripped.startswith("#"):
            if lines:
                yield "\n".join(lines)
            lines = []
            continue
        lines.append(_LIST_MARKER.sub("", line).strip())


def _sentences(paragraph: str) -> list[str]:
    pieces = _SENTENCE_BREAK.split(" ".join(paragraph.split()))
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION_END.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def _usable_sentence(sentence: str) -> bool:
    # A question or an exclamation is no reference answer.
    if not MIN_SENTENCE_CHARS <= len(sentence) <= MAX_SENTENCE_CHARS or not sentence.endswith("."):
        return False
    if _CODE_MARKS.search(sentence) or _POINTS_ELSEWHERE.search(sentence):
        return False
    # Prose is mostly letters; a sentence thick with symbols is code or a table row.
    symbols = sum(1 for char in sentence if not (char.isalnum() or char.isspace() or char in ".,:'\"()-"))
    return symbols <= len(sentence) * 0.05


# --- selection ------------------------------------------------------------------------------------------


def _pick_spread(candidates: list[_Candidate], wanted: int, rng: random.Random) -> list[GoldenItem]:
    """A seeded choice that takes one candidate per document in turn, alternating kinds within a document."""
    if wanted <= 0:
        return []
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    by_document: dict[str, dict[str, list[_Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in shuffled:
        by_document[candidate.document_id][candidate.kind].append(candidate)
    queues = [_interleave(list(kinds.values())) for kinds in by_document.values()]
    chosen: list[_Candidate] = []
    depth = 0
    while len(chosen) < wanted and any(depth < len(queue) for queue in queues):
        chosen.extend(queue[depth] for queue in queues if depth < len(queue))
        depth += 1
    return [_item(candidate) for candidate in chosen[:wanted]]


def _interleave(lists: list[list[_Candidate]]) -> list[_Candidate]:
    longest = max((len(values) for values in lists), default=0)
    return [values[i] for i in range(longest) for values in lists if i < len(values)]


def _item(candidate: _Candidate) -> GoldenItem:
    return GoldenItem(
        id=_item_id(candidate.question),
        question=candidate.question,
        answer=candidate.reference,
        must_include=candidate.terms,
        relevant=(candidate.document_id,),
        origin="synthetic",
        tags=(candidate.kind,),
    )


def _item_id(question: str) -> str:
    return "synthetic-" + hashlib.sha256(question.encode()).hexdigest()[:12]


# --- unanswerable ---------------------------------------------------------------------------------------


def _absent_topics(vocabulary: dict[str, int]) -> list[str]:
    def absent(word: str) -> bool:
        forms = {word, f"{word}s", f"{word}es", word.removesuffix("s")}
        return not any(form in vocabulary for form in forms)

    return [
        topic for topic in UNANSWERABLE_TOPICS
        if all(absent(word) for word in _WORD.findall(topic.lower()) if word not in STOP_WORDS)
    ]


def _unanswerable(vocabulary: dict[str, int], wanted: int, rng: random.Random) -> list[GoldenItem]:
    """``wanted`` questions from the absent topics, each topic once before any topic twice."""
    if wanted <= 0:
        return []
    topics = _absent_topics(vocabulary)
    rng.shuffle(topics)
    offsets = [rng.randrange(len(UNANSWERABLE_TEMPLATES)) for _ in topics]
    questions: list[str] = []
    for round_number in range(len(UNANSWERABLE_TEMPLATES)):
        for topic, offset in zip(topics, offsets, strict=True):
            template = UNANSWERABLE_TEMPLATES[(offset + round_number) % len(UNANSWERABLE_TEMPLATES)]
            questions.append(template.format(topic=topic))
    return [
        GoldenItem(
            id=_item_id(question), question=question, answerable=False, origin="synthetic", tags=("unanswerable",)
        )
        for question in questions[:wanted]
    ]
