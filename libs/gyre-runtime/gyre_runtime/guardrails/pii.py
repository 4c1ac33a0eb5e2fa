"""Personal data in document text: detection, typed redaction, counts, and the tenant's policy.

Detection is rule based and errs towards precision where a checksum exists (cards: Luhn, IBANs:
mod-97 and the country's length, SSNs: the ranges never issued) and towards recall where none
does (e-mail, IP addresses). Phone numbers are the hardest: a number is reported only in a shape
people write phone numbers in, so years, dates, version numbers and long digit ids are left alone.

What is and is not reported, deliberately:

- e-mail: ``local@domain.tld`` (the TLD has two letters or more, Unicode letters allowed);
  ``user@localhost`` is not.
- phone: international ``+CC ...`` (8 to 15 digits, a ``(0)`` trunk marker allowed) or ``00CC``
  with separators; North American ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``,
  ``1-800-555-1234``; national numbers with a trunk ``0`` written in groups (UK ``020 7946 0958``,
  FR ``01 23 45 67 89`` / ``06.12.34.56.78``, DE ``030 12345678``, ``(030) 123 456 78``,
  ``0171-1234567``), 9 to 12 digits. Not reported: a national number written without any
  separator (``0612345678`` cannot be told from an id), seven-digit local numbers
  (``555-1234``), dates (``01.02.2024``, ``2024-01-15``), ISBNs, and a national or North
  American number that runs on into further digit groups (``0123 4567 8901 2345``; an
  international one is cut at the longest plausible length instead, the ``+`` marks its start).
- No phone number is reported inside a finding of another kind: cards, IBANs and SSNs win.
- card: 13 to 19 digits, contiguous or in the usual 4-4-4-4(-1..3), 4-6-5 and 4-6-4 groups
  (spaces or dashes, the same throughout), passing the Luhn check; a number starting with 0 or
  made of one repeated digit is not a card, nor is a 13-digit ISBN (978/979 with a valid ISBN
  check digit). A Luhn-valid 16-digit id is reported as a card: the checksum is all it carries.
- iban: upper-case country code, check digits and BBAN, contiguous or in groups of four, of the
  exact length registered for that country, passing mod-97.
- ip: IPv4 with octets 0-255 and no leading zeros; IPv6 in any valid form (``::``, embedded
  IPv4) with at least two non-empty groups, so ``::1`` and ``::`` are not reported. A dotted
  quad such as ``1.2.3.4`` IS reported as an address even when it is meant as a version: it is
  one, and redacting a version number is the safer mistake. Glued to a letter (``v1.2.3.4``) or
  with more parts (``1.2.3.4.5``) it is left alone.
- ssn: ``AAA-GG-SSSS`` with dashes, area not 000, 666 or 9xx, group not 00, serial not 0000.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from gyre_contracts import Rejection

PiiKind = Literal["email", "phone", "card", "iban", "ip", "ssn"]
PiiPolicy = Literal["redact", "reject", "allow"]

KINDS: tuple[str, ...] = get_args(PiiKind)
POLICIES: tuple[str, ...] = get_args(PiiPolicy)
PLACEHOLDERS: dict[str, str] = {kind: f"[{kind.upper()}]" for kind in KINDS}

# When two findings overlap the more specific wins: a checksum beats a shape, a shape with an
# "@" or dots in fixed places beats the loosest one (phone).
_PRIORITY: dict[str, int] = {"card": 3, "iban": 3, "ssn": 3, "email": 2, "ip": 1, "phone": 0}

_NOUNS: dict[str, tuple[str, str]] = {
    "email": ("e-mail address", "e-mail addresses"),
    "phone": ("phone number", "phone numbers"),
    "card": ("payment card number", "payment card numbers"),
    "iban": ("IBAN", "IBANs"),
    "ip": ("IP address", "IP addresses"),
    "ssn": ("US social security number", "US social security numbers"),
}


@dataclass(frozen=True)
class PiiMatch:
    """One finding: its kind and the ``text[start:end]`` span it covers."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class PiiOutcome:
    """What the policy made of a text: the text to keep, counts by kind, and a rejection if any."""

    text: str
    counts: dict[str, int]
    rejected: Rejection | None = None


# Numbers must not be the tail of a longer token: not glued to a word character ("ab-0171").
_NOT_AFTER_TOKEN = r"(?<![\w+])(?<!\w[.\-/])"
# Numbers starting with 0 (national, or 00 international) also not the last groups of a longer
# run of digit groups, such as the tail "0532 0130 00" of an IBAN whose check digits are wrong.
_NOT_AFTER_DIGIT_GROUP = r"(?<!\d )"
# ... nor be followed by more digits or another digit group.
_NOT_BEFORE_DIGITS = r"(?!\w)(?![ .\-/]\d)"

_EMAIL = re.compile(
    r"(?<![\w.%+\-])"
    r"[\w%+\-]+(?:\.[\w%+\-]+)*"  # local part: no leading, trailing or doubled dots
    r"@(?:[^\W_](?:[\w\-]*[^\W_])?\.)+[^\W\d_]{2,}"  # domain labels, then an alphabetic TLD
    r"(?![\w\-]|\.[^\W_])"
)

_PHONE_INTERNATIONAL = re.compile(
    _NOT_AFTER_TOKEN
    + r"(?:\+[1-9]\d*|"
    + _NOT_AFTER_DIGIT_GROUP
    + r"00[1-9]\d{0,2}(?=[ .\-(]))"  # +CC, or 00CC and a separator
    + r"(?:[ .\-]?\(\d{1,4}\) ?\d+|[ .\-]\d+)*"  # groups; "(0)" or "(area)" allowed
    + _NOT_BEFORE_DIGITS
)
_PHONE_NANP = re.compile(
    _NOT_AFTER_TOKEN
    + r"(?:1[ .\-]?)?"
    + r"(?:\(\d{3}\)[ \-]?\d{3}[ .\-]\d{4}"  # (555) 123-4567
    + r"|\d{3}(?P<sep>[ .\-])\d{3}(?P=sep)\d{4})"  # 555-123-4567, 555.123.4567, 555 123 4567
    + _NOT_BEFORE_DIGITS
)
_PHONE_NATIONAL = re.compile(
    _NOT_AFTER_TOKEN
    + _NOT_AFTER_DIGIT_GROUP
    + r"(?:\(0[1-9]\d{0,3}\)|0[1-9]\d{0,3})"  # trunk 0 and area code, maybe in brackets ("00" is international)
    + r"(?: ?[/\-.] ?| )\d{2,8}"  # the first separator may differ: "030/123 456", "(030) 123 456"
    + r"(?:(?P<sep>[ .\-])\d{2,8}(?:(?P=sep)\d{2,8}){0,3})?"  # then one separator throughout
    + _NOT_BEFORE_DIGITS
)
_DATE_LIKE = re.compile(r"\(?0?\d{1,2}\)?\s?[./\- ]\s?\d{1,2}[./\- ](?:19|20)\d\d")
_SSN_SHAPED = re.compile(r"\d{3}-\d{2}-\d{4}")

_CARD = re.compile(
    r"(?<![\w.,\-])"
    r"(?:\d{13,19}"
    r"|\d{4}(?P<s1>[ \-])\d{4}(?P=s1)\d{4}(?P=s1)\d{4}(?P<tail>(?P=s1)\d{1,3})?"
    r"|\d{4}(?P<s2>[ \-])\d{6}(?P=s2)\d{4,5})"
    r"(?!\w)(?![.,\-]\d)"
)

_IBAN = re.compile(
    r"(?<![\w\-])"
    r"[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)"
    r"(?![\w\-])"
)
# Lengths from the SWIFT IBAN registry.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\w)")
_IPV6 = re.compile(
    r"(?<![\w:.])"
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\w)"
)

_SSN = re.compile(
    r"(?<![\w\-])(?<!\d\.)"
    r"(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}"
    r"(?![\w]|-\d)"
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check of a string of digits, as card numbers carry it."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """The mod-97 check of an IBAN without spaces (ISO 13616), and its country's length."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _find_emails(text: str) -> Iterator[PiiMatch]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield PiiMatch("email", m.start(), m.end())


def _phone_digit_count(number: str) -> int:
    # A "(0)" after the country code is a trunk prefix, not part of the number.
    return len(_digits(number.replace("(0)", "")))


_DIGIT_RUN = re.compile(r"\d+(?!\d|\))")


def _find_phones(text: str) -> Iterator[PiiMatch]:
    for m in _PHONE_INTERNATIONAL.finditer(text):
        # Where an international number ends is ambiguous when more digit groups follow
        # ("+44 20 7946 0958 123-45-6789"): offer every group boundary that leaves a plausible
        # number and let the overlap resolution keep the longest one nothing more specific claims.
        number = m.group()
        for run in _DIGIT_RUN.finditer(number):
            digits = _phone_digit_count(number[: run.end()])
            if digits > 15:
                # Every later boundary has more digits still: stop, or a long run of digit groups
                # ("+1 1 1 1 ...") costs a count of the whole prefix per group (quadratic).
                break
            if digits >= 8:
                yield PiiMatch("phone", m.start(), m.start() + run.end())
    for m in _PHONE_NANP.finditer(text):
        yield PiiMatch("phone", m.start(), m.end())
    for m in _PHONE_NATIONAL.finditer(text):
        number = m.group()
        if 9 <= len(_digits(number)) <= 12 and not _DATE_LIKE.match(number) and not _SSN_SHAPED.fullmatch(number):
            yield PiiMatch("phone", m.start(), m.end())


def _isbn13_valid(digits: str) -> bool:
    if len(digits) != 13 or not digits.startswith(("978", "979")):
        return False
    return sum((3 if i % 2 else 1) * (ord(ch) - 48) for i, ch in enumerate(digits)) % 10 == 0


def _card_number_plausible(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or digits[0] == "0" or len(set(digits)) == 1:
        return False
    # One ISBN-13 in ten passes the Luhn check too; no card network issues 978/979 numbers.
    return luhn_valid(digits) and not _isbn13_valid(digits)


def _find_cards(text: str) -> Iterator[PiiMatch]:
    for m in _CARD.finditer(text):
        if _card_number_plausible(_digits(m.group())):
            yield PiiMatch("card", m.start(), m.end())
        elif m.group("tail") and _card_number_plausible(_digits(text[m.start() : m.start("tail")])):
            # "4111 1111 1111 1111 123": a 16-digit card followed by a short group (a CVV, say).
            yield PiiMatch("card", m.start(), m.start("tail"))


def _find_ibans(text: str) -> Iterator[PiiMatch]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        expected = _IBAN_LENGTHS.get(raw[:2])
        if expected is None:
            continue
        # The pattern may have taken a following group of four too ("... 2874 2024"): keep the
        # registered length when it ends on a group boundary.
        seen, end = 0, len(raw)
        for index, char in enumerate(raw):
            if char != " ":
                seen += 1
                if seen == expected:
                    end = index + 1
                    break
        if seen < expected or (end < len(raw) and raw[end] != " "):
            continue
        if iban_valid(raw[:end].replace(" ", "")):
            yield PiiMatch("iban", m.start(), m.start() + end)


def _find_ips(text: str) -> Iterator[PiiMatch]:
    for m in _IPV4.finditer(text):
        yield PiiMatch("ip", m.start(), m.end())
    if "::" not in text and text.count(":") < 7:
        return
    for m in _IPV6.finditer(text):
        candidate = m.group()
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if sum(1 for group in candidate.split(":") if group) >= 2:
            yield PiiMatch("ip", m.start(), m.end())


def _find_ssns(text: str) -> Iterator[PiiMatch]:
    for m in _SSN.finditer(text):
        yield PiiMatch("ssn", m.start(), m.end())


_DETECTORS: tuple[Callable[[str], Iterator[PiiMatch]], ...] = (
    _find_cards, _find_ibans, _find_ssns, _find_emails, _find_ips, _find_phones,
)  # fmt: skip


def resolve_overlaps(candidates: Iterable[PiiMatch]) -> list[PiiMatch]:
    """Most specific first, then longest, then earliest; each kept only if it overlaps none kept."""
    ranked = sorted(candidates, key=lambda m: (-_PRIORITY.get(m.kind, -1), m.start - m.end, m.start))
    if not ranked:
        return []
    taken = bytearray(max(m.end for m in ranked))  # 1 where a kept finding lies
    kept: list[PiiMatch] = []
    for match in ranked:
        if match.end > match.start and taken.find(1, match.start, match.end) == -1:
            taken[match.start : match.end] = b"\x01" * (match.end - match.start)
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def find_pii(text: str) -> list[PiiMatch]:
    """Every piece of personal data in ``text``: non-overlapping, sorted by position."""
    candidates = [match for detect in _DETECTORS for match in detect(text)]
    return resolve_overlaps(candidates)


def redact_pii(text: str, matches: Sequence[PiiMatch]) -> str:
    """``text`` with each match replaced by its typed placeholder, e.g. ``[EMAIL]``."""
    pieces: list[str] = []
    position = 0
    for match in sorted(matches, key=lambda m: m.start):
        if match.start < position:
            continue  # overlaps the previous one, which is already replaced
        pieces.append(text[position : match.start])
        pieces.append(PLACEHOLDERS.get(match.kind, "[PII]"))
        position = match.end
    pieces.append(text[position:])
    return "".join(pieces)


def count_pii(matches: Iterable[PiiMatch]) -> dict[str, int]:
    """Findings by kind, only kinds found, in the order of ``KINDS``."""
    counts = dict.fromkeys(KINDS, 0)
    for match in matches:
        counts[match.kind] = counts.get(match.kind, 0) + 1
    return {kind: n for kind, n in counts.items() if n}


def describe_counts(counts: dict[str, int]) -> str:
    """``"2 e-mail addresses, 1 phone number"``: counts in words, never the values."""
    parts = []
    for kind, n in counts.items():
        singular, plural = _NOUNS.get(kind, (kind, kind))
        parts.append(f"{n} {singular if n == 1 else plural}")
    return ", ".join(parts)


def apply_pii_policy(text: str, policy: PiiPolicy) -> PiiOutcome:
    """Detect personal data and apply the tenant's policy.

    ``redact`` replaces each finding by its placeholder; ``reject`` returns a ``personal_data``
    rejection when anything is found (and the redacted text, so that even a rejected document's
    text carries no personal data); ``allow`` keeps the text as it is. Counts are returned under
    every policy, for the events.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown personal data policy {policy!r}: expected one of {', '.join(POLICIES)}")
    matches = find_pii(text)
    counts = count_pii(matches)
    if policy == "allow":
        return PiiOutcome(text=text, counts=counts)
    redacted = redact_pii(text, matches)
    if policy == "reject" and counts:
        rejection = Rejection(
            code="personal_data",
            message=f"the document contains personal data ({describe_counts(counts)}) and the tenant's "
            "personal data policy is 'reject': remove it and resubmit, or ask an administrator to set "
            "the policy to 'redact' (replace it by placeholders) or 'allow'",
        )
        return PiiOutcome(text=redacted, counts=counts, rejected=rejection)
    return PiiOutcome(text=redacted, counts=counts)
