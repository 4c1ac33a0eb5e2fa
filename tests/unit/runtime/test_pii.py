"""Personal data detection, redaction and policy: what is found, what is left alone, what a rejection says."""

from __future__ import annotations

import itertools
import random

import pytest

from gyre_runtime.guardrails.pii import (
    PLACEHOLDERS,
    PiiMatch,
    apply_pii_policy,
    count_pii,
    find_pii,
    iban_valid,
    luhn_valid,
    redact_pii,
    resolve_overlaps,
)


def found(text: str) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start : m.end]) for m in find_pii(text)]


def assert_only(kind: str, value: str) -> None:
    text = f"Contact: {value}, thanks."
    assert found(text) == [(kind, value)]


def assert_nothing(value: str) -> None:
    text = f"Contact: {value}, thanks."
    assert found(text) == []


# True positives and true negatives, one kind at a time ------------------------------------------

# What each detector finds, by kind.
FOUND: dict[str, list[str]] = {
    "email": [
        "john.doe@example.com", "j.doe+news@mail.example.co.uk", "first_last-99@sub.example.org", "élodie@exemple.fr",
    ],
    # In international and national formats.
    "phone": [
        # North American
        "(555) 123-4567", "555-123-4567", "555.123.4567", "1-800-555-1234", "+1 (555) 123-4567", "123-456-7890",
        # United Kingdom
        "020 7946 0958", "07700 900123", "+44 20 7946 0958", "+44 (0)20 7946 0958", "0044 20 7946 0958",
        # France
        "01 23 45 67 89", "06.12.34.56.78", "+33 1 23 45 67 89", "+33612345678",
        # Germany
        "030 12345678", "0171 1234567", "0171-1234567", "(030) 123 456 78", "030/1234567", "+49 (0)30 1234 5678",
    ],
    # Luhn-valid numbers.
    "card": [
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",  # Visa
        "5555 5555 5555 4444",  # Mastercard
        "378282246310005", "3782 822463 10005",  # Amex, 15 digits, 4-6-5
        "6011111111111117",  # Discover
        "4222222222222",  # 13-digit Visa
    ],
    # Valid check digits, with or without spaces.
    "iban": [
        "DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB29 NWBK 6016 1331 9268 19",
        "GB82WEST12345698765432", "FR76 3000 6000 0112 3456 7890 189", "NL91 ABNA 0417 1643 00",
        "BE68 5390 0754 7034", "IT60 X054 2811 1010 0000 0123 456", "CH93 0076 2011 6238 5295 7",
    ],
    # IPv4 and IPv6.
    "ip": [
        "192.168.1.1", "10.0.0.255", "8.8.8.8", "255.255.255.255",
        "2001:db8::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1ff:fe23:4567:890a", "::ffff:192.0.2.1",
        "1.2.3.4",  # decided: a bare dotted quad IS an address, even where a version is meant
    ],
    # US social security numbers.
    "ssn": ["123-45-6789", "078-05-1120", "665-01-0001", "899-99-9999"],
}  # fmt: skip

# What only looks like a kind of personal data, by the kind it looks like.
LOOK_ALIKES: dict[str, list[str]] = {
    "email": ["user@localhost", "a@b.c", "@handle", "name at example dot com", "x@@y.com"],
    # Years, dates, versions, ids and amounts.
    "phone": [
        "2024",  # a year
        "2024-01-15", "15.01.2024", "01.02.2024", "01/15/2024", "01 02 2024",  # dates
        "1.2.3", "10.0.19041.1234",  # version numbers
        "12345678901234", "1234567890",  # long digit ids
        "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2",  # ISBNs
        "08.30-12.30 14.00-18.00",  # opening hours
        "3.14159", "$1,234,567.89", "1 234 567,89 EUR",  # amounts
        "555-1234",  # a seven-digit local number: documented as not caught
        "0612345678",  # a national number without separators: indistinguishable from an id, not caught
    ],
    "card": [
        "4111 1111 1111 1112",  # Luhn-invalid: not a card
        "4111-1111 1111-1111",  # mixed separators
        "0000 0000 0000 0000",  # passes Luhn, but no card starts with 0 or is one repeated digit
        "9784925899130",  # an ISBN-13 that happens to pass the Luhn check
        "1234 5678 9012 3456 7890",  # twenty digits
    ],
    # Wrong check digits or length.
    "iban": [
        "DE00 3704 0044 0532 0130 00",  # wrong check digits
        "DE88370400440532013000",  # wrong check digits
        "DE89 3704 0044 0532 0130",  # too short for Germany
        "XX89370400440532013000",  # no such country
        "de89370400440532013000",  # lower case: not the IBAN form, documented as not caught
    ],
    # Invalid addresses, versions, MAC addresses and times.
    "ip": [
        "256.1.1.1", "192.168.1", "1.2.3.4.5", "v1.2.3.4", "01.02.03.04",
        "::1", "::",  # loopback and unspecified: not personal data
        "00:1A:2B:3C:4D:5E", "12:30:45", "std::vector", "1:2:3",
    ],
    # Never issued.
    "ssn": ["000-12-3456", "666-12-3456", "999-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123456789"],
}  # fmt: skip


def by_kind(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(kind, value) for kind, values in table.items() for value in values]


@pytest.mark.parametrize(("kind", "value"), by_kind(FOUND))
def test_personal_data_of_each_kind_is_found_alone(kind: str, value: str) -> None:
    assert_only(kind, value)


@pytest.mark.parametrize(("looks_like", "value"), by_kind(LOOK_ALIKES))
def test_what_only_looks_like_personal_data_is_left_alone(looks_like: str, value: str) -> None:
    assert_nothing(value)


def test_an_email_address_at_the_end_of_a_sentence_stops_before_the_full_stop() -> None:
    assert found("Write to ops@example.com.") == [("email", "ops@example.com")]


def test_a_phone_number_continuing_into_more_digit_groups_is_not_cut_out_of_it() -> None:
    assert_nothing("0123 4567 8901 2345 6789")


def test_a_card_number_followed_by_its_expiry_is_found_without_it() -> None:
    assert found("card 4111 1111 1111 1111 12/25") == [("card", "4111 1111 1111 1111")]


def test_an_iban_followed_by_another_group_of_digits_keeps_its_registered_length() -> None:
    assert found("PL61 1090 1014 0000 0712 1981 2874 2024") == [("iban", "PL61 1090 1014 0000 0712 1981 2874")]


# Overlaps, redaction, counts ----------------------------------------------------------------------


def test_findings_are_sorted_and_never_overlap() -> None:
    text = "a@b.io 4111 1111 1111 1111 192.168.0.1 +44 20 7946 0958 123-45-6789 DE89370400440532013000"
    matches = find_pii(text)
    assert [m.kind for m in matches] == ["email", "card", "ip", "phone", "ssn", "iban"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))


def test_a_card_number_wins_over_a_phone_number_covering_the_same_digits() -> None:
    # "+378282246310005" is also the shape of an international phone number.
    assert found("+378282246310005") == [("card", "378282246310005")]


def test_an_email_address_wins_over_a_phone_number_inside_it() -> None:
    assert found("+14155552671@sms.example.com") == [("email", "+14155552671@sms.example.com")]


def test_overlapping_candidates_resolve_to_the_more_specific_kind() -> None:
    candidates = [PiiMatch("phone", 0, 12), PiiMatch("ssn", 2, 13), PiiMatch("iban", 20, 30), PiiMatch("phone", 25, 40)]
    assert resolve_overlaps(candidates) == [PiiMatch("ssn", 2, 13), PiiMatch("iban", 20, 30)]


def test_redaction_replaces_each_finding_with_a_typed_placeholder() -> None:
    text = (
        "Mail jane@example.org or call +44 20 7946 0958; card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00, from 203.0.113.7, SSN 123-45-6789."
    )
    assert redact_pii(text, find_pii(text)) == (
        "Mail [EMAIL] or call [PHONE]; card [CARD], IBAN [IBAN], from [IP], SSN [SSN]."
    )


def test_counts_are_by_kind_and_only_for_kinds_found() -> None:
    text = "a@example.com, b@example.com, 10.0.0.1 and 555-123-4567"
    assert count_pii(find_pii(text)) == {"email": 2, "phone": 1, "ip": 1}
    assert count_pii(find_pii("nothing personal here")) == {}


# Policy -------------------------------------------------------------------------------------------

PERSONAL = "Reach me at jane@example.org or 555-123-4567; my card is 4111 1111 1111 1111."


def test_policy_redact_returns_the_redacted_text_and_the_counts() -> None:
    outcome = apply_pii_policy(PERSONAL, "redact")
    assert outcome.text == "Reach me at [EMAIL] or [PHONE]; my card is [CARD]."
    assert outcome.counts == {"email": 1, "phone": 1, "card": 1}
    assert outcome.rejected is None


def test_policy_allow_keeps_the_text_and_still_counts() -> None:
    outcome = apply_pii_policy(PERSONAL, "allow")
    assert outcome.text == PERSONAL
    assert outcome.counts == {"email": 1, "phone": 1, "card": 1}
    assert outcome.rejected is None


def test_policy_reject_names_the_counts_but_never_the_values() -> None:
    outcome = apply_pii_policy(PERSONAL + " Also bob@example.org.", "reject")
    assert outcome.rejected is not None
    assert outcome.rejected.code == "personal_data"
    message = outcome.rejected.message
    assert "2 e-mail addresses" in message and "1 phone number" in message and "1 payment card number" in message
    for value in ("jane@example.org", "bob@example.org", "555-123-4567", "4111", "example"):
        assert value not in message
    assert "jane@example.org" not in outcome.text  # even a rejected document's text carries none


def test_policy_reject_accepts_a_document_without_personal_data() -> None:
    outcome = apply_pii_policy("The meeting is on 2024-01-15 in room 4.", "reject")
    assert outcome.rejected is None
    assert outcome.counts == {}
    assert outcome.text == "The meeting is on 2024-01-15 in room 4."


def test_an_unknown_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown personal data policy"):
        apply_pii_policy("text", "shred")  # type: ignore[arg-type]


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE88370400440532013000")


# Generated documents: everything planted is found, and nothing detected survives redaction -------

FILLER = "the invoice for our meeting last week was sent to you with notes about travel plans".split()


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def make_card(rng: random.Random) -> str:
    if rng.random() < 0.25:
        number = luhn_complete("37", 15, rng)
        return rng.choice([number, f"{number[:4]} {number[4:10]} {number[10:]}"])
    number = luhn_complete(rng.choice(["4", "51", "55", "6011"]), 16, rng)
    sep = rng.choice(["", " ", "-"])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def make_iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 22), ("FR", 27), ("ES", 24), ("PL", 28), ("BE", 16), ("NO", 15)])
    bban = "".join(rng.choice("0123456789") for _ in range(length - 4))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    assert iban_valid(compact)
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def make_email(rng: random.Random) -> str:
    local = rng.choice(["ann", "bob.smith", "c_d", "eve+tag", "x9"])
    return f"{local}{rng.randrange(100)}@{rng.choice(['example.com', 'mail.example.org', 'corp.co.uk'])}"


def make_phone(rng: random.Random) -> str:
    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    templates = [
        lambda: f"+44 20 {digits(4)} {digits(4)}",
        lambda: f"({rng.randrange(200, 1000)}) {digits(3)}-{digits(4)}",
        lambda: f"{rng.randrange(200, 1000)}-{digits(3)}-{digits(4)}",
        lambda: "0" + str(rng.randrange(1, 10)) + "".join(f" {digits(2)}" for _ in range(4)),
        lambda: f"+49 30 {digits(8)}",
        lambda: f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
    ]
    return rng.choice(templates)()


def make_ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randrange(256)) for _ in range(4))
    return ":".join(f"{rng.randrange(1, 0x10000):x}" for _ in range(8))


def make_ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


MAKERS = {"card": make_card, "iban": make_iban, "email": make_email, "phone": make_phone, "ip": make_ip,
          "ssn": make_ssn}  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_generated_documents_have_every_planted_value_found_and_redaction_leaves_none(seed: int) -> None:
    rng = random.Random(seed)
    parts: list[str] = []
    planted: list[tuple[str, str]] = []
    for _ in range(rng.randrange(5, 15)):
        parts.append(" ".join(rng.choice(FILLER) for _ in range(rng.randrange(1, 6))))
        kind = rng.choice(list(MAKERS))
        value = MAKERS[kind](rng)
        planted.append((kind, value))
        parts.append(value)
    text = rng.choice([", ", "; ", "\n"]).join(parts) + "."

    assert found(text) == planted
    redacted = redact_pii(text, find_pii(text))
    for _, value in planted:
        assert value not in redacted
    assert find_pii(redacted) == []


@pytest.mark.parametrize("seed", range(20))
def test_findings_in_digit_noise_are_sorted_disjoint_and_redaction_removes_them(seed: int) -> None:
    rng = random.Random(1000 + seed)
    text = "".join(rng.choice("0123456789 .-:+()/@abcXYZ\n") for _ in range(5000))
    matches = find_pii(text)
    assert matches == sorted(matches, key=lambda m: m.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))
    redacted = redact_pii(text, matches)
    assert sum(redacted.count(p) for p in PLACEHOLDERS.values()) == len(matches)
