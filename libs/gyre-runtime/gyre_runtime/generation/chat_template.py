"""Chat turns to the prompt text a model was tuned on, named by its manifest's `chat_template`.

One module shared by every backend that formats its own prompts. No default system prompt is
injected (onnxruntime-genai's apply_chat_template would add one). A BOS token the model needs is
written here, as text: onnxruntime-genai's tokenizer never adds one itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gyre_runtime.generation.base import ChatTurn


def format_chatml(messages: Sequence[ChatTurn]) -> str:
    """SmolLM2's ChatML: every turn as `<|im_start|>role\\ncontent<|im_end|>\\n`, then the
    assistant's turn opened."""
    parts = [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages]
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def format_gemma(messages: Sequence[ChatTurn]) -> str:
    """Gemma's turns after `<bos>` (Gemma needs it): `<start_of_turn>user\\ncontent<end_of_turn>\\n`,
    the assistant's role named `model`, then the model's turn opened. Gemma has no system role: as
    in Gemma's own template, system text goes before the first user turn's content, separated by
    a blank line."""
    system = "\n\n".join(content for role, content in messages if role == "system")
    parts: list[str] = ["<bos>"]
    for role, content in messages:
        if role == "system":
            continue
        if system and role == "user":
            content, system = f"{system}\n\n{content}", ""
        parts.append(f"<start_of_turn>{'model' if role == 'assistant' else role}\n{content}<end_of_turn>\n")
    if system:  # system text and no user turn: it becomes the user turn
        parts.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


TEMPLATES: dict[str, Callable[[Sequence[ChatTurn]], str]] = {
    "chatml": format_chatml,
    "gemma": format_gemma,
}


def format_prompt(template: str, messages: Sequence[ChatTurn]) -> str:
    """The prompt for `messages` in the named template (a manifest's `chat_template`)."""
    try:
        formatter = TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown chat template {template!r}; known: {', '.join(sorted(TEMPLATES))}") from None
    return formatter(messages)
