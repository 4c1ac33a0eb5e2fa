"""What each event field may hold: the constrained types every contract uses, and the limits behind them.

The limits are facts of the platform, kept here once: the gateway's request models use the same
constants, so a value it accepts is one every service decodes, and a publisher that bypasses the
gateway meets the same rules when a service decodes its event (the consumer dead-letters what breaks
them, with the decoder's reason naming the field).

Large bodies (a document's text or content, a chat message, an answer) have no cap of their own here:
the bus's ``max_payload`` bounds the whole event, and the gateway checks the settings that depend on the
deployment (GYRE_MAX_DOCUMENT_CHARS, GYRE_MAX_INPUT_CHARS, GYRE_MAX_TOKENS_LIMIT).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec


def _whole(characters: str, *, empty: bool = False) -> str:
    """A pattern the whole string must match: one or more (or zero or more) of ``characters``.

    ``$`` alone lets a final newline through in Python's ``re`` (which msgspec and jsonschema use);
    ``(?!\\n)`` closes that gap and means nothing to an ECMAScript engine, where ``$`` is the end.
    """
    return f"^{characters}{'*' if empty else '+'}$(?!\\n)"


def _id_meta(max_length: int, pattern: str, description: str) -> msgspec.Meta:
    """The constraints of a required id: not empty, at most ``max_length`` characters, matching ``pattern``."""
    return msgspec.Meta(min_length=1, max_length=max_length, pattern=pattern, description=description)


# A token of a NATS subject and a safe piece of a KV key: no dots, wildcards, spaces or controls.
SUBJECT_TOKEN_CHARACTERS = "[A-Za-z0-9_-]"
# Any printable text on one line: what an id chosen by a user may hold (KV keys encode it).
PRINTABLE_CHARACTERS = "[^\\x00-\\x1f\\x7f]"

TENANT_ID_MAX_LENGTH = 64
TENANT_ID_PATTERN = _whole(SUBJECT_TOKEN_CHARACTERS)
DOCUMENT_ID_MAX_LENGTH = 256
DOCUMENT_ID_PATTERN = _whole(PRINTABLE_CHARACTERS)
REQUEST_ID_MAX_LENGTH = 128
REQUEST_ID_PATTERN = _whole(SUBJECT_TOKEN_CHARACTERS)
OPTIONAL_REQUEST_ID_PATTERN = _whole(SUBJECT_TOKEN_CHARACTERS, empty=True)
IDENTIFIER_MAX_LENGTH = 128
IDENTIFIER_PATTERN = _whole("[A-Za-z0-9_.:-]")
OPTIONAL_IDENTIFIER_PATTERN = _whole("[A-Za-z0-9_.:-]", empty=True)
NAME_MAX_LENGTH = 256
NAME_PATTERN = _whole(PRINTABLE_CHARACTERS, empty=True)
CONTENT_TYPE_MAX_LENGTH = 255
TITLE_MAX_LENGTH = 1000
SHORT_TEXT_MAX_LENGTH = 1000

# Retrieval: chunks per search or per answer's context.
TOP_K_MAX = 50
# Sampling: keep the k likeliest tokens (0 keeps them all).
SAMPLING_TOP_K_MAX = 1000
# Far above any model's context: a bound against absurd numbers, not a policy (GYRE_MAX_TOKENS_LIMIT is).
MAX_TOKENS_CEILING = 1_000_000
STOP_SEQUENCES_MAX = 4
STOP_SEQUENCE_MAX_CHARS = 256
# What the backends and the vector stores hold as an integer (msgspec, Qdrant): signed 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A seed travels as a signed 64-bit integer (msgspec, the backends); OpenAI's own bound.
SEED_MIN, SEED_MAX = INT64_MIN, INT64_MAX
FEEDBACK_TEXT_MAX_CHARS = 20_000
EMBED_MAX_INPUTS = 2048
EMBED_INPUT_MAX_CHARS = 100_000

# A document's metadata is copied into every chunk and every search hit: kept small so that a
# document's chunks, and a search reply, stay far from the bus's message size.
METADATA_MAX_KEYS = 64
METADATA_KEY_MAX_CHARS = 128
METADATA_MAX_BYTES = 8 * 1024
METADATA_MAX_DEPTH = 4
METADATA_STRING_MAX_CHARS = 2 * 1024

TenantId = Annotated[
    str,
    _id_meta(TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN, "A tenant: letters, digits, `_` and `-` (a NATS subject token)."),
]
DocumentId = Annotated[
    str, _id_meta(DOCUMENT_ID_MAX_LENGTH, DOCUMENT_ID_PATTERN, "A document id: printable text on one line.")
]
RequestId = Annotated[
    str,
    _id_meta(
        REQUEST_ID_MAX_LENGTH,
        REQUEST_ID_PATTERN,
        "A request id: letters, digits, `_` and `-` (it ends subjects such as generate.stream.<id>).",
    ),
]
OptionalRequestId = Annotated[str, msgspec.Meta(max_length=REQUEST_ID_MAX_LENGTH, pattern=OPTIONAL_REQUEST_ID_PATTERN)]
Identifier = Annotated[
    str,
    _id_meta(IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN, "An id Gyre makes: letters, digits, `_`, `.`, `:` and `-`."),
]
OptionalIdentifier = Annotated[str, msgspec.Meta(max_length=IDENTIFIER_MAX_LENGTH, pattern=OPTIONAL_IDENTIFIER_PATTERN)]
ServiceName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_whole(SUBJECT_TOKEN_CHARACTERS))]
# Names and versions of models, prompts, labels, sets, collections, metrics: printable, one line.
Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)]
ContentType = Annotated[str, msgspec.Meta(max_length=CONTENT_TYPE_MAX_LENGTH)]
Title = Annotated[str, msgspec.Meta(max_length=TITLE_MAX_LENGTH)]
ShortText = Annotated[str, msgspec.Meta(max_length=SHORT_TEXT_MAX_LENGTH)]
FeedbackText = Annotated[str, msgspec.Meta(max_length=FEEDBACK_TEXT_MAX_CHARS)]
EmbedInput = Annotated[str, msgspec.Meta(max_length=EMBED_INPUT_MAX_CHARS)]
StopSequence = Annotated[str, msgspec.Meta(max_length=STOP_SEQUENCE_MAX_CHARS)]

TopK = Annotated[int, msgspec.Meta(ge=1, le=TOP_K_MAX)]
# In a generation request 0 means no retrieval.
RetrievalTopK = Annotated[int, msgspec.Meta(ge=0, le=TOP_K_MAX)]
SamplingTopK = Annotated[int, msgspec.Meta(ge=0, le=SAMPLING_TOP_K_MAX)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS_CEILING)]
Seed = Annotated[int, msgspec.Meta(ge=SEED_MIN, le=SEED_MAX)]
Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
TopP = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Milliseconds = Annotated[float, msgspec.Meta(ge=0.0)]
# A rating: -1 or 1 (thumbs), or 1..5 (stars).
Rating = Annotated[int, msgspec.Meta(ge=-1, le=5)]

METADATA_LIMITS = (
    f"at most {METADATA_MAX_KEYS} keys (of 1 to {METADATA_KEY_MAX_CHARS} characters), {METADATA_MAX_BYTES} bytes "
    f"as JSON, {METADATA_MAX_DEPTH} levels deep, strings of at most {METADATA_STRING_MAX_CHARS} characters"
)
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=METADATA_KEY_MAX_CHARS)]
# Free JSON: the shape is checked here, the depth, size and string lengths by ``check_metadata``.
Metadata = Annotated[
    dict[MetadataKey, Any],
    msgspec.Meta(max_length=METADATA_MAX_KEYS, description=f"Free JSON: {METADATA_LIMITS}."),
]


def _depth_and_long_string(value: Any, limit: int) -> tuple[int, str | None]:
    """How deep ``value`` nests (counted up to ``limit + 1``) and the path of its first over-long string."""
    deepest = 0
    long_string: str | None = None
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, Mapping):
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()]
        elif isinstance(node, list | tuple):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(node)]
        else:
            if long_string is None and isinstance(node, str) and len(node) > METADATA_STRING_MAX_CHARS:
                long_string = path
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            continue  # already too deep: no need to look further down
        stack.extend((child, depth + 1, child_path) for child, child_path in children)
    return deepest, long_string


def metadata_problem(metadata: Mapping[str, Any]) -> str | None:
    """What is wrong with a document's metadata (naming the limit), or None when it fits them all."""
    if len(metadata) > METADATA_MAX_KEYS:
        return f"has {len(metadata)} keys; at most {METADATA_MAX_KEYS} are allowed"
    for key in metadata:
        if not isinstance(key, str) or not key or len(key) > METADATA_KEY_MAX_CHARS:
            return f"key {str(key)[:40]!r} must be a string of 1 to {METADATA_KEY_MAX_CHARS} characters"
    try:
        size = len(msgspec.json.encode(metadata))
    except RecursionError:
        return f"is nested too deeply; at most {METADATA_MAX_DEPTH} levels are allowed"
    if size > METADATA_MAX_BYTES:
        return f"is {size} bytes as JSON; at most {METADATA_MAX_BYTES} are allowed"
    depth, long_string = _depth_and_long_string(metadata, METADATA_MAX_DEPTH)
    if depth > METADATA_MAX_DEPTH:
        return f"is nested more than {METADATA_MAX_DEPTH} levels deep; at most {METADATA_MAX_DEPTH} are allowed"
    if long_string is not None:
        return f"value {long_string} is longer than {METADATA_STRING_MAX_CHARS} characters, the most a string may have"
    return None


def check_metadata(metadata: Mapping[str, Any], field: str = "metadata") -> None:
    """Raise ValueError naming the limit ``metadata`` breaks (msgspec turns it into a ValidationError)."""
    problem = metadata_problem(metadata)
    if problem is not None:
        raise ValueError(f"{field} {problem}")


_TENANT_ID = re.compile(TENANT_ID_PATTERN)
TENANT_ID_RULE = f"1 to {TENANT_ID_MAX_LENGTH} letters, digits, '-' or '_' (it becomes a token of NATS subjects)"


def is_tenant_id(value: str) -> bool:
    """Whether ``value`` is a valid tenant id (what ``TenantId`` accepts)."""
    return len(value) <= TENANT_ID_MAX_LENGTH and _TENANT_ID.search(value) is not None
