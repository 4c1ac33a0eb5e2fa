"""Duplicate detection's pure half: content hashes, shingles, MinHash signatures, LSH band keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gyre_ingest.dedup import (
    Duplicate,
    content_hash,
    duplicate_rejection,
    estimate_similarity,
    lsh_band_keys,
    minhash_signature,
    shingles,
)

POLICY = (
    "Employees may work from home up to three days a week after their probation period ends. "
    "Requests are made through the staff portal at least one week before the first remote day. "
    "Managers approve or decline each request within five working days and record the reason. "
    "Remote workers must be reachable by phone and chat during the core hours of ten to four. "
    "The company provides a laptop, a headset and a monitor; other equipment is not reimbursed. "
    "Travel to the office on in-person days is paid by the employee unless a client asks for it. "
    "Confidential documents may only be printed in the office and never on a home printer. "
    "A secure connection through the company network is required for every internal system. "
    "Security incidents, such as a lost laptop, are reported to the help desk within one hour. "
    "Team meetings are held on Tuesdays so that everyone can attend in person at least weekly. "
    "Part-time staff may split their remote days differently after agreeing it with a manager. "
    "The policy is reviewed every year by the people team together with staff representatives. "
    "Exceptions for medical or family reasons are handled confidentially by the people team. "
    "Working from another country for more than two weeks needs the approval of the legal team. "
    "Internet costs at home are covered by a fixed monthly allowance paid with the salary. "
    "Breaks and working time rules are the same at home as in the office and are recorded. "
    "New joiners spend their first month in the office to meet their team and learn the tools. "
    "Questions about this policy can be sent to the people team through the staff portal."
)
CHANGED = POLICY.replace(
    "Team meetings are held on Tuesdays so that everyone can attend in person at least weekly.",
    "All-hands meetings happen on the first Monday of each month in the largest meeting room.",
)
UNRELATED = (
    "Preheat the oven to two hundred degrees and butter a round cake tin of twenty centimetres. "
    "Whisk four eggs with a cup of sugar until the mixture is pale and has doubled in volume. "
    "Fold in the flour and a pinch of salt with a spatula, taking care not to knock out the air. "
    "Melt the butter with the zest of two lemons and stir it gently into the batter at the end. "
    "Pour the batter into the tin and bake for thirty minutes, until a skewer comes out clean. "
    "Let the cake cool for ten minutes before turning it out onto a wire rack to cool fully. "
    "For the glaze, mix icing sugar with lemon juice until it coats the back of a spoon thickly. "
    "Pour the glaze over the cold cake and leave it to set for an hour before cutting slices. "
    "The cake keeps for three days in an airtight tin, and it freezes well without the glaze. "
    "Serve it with whipped cream or a spoon of yoghurt and a few fresh berries in the summer."
)


def test_content_hash_ignores_case_and_whitespace() -> None:
    assert content_hash("Hello   World\n\nAgain") == content_hash("hello world again")
    assert content_hash("  Straße  ") == content_hash("STRASSE")  # casefold, not lower
    assert content_hash("ﬁne") == content_hash("fine")  # NFKC: the ligature is two letters
    assert len(content_hash("x")) == 64 and all(c in "0123456789abcdef" for c in content_hash("x"))


def test_content_hash_changes_with_any_word() -> None:
    assert content_hash("hello world") != content_hash("hello worlds")
    assert content_hash(POLICY) != content_hash(CHANGED)


def test_shingles_are_word_k_grams_of_the_normalised_text() -> None:
    assert shingles("One two, THREE four five six!", k=5) == {"one two three four five", "two three four five six"}
    assert shingles("a b c d e f g", k=3) == {"a b c", "b c d", "c d e", "d e f", "e f g"}


def test_a_text_shorter_than_k_words_is_one_shingle_and_an_empty_text_none() -> None:
    assert shingles("just three words", k=5) == {"just three words"}
    assert shingles("  ...  ", k=5) == set()
    with pytest.raises(ValueError):
        shingles("text", k=0)


def test_a_document_with_one_sentence_changed_is_estimated_at_least_0_8_similar() -> None:
    similarity = estimate_similarity(minhash_signature(POLICY), minhash_signature(CHANGED))
    exact = len(shingles(POLICY) & shingles(CHANGED)) / len(shingles(POLICY) | shingles(CHANGED))
    assert similarity >= 0.8
    assert abs(similarity - exact) < 0.1  # MinHash with 128 values: standard error ~0.03 here


def test_unrelated_documents_are_estimated_below_0_3_similar() -> None:
    assert estimate_similarity(minhash_signature(POLICY), minhash_signature(UNRELATED)) < 0.3


def test_identical_normalised_texts_have_identical_signatures() -> None:
    assert minhash_signature(POLICY) == minhash_signature(POLICY.upper().replace(" ", "  "))
    assert estimate_similarity(minhash_signature(POLICY), minhash_signature(POLICY)) == 1.0


def test_signatures_have_the_requested_length_and_depend_on_the_seed() -> None:
    assert len(minhash_signature(POLICY)) == 128
    assert len(minhash_signature(POLICY, num_perm=64)) == 64
    assert minhash_signature(POLICY, seed=1) != minhash_signature(POLICY, seed=2)
    assert minhash_signature(POLICY, num_perm=64) == minhash_signature(POLICY)[:64]


def test_signatures_of_different_lengths_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        estimate_similarity(minhash_signature(POLICY, num_perm=64), minhash_signature(POLICY))


SIGNATURE_SCRIPT = """
import json, sys
from gyre_ingest.dedup import lsh_band_keys, minhash_signature
signature = minhash_signature(sys.stdin.read())
print(json.dumps({"signature": list(signature), "bands": lsh_band_keys(signature)}))
"""


def signature_in_subprocess(text: str, hash_seed: str) -> dict[str, list[int] | list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", SIGNATURE_SCRIPT],
        input=text, capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )  # fmt: skip
    data: dict[str, list[int] | list[str]] = json.loads(result.stdout)
    return data


def test_signatures_and_band_keys_are_the_same_in_every_process() -> None:
    # Different PYTHONHASHSEEDs: nothing may depend on Python's salted str hash.
    first = signature_in_subprocess(CHANGED, "1")
    second = signature_in_subprocess(CHANGED, "2")
    here = minhash_signature(CHANGED)
    assert first == second
    assert first["signature"] == list(here)
    assert first["bands"] == lsh_band_keys(here)


def test_signature_and_band_keys_of_a_known_text_never_change() -> None:
    # Stored signatures and band keys outlive a release: changing how they are computed
    # silently breaks every index already built. Change these values only with a migration.
    signature = minhash_signature("the quick brown fox jumps over the lazy dog")
    assert signature[:3] == GOLDEN_SIGNATURE_START
    assert lsh_band_keys(signature)[:2] == GOLDEN_BAND_KEYS


GOLDEN_SIGNATURE_START = (3701738258860960982, 1375939838766800174, 6827005521143019437)
GOLDEN_BAND_KEYS = ["00_4ca578b90ee68ff1", "01_2129a8029bd2ce27"]


def test_band_keys_name_their_band_and_follow_only_that_bands_rows() -> None:
    signature = minhash_signature(POLICY)
    keys = lsh_band_keys(signature, bands=32, rows=4)
    assert len(keys) == 32
    assert [k.split("_")[0] for k in keys] == [f"{i:02d}" for i in range(32)]
    assert lsh_band_keys(signature) == keys  # stable
    altered = list(signature)
    altered[4 * 5 + 2] += 1  # a row of band 5
    changed = lsh_band_keys(altered)
    assert [i for i, (a, b) in enumerate(zip(keys, changed, strict=True)) if a != b] == [5]
    assert all(c.replace("_", "").isalnum() for c in keys)  # NATS KV key characters


def test_equal_rows_in_different_bands_give_different_keys() -> None:
    assert len(set(lsh_band_keys([7] * 128))) == 32


def test_near_duplicates_share_a_band_and_unrelated_documents_do_not() -> None:
    policy, changed, unrelated = (set(lsh_band_keys(minhash_signature(t))) for t in (POLICY, CHANGED, UNRELATED))
    assert policy & changed
    assert not policy & unrelated


def test_band_keys_need_enough_signature_values() -> None:
    with pytest.raises(ValueError, match="need 128 values"):
        lsh_band_keys(minhash_signature(POLICY, num_perm=64), bands=32, rows=4)


def test_duplicate_rejections_name_the_duplicate() -> None:
    exact = duplicate_rejection(Duplicate(kind="exact", document_id="doc-7", similarity=1.0))
    near = duplicate_rejection(Duplicate(kind="near", document_id="doc-8", similarity=0.912))
    assert exact.code == "duplicate" and "'doc-7'" in exact.message
    assert near.code == "near_duplicate" and "'doc-8'" in near.message and "0.91" in near.message
