"""Personal data in feedback comments and corrections, under the tenant's personal-data policy."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from gyre_contracts import FeedbackSubmitted
from gyre_runtime.guardrails.pii import PiiPolicy, apply_pii_policy, describe_counts


@dataclass(frozen=True)
class RedactedFeedback:
    """The feedback as it may be kept, what personal data was found, and the refusal under ``reject``."""

    feedback: FeedbackSubmitted
    pii_found: dict[str, int]
    refusal: str | None = None


def redact_feedback(feedback: FeedbackSubmitted, policy: PiiPolicy) -> RedactedFeedback:
    """``redact``: placeholders replace personal data; ``reject``: refused when there is any; ``allow``: as sent.

    Under ``reject`` the redacted text is returned too, so nothing downstream ever holds the values.
    """
    comment = apply_pii_policy(feedback.comment, policy)
    correction = apply_pii_policy(feedback.correction, policy)
    found = dict(comment.counts)
    for kind, count in correction.counts.items():
        found[kind] = found.get(kind, 0) + count
    kept = msgspec.structs.replace(feedback, comment=comment.text, correction=correction.text)
    refusal = None
    if comment.rejected or correction.rejected:
        refusal = (
            f"the comment or correction contains personal data ({describe_counts(found)}) and the tenant's "
            "personal data policy is 'reject': send it without, or ask an administrator to set the policy "
            "to 'redact'"
        )
    return RedactedFeedback(feedback=kept, pii_found=found, refusal=refusal)
