"""Which candidates become golden items, seeded: spread over documents and kinds; and the
unanswerable questions, about topics the corpus never mentions."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

from gyre_runtime.state.golden_sets import GoldenItem
from gyre_runtime.state.golden_synth.candidates import Candidate
from gyre_runtime.state.golden_synth.text import STOP_WORDS, WORD

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


def pick_spread(candidates: list[Candidate], wanted: int, rng: random.Random) -> list[GoldenItem]:
    """A seeded choice that takes one candidate per document in turn, alternating kinds within a document."""
    if wanted <= 0:
        return []
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    by_document: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in shuffled:
        by_document[candidate.document_id][candidate.kind].append(candidate)
    queues = [_interleave(list(kinds.values())) for kinds in by_document.values()]
    chosen: list[Candidate] = []
    depth = 0
    while len(chosen) < wanted and any(depth < len(queue) for queue in queues):
        chosen.extend(queue[depth] for queue in queues if depth < len(queue))
        depth += 1
    return [_item(candidate) for candidate in chosen[:wanted]]


def _interleave(lists: list[list[Candidate]]) -> list[Candidate]:
    longest = max((len(values) for values in lists), default=0)
    return [values[i] for i in range(longest) for values in lists if i < len(values)]


def _item(candidate: Candidate) -> GoldenItem:
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
        if all(absent(word) for word in WORD.findall(topic.lower()) if word not in STOP_WORDS)
    ]


def unanswerable_items(vocabulary: dict[str, int], wanted: int, rng: random.Random) -> list[GoldenItem]:
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
