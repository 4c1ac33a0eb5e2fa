"""Prompt building: numbered sources within a token budget, duplicates dropped, citations numbered."""

from __future__ import annotations

from gyre_contracts import ChatMessage, RetrievedChunk
from gyre_generate.prompting import SYSTEM_WITHOUT_SOURCES, build_prompt, citations_for, last_user_message


def words(text: str) -> int:
    return len(text.split())


def hit(i: int, text: str) -> RetrievedChunk:
    return RetrievedChunk(document_id=f"d{i}", chunk_id=f"c{i}", version=1, index=0, score=1 - i / 10, text=text)


QUESTION = (ChatMessage(role="user", content="What is the capital of France?"),)


def test_sources_are_numbered_in_rank_order_and_duplicates_dropped() -> None:
    hits = [hit(1, "Paris is the capital."), hit(2, "Paris is the capital."), hit(3, "France is in Europe.")]
    prompt = build_prompt(QUESTION, hits, words, budget_tokens=500)
    system = prompt.messages[0][1]
    assert "[1] Paris is the capital." in system and "[2] France is in Europe." in system
    assert [s.document_id for s in prompt.sources] == ["d1", "d3"]
    assert [c.number for c in citations_for(prompt.sources)] == [1, 2]
    assert prompt.messages[-1] == ("user", "What is the capital of France?")


def test_sources_that_do_not_fit_the_budget_are_left_out() -> None:
    hits = [hit(1, "short one"), hit(2, "a much longer source " * 50)]
    prompt = build_prompt(QUESTION, hits, words, budget_tokens=60)
    assert [s.document_id for s in prompt.sources] == ["d1"]


def test_without_sources_the_plain_instruction_is_used() -> None:
    prompt = build_prompt(QUESTION, [], words, budget_tokens=500)
    assert prompt.messages[0] == ("system", SYSTEM_WITHOUT_SOURCES)
    assert prompt.sources == []


def test_the_question_is_the_last_user_message() -> None:
    messages = (
        ChatMessage(role="user", content="first"),
        ChatMessage(role="assistant", content="answer"),
        ChatMessage(role="user", content="second"),
    )
    assert last_user_message(messages) == "second"
