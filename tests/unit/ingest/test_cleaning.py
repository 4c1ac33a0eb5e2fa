"""Cleaning extracted text: decoding, Unicode and whitespace normalisation, running headers and footers."""

from __future__ import annotations

import codecs
import random

import pytest

from gyre_ingest.cleaning import clean_text, decode_text, remove_repeated_page_lines
from gyre_ingest.formats.base import ExtractionError

WESTERN = "“Smart quotes” – café crème brûlée, naïve façade. Œuvre for £5."


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        pytest.param("Cafe\u0301 Zu\u0308rich", "Café Zürich", id="composes_unicode_to_nfc"),
        pytest.param(
            "one\x00\x07 two\x1b\x7f\x85three\nfour", "one two\nthree\nfour",
            id="removes_control_characters_but_keeps_line_breaks",
        ),
        pytest.param(
            "a\t\tb\u00a0\u00a0c\u2003d\u3000e   f", "a b c d e f",
            id="turns_tabs_and_unicode_spaces_into_single_spaces",
        ),
        pytest.param("a\r\nb\rc\u2028d\u2029e\x0cf", "a\nb\nc\nd\ne\nf", id="normalises_every_kind_of_line_end"),
        pytest.param(
            "\n\n  first  \n\n\n\n   \n second\t\n\n\n", "first\n\nsecond",
            id="trims_lines_and_keeps_at_most_one_blank_line",
        ),
        pytest.param(
            "\ufeffzero\u200bwidth soft\u00adhyphen", "zerowidth softhyphen", id="removes_invisible_characters"
        ),
        pytest.param("family 👩\u200d👩\u200d👧", "family 👩\u200d👩\u200d👧", id="keeps_joiners"),
    ],
)
def test_cleaning_normalises_unicode_and_whitespace(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


def report_pages(bodies: list[list[str]]) -> list[str]:
    total = len(bodies)
    return [
        "\n".join(["ACME Corp Annual Report 2024", "Confidential", *body, f"Page {n} of {total}"])
        for n, body in enumerate(bodies, start=1)
    ]


def test_running_headers_and_page_number_footers_are_removed_from_every_page() -> None:
    bodies = [
        [f"Topic {word} is discussed here.", f"More about {word}."] for word in ("alpha", "beta", "gamma", "delta")
    ]
    cleaned = remove_repeated_page_lines(report_pages(bodies))
    assert cleaned == ["\n".join(body) for body in bodies]


def test_a_repeated_line_in_the_middle_of_pages_is_kept() -> None:
    bodies = [
        [
            f"Intro {w}.",
            f"Second {w}.",
            f"Third {w}.",
            "Repeated middle line",
            f"Fifth {w}.",
            f"Sixth {w}.",
            f"End {w}.",
        ]
        for w in ("a", "b", "c", "d")
    ]
    pages = ["\n".join(body) for body in bodies]
    assert remove_repeated_page_lines(pages) == pages


def test_lines_repeated_on_too_few_pages_are_kept() -> None:
    # "Draft" heads 2 of 5 pages: below 60%.
    pages = [f"{'Draft' if n < 2 else 'Final'}\nUnique body text {chr(97 + n)}\nend {chr(97 + n)}" for n in range(5)]
    cleaned = remove_repeated_page_lines(pages)
    assert all(page.startswith(("Draft", "Final")) for page in cleaned[:2])
    assert [page.split("\n")[0] for page in cleaned[2:]] == [
        "Unique body text c",
        "Unique body text d",
        "Unique body text e",
    ]


def test_documents_of_fewer_than_three_pages_keep_all_their_lines() -> None:
    pages = ["Header\nbody one\nPage 1", "Header\nbody two\nPage 2"]
    assert remove_repeated_page_lines(pages) == pages


def test_the_share_of_pages_needed_is_configurable() -> None:
    pages = [f"{'Header' if n < 3 else 'Other'}\nbody {chr(97 + n)}" for n in range(6)]
    assert remove_repeated_page_lines(pages, min_fraction=0.6)[0].startswith("Header")
    assert remove_repeated_page_lines(pages, min_fraction=0.5)[0] == "body a"


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (WESTERN.encode("cp1252"), None),
        (WESTERN.encode("cp1252"), "windows-1252"),
        ("Le garçon a mangé une crêpe à la crème près de la forêt.".encode("latin-1"), "ISO-8859-1"),
        ("Le garçon a mangé une crêpe à la crème près de la forêt.".encode("latin-1"), None),
        (WESTERN.encode("utf-16"), None),
        (codecs.BOM_UTF8 + WESTERN.encode("utf-8"), None),
        (WESTERN.encode("utf-8"), None),
    ],
    ids=["cp1252-detected", "cp1252-declared", "latin1-declared", "latin1-detected", "utf16-bom", "utf8-bom", "utf8"],
)
def test_text_in_common_encodings_decodes_to_the_right_characters(data: bytes, declared: str | None) -> None:
    decoded = decode_text(data, declared)
    assert decoded in (WESTERN, "Le garçon a mangé une crêpe à la crème près de la forêt.")


def test_a_short_latin1_word_is_not_mistaken_for_utf16() -> None:
    assert decode_text("café".encode("latin-1"), None) == "café"


def test_cyrillic_and_japanese_legacy_encodings_are_detected() -> None:
    russian = "Привет, как дела? Это тестовый документ на русском языке."
    japanese = "これは日本語のテスト文書です。よろしくお願いします。"
    assert decode_text(russian.encode("cp1251"), None) == russian
    assert decode_text(japanese.encode("shift_jis"), None) == japanese


def test_a_wrong_declared_charset_does_not_garble_the_text() -> None:
    assert decode_text(WESTERN.encode("cp1252"), "utf-8") == WESTERN
    assert decode_text(WESTERN.encode("utf-8"), "no-such-charset") == WESTERN


def test_a_byte_order_mark_wins_over_the_declared_charset() -> None:
    assert decode_text(codecs.BOM_UTF16_LE + "héllo".encode("utf-16-le"), "iso-8859-1") == "héllo"


@pytest.mark.parametrize(
    "data",
    [
        random.Random(7).randbytes(4000),
        b"\x89PNG\r\n\x1a\n" + random.Random(8).randbytes(500),
        b"text with NUL\x00 bytes\x00\x01\x02 inside it" * 10,
    ],
    ids=["random-bytes", "png", "nul-bytes"],
)
def test_binary_data_is_undecodable(data: bytes) -> None:
    with pytest.raises(ExtractionError) as caught:
        decode_text(data, None)
    assert caught.value.code == "undecodable"


def test_an_invalid_byte_after_a_bom_is_undecodable() -> None:
    with pytest.raises(ExtractionError) as caught:
        decode_text(codecs.BOM_UTF8 + b"ok \xff\xfe bad", None)
    assert caught.value.code == "undecodable"
