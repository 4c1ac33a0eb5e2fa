"""Duplicate detection's pure half: normalised content hashes, MinHash signatures and LSH bands.

A near duplicate is a document whose word 5-shingle sets have a Jaccard similarity at or above
a threshold. MinHash estimates that similarity from two fixed-size signatures; locality-sensitive
hashing (LSH) cuts each signature into ``bands`` bands of ``rows`` values, so that only documents
sharing at least one band are compared at all.

Two documents of similarity ``s`` share at least one band with probability
``1 - (1 - s**rows)**bands``. With the defaults (128 values, 32 bands of 4 rows):

    s     0.3    0.5    0.6    0.7    0.8    0.9
    P     0.23   0.87   0.98   >0.999 >0.999 >0.999

The curve's midpoint is ``(1/bands)**(1/rows)`` ~= 0.42, well below the default threshold of
0.8, so a pair at the threshold is missed with probability ~5e-8; candidates below it are
dropped by comparing their signatures (a few extra reads, no wrong answers).

Everything here is deterministic across processes and machines: shingles are hashed with
BLAKE2b (not Python's salted ``hash``) and the permutations come from a fixed seed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from gyre_contracts import Rejection

DEFAULT_NUM_PERM = 128
DEFAULT_SHINGLE_WORDS = 5
DEFAULT_SEED = 0x6779_7265  # "gyre"
DEFAULT_BANDS = 32
DEFAULT_ROWS = 4

_WORD = re.compile(r"\w+")
_MAX_HASH = (1 << 64) - 1
_BATCH = 4096  # shingles hashed per numpy batch: batch x num_perm uint64 values (4 MiB at 128)


@dataclass(frozen=True)
class Duplicate:
    """Another document of the same tenant this one duplicates: exactly, or nearly (``similarity``)."""

    kind: Literal["exact", "near"]
    document_id: str
    similarity: float


def duplicate_rejection(duplicate: Duplicate) -> Rejection:
    """The rejection naming the document this one duplicates (policy ``reject``)."""
    if duplicate.kind == "exact":
        return Rejection(
            code="duplicate",
            message=f"the document has the same content as document {duplicate.document_id!r} "
            "(ignoring case and whitespace)",
        )
    return Rejection(
        code="near_duplicate",
        message=f"the document is a near duplicate of document {duplicate.document_id!r} "
        f"(estimated similarity {duplicate.similarity:.2f})",
    )


def normalise_for_hash(text: str) -> str:
    """NFKC, case-folded, whitespace runs collapsed to one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def content_hash(text: str) -> str:
    """SHA-256 (hex) of the normalised text: equal for texts differing only in case or spacing."""
    return hashlib.sha256(normalise_for_hash(text).encode()).hexdigest()


def shingles(text: str, k: int = DEFAULT_SHINGLE_WORDS) -> set[str]:
    """Word ``k``-shingles of the normalised text; a text of fewer than ``k`` words is one shingle."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if not words:
        return set()
    if len(words) <= k:
        return {" ".join(words)}
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _permutation_keys(num_perm: int, seed: int) -> npt.NDArray[np.uint64]:
    return np.array([_hash64(f"gyre-minhash:{seed}:{i}".encode()) for i in range(num_perm)], dtype=np.uint64)


def _mix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser: a bijection on 64-bit integers with good avalanche (wraps mod 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def minhash_signature(
    text: str,
    num_perm: int = DEFAULT_NUM_PERM,
    seed: int = DEFAULT_SEED,
    k: int = DEFAULT_SHINGLE_WORDS,
) -> tuple[int, ...]:
    """``num_perm`` minimum hashes of the text's shingles, one per seeded permutation.

    Permutation ``i`` is ``x -> mix64(x ^ key_i)``, a bijection of the 64-bit shingle hashes; its
    key comes from BLAKE2b of the seed and ``i``. A text with no words has the all-maximum
    signature (similar only to another empty text).
    """
    if num_perm < 1:
        raise ValueError(f"num_perm must be at least 1, not {num_perm}")
    keys = _permutation_keys(num_perm, seed)[np.newaxis, :]
    hashed = np.fromiter((_hash64(s.encode()) for s in shingles(text, k)), dtype=np.uint64)
    minimum = np.full(num_perm, _MAX_HASH, dtype=np.uint64)
    for start in range(0, len(hashed), _BATCH):
        batch = hashed[start : start + _BATCH, np.newaxis]
        minimum = np.minimum(minimum, _mix64(batch ^ keys).min(axis=0))
    return tuple(int(v) for v in minimum)


def estimate_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The share of equal positions of two signatures: an estimate of the Jaccard similarity."""
    if len(a) != len(b):
        raise ValueError(f"signatures of different lengths ({len(a)} and {len(b)}) cannot be compared")
    if not a:
        raise ValueError("empty signatures cannot be compared")
    return float(np.count_nonzero(np.asarray(a, dtype=np.uint64) == np.asarray(b, dtype=np.uint64))) / len(a)


def lsh_band_keys(signature: Sequence[int], bands: int = DEFAULT_BANDS, rows: int = DEFAULT_ROWS) -> list[str]:
    """One key per band, ``"<band index>_<hash of its rows>"`` (e.g. ``"07_9f3c..."``).

    Two signatures share a key exactly when they agree on all rows of that band; the index keeps
    equal rows of different bands apart. The keys use only characters NATS KV keys accept.
    """
    if bands < 1 or rows < 1:
        raise ValueError(f"bands and rows must be at least 1, not {bands} and {rows}")
    if bands * rows > len(signature):
        raise ValueError(f"{bands} bands of {rows} rows need {bands * rows} values, the signature has {len(signature)}")
    values = np.asarray(signature, dtype="<u8")
    keys = []
    for band in range(bands):
        digest = hashlib.blake2b(values[band * rows : (band + 1) * rows].tobytes(), digest_size=8).hexdigest()
        keys.append(f"{band:02d}_{digest}")
    return keys
