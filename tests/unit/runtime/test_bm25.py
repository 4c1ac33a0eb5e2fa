"""The BM25 encoder: deterministic term ids, English stemming and stopwords, BM25 document weights."""

from __future__ import annotations

import hashlib

import pytest

from gyre_runtime.vectorstore import Bm25Encoder, SparseVector
from gyre_runtime.vectorstore.bm25 import DEFAULT_AVG_LEN, term_id, tokenize


def weights(vector: SparseVector) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


def test_term_ids_are_the_blake2b_hash_of_the_stem_the_same_in_every_process() -> None:
    expected = int.from_bytes(hashlib.blake2b(b"connect", digest_size=4).digest(), "little")
    assert term_id("connections") == expected
    assert term_id("connected") == expected
    assert 0 <= term_id("anything") < 2**32


def test_encoding_is_deterministic_across_encoders() -> None:
    text = "Retrieval-augmented generation answers questions from indexed documents."
    assert Bm25Encoder().encode_document(text) == Bm25Encoder().encode_document(text)
    assert Bm25Encoder().encode_query(text) == Bm25Encoder().encode_query(text)


def test_words_are_lowercased_unicode_normalised_and_stopwords_dropped() -> None:
    assert tokenize("The Café of ＡＢＣ and the naïve user's data_set") == ["café", "abc", "naïve", "user", "data_set"]
    assert Bm25Encoder().encode_query("the of and it is") == SparseVector(indices=[], values=[])
    assert Bm25Encoder().encode_document("") == SparseVector(indices=[], values=[])


def test_a_query_matches_other_inflections_of_its_words() -> None:
    encoder = Bm25Encoder()
    document = set(encoder.encode_document("The index was rebuilt while indexing new documents").indices)
    assert set(encoder.encode_query("indexes document").indices) <= document


def test_query_weights_are_one_per_distinct_term() -> None:
    query = Bm25Encoder().encode_query("Kafka kafka KAFKA streams")
    assert query.indices == sorted({term_id("kafka"), term_id("streams")})
    assert query.values == [1.0, 1.0]


def test_document_weights_follow_bm25_term_frequency_saturation() -> None:
    encoder = Bm25Encoder(avg_len=4)
    # Four kept terms = avg_len, so the length factor is 1: weight = tf * (k1 + 1) / (tf + k1).
    vector = weights(encoder.encode_document("qdrant qdrant nats python"))
    assert vector[term_id("qdrant")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert vector[term_id("nats")] == pytest.approx(1 * 2.2 / (1 + 1.2))
    assert vector.keys() == {term_id("qdrant"), term_id("nats"), term_id("python")}


def test_longer_documents_weigh_each_occurrence_less() -> None:
    encoder = Bm25Encoder(avg_len=10)
    short = weights(encoder.encode_document("qdrant search"))[term_id("qdrant")]
    long = weights(encoder.encode_document("qdrant " + " ".join(f"word{i}" for i in range(40))))[term_id("qdrant")]
    assert long < short
    # len = 11, avg_len = 10: 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 41 / 10))
    assert long == pytest.approx(2.2 / (1 + 1.2 * (0.25 + 0.75 * 41 / 10)))


def test_repeating_a_term_saturates_below_k1_plus_one() -> None:
    encoder = Bm25Encoder(avg_len=100)
    values = [weights(encoder.encode_document("kafka " * tf + "broker"))[term_id("kafka")] for tf in (1, 2, 5, 50)]
    assert values == sorted(values)
    assert values[-1] < 2.2


def test_indices_are_sorted_and_aligned_with_values() -> None:
    vector = Bm25Encoder().encode_document("zebra apple mango apple banana zebra zebra")
    assert vector.indices == sorted(set(vector.indices))
    assert len(vector.values) == len(vector.indices)


def test_overlong_tokens_are_ignored_and_avg_len_must_be_positive() -> None:
    assert tokenize("x" * 41 + " kept") == ["kept"]
    assert DEFAULT_AVG_LEN > 0
    with pytest.raises(ValueError, match="avg_len"):
        Bm25Encoder(avg_len=0)
