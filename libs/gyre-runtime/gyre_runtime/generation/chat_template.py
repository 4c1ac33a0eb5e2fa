"""The ChatML prompt SmolLM2 was tuned on: one function, shared by every backend that formats its own prompts."""

from __future__ import annotations

from collections.abc import Sequence

from gyre_runtime.generation.base import ChatTurn


def format_chatml(messages: Sequence[ChatTurn]) -> str:
    """Every turn as `<|im_start|>role\\ncontent<|im_end|>\\n`, then the assistant's turn opened.
    No default system prompt is injected (onnxruntime-genai's apply_chat_template would add one)."""
    parts = [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages]
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)
