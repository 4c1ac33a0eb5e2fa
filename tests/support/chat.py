"""Chat completion request bodies, as the e2e tests send them to the gateway."""

from __future__ import annotations

from typing import Any


def user_question(content: str, *, retrieval: bool = False, **body: Any) -> dict[str, Any]:
    """One user message; retrieval off unless asked (the model answers from the question alone)."""
    return {"messages": [{"role": "user", "content": content}], "retrieval": retrieval, **body}
