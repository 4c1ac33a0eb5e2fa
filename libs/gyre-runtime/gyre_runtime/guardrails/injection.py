"""Prompt injection in retrieved text: passages that speak to the model instead of informing the reader.

A document may contain "Ignore previous instructions and ..." (planted, or quoted from an article
about attacks). Such a chunk is flagged by name of the pattern it matched; the generate service keeps
flagged chunks out of the prompt altogether, so a small model cannot mistake them for instructions.

The patterns aim at precision: phrases addressed to an assistant ("ignore/disregard/forget the
previous instructions", "you are now a ...", "reveal your system prompt", chat-template control
tokens), not words that ordinary documents use ("instructions", "system", "prompt" alone).
"""

from __future__ import annotations

import re

_EARLIER = r"(?:previous|prior|preceding|earlier|above|foregoing|original|initial)"
_RULES = r"(?:instructions?|prompts?|rules|directions|directives|guidelines|context)"

INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("ignore_instructions", rf"\b(?:ignore|skip|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
                                rf"{_EARLIER}\s+{_RULES}"),
        ("disregard_instructions", rf"\bdisregard\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
                                   rf"(?:{_EARLIER}\s+{_RULES}|above\b|everything\s+(?:above|before))"),
        ("forget_instructions", rf"\bforget\s+(?:all\s+|everything\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
                                rf"(?:{_EARLIER}\s+)?(?:instructions|rules|guidelines|everything\s+(?:above|before))"),
        ("override_instructions", r"\b(?:override|overwrite|replace)\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?"
                                  r"(?:instructions|rules|guidelines|system\s+prompt)"),
        ("new_identity", r"\byou\s+are\s+now\s+(?:a|an|the|my|no\s+longer|acting|in\s+(?:developer|DAN)|DAN)\b"),
        ("from_now_on", r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must|shall|should)\b"),
        ("system_prompt", r"\b(?:reveal|print|show|repeat|output|leak|display|ignore|change|new|your)\s+"
                          r"(?:the\s+|your\s+|my\s+)?system\s+prompt\b"),
        ("new_instructions", r"(?:^|\n)\s*(?:#+\s*)?(?:new|updated|real)\s+instructions?\s*:"),
        ("chat_control_tokens", r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]"),
        ("role_switch", r"(?:^|\n)\s*(?:system|assistant)\s*:\s*(?:you|ignore|disregard|forget)\b"),
        ("jailbreak", r"\b(?:jailbreak|developer\s+mode\s+enabled|do\s+anything\s+now)\b"),
    )
)  # fmt: skip


def find_injections(text: str) -> list[str]:
    """Names of the patterns ``text`` matches (empty when it reads as plain information)."""
    return [name for name, pattern in INJECTION_PATTERNS if pattern.search(text)]


def looks_like_injection(text: str) -> bool:
    return bool(find_injections(text))
