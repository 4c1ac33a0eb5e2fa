"""The chat web page in a real browser (Debian chromium driven by Playwright) against the real stack."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright, expect

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Nothing may reach the internet from the test browser: no updates, no sync, no QUIC probes.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/gyre-chat.png")
ANSWER_TIMEOUT_MS = 180_000

DOCUMENT = """# The Quillfeather Observatory

The Quillfeather Observatory stands on the summit of Mount Orrin and was founded in 1887 by
the astronomer Tobias Wrenhaven. Its great refractor telescope has a lens of 91 centimetres.
Every autumn the observatory hosts the Lantern Night, when visitors watch the Andromeda galaxy.
"""
QUESTION = "Who founded the Quillfeather Observatory?"

# Records every change of the last answer on the page (its length, its turn's state, the time), so
# the test sees the streaming itself rather than only its end.
WATCH_ANSWER_JS = """() => {
  window.answerChanges = [];
  const record = () => {
    const turns = document.querySelectorAll('[data-testid="turn"]');
    const turn = turns[turns.length - 1];
    if (!turn) return;
    const length = turn.querySelector('[data-testid="answer"]').textContent.length;
    const last = window.answerChanges[window.answerChanges.length - 1];
    if (!last || last.length !== length || last.state !== turn.dataset.state) {
      window.answerChanges.push({length, state: turn.dataset.state, t: performance.now()});
    }
  };
  new MutationObserver(record).observe(document.getElementById('conversation'),
    {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-state']});
}"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(`just test` runs scripts/setup-test-browser.sh, which does it when run as root)"
        )
    return CHROMIUM


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


class PageProblems:
    """What went wrong inside the page: uncaught script errors and console errors (CSP violations included)."""

    def __init__(self) -> None:
        self.script_errors: list[str] = []
        self.console_errors: list[str] = []

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def on_page_error(self, error: Exception) -> None:
        self.script_errors.append(str(error))


@pytest_asyncio.fixture(loop_scope="session")
async def chat(browser: Browser, stack: LocalStack) -> AsyncIterator[tuple[Page, PageProblems]]:
    """A fresh browser context (empty localStorage) on the gateway's chat page."""
    context = await browser.new_context(base_url=stack.gateway_url, viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(30_000)
    problems = PageProblems()
    page.on("console", problems.on_console)
    page.on("pageerror", problems.on_page_error)
    await page.goto("/chat")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    yield page, problems
    await context.close()
    assert not problems.script_errors, problems.script_errors


async def ask(page: Page, question: str) -> None:
    await page.get_by_label("Question", exact=True).fill(question)
    await page.get_by_role("button", name="Ask", exact=True).click()


async def test_a_question_streams_an_answer_with_citations_and_a_thumbs_up_is_recorded(
    chat: tuple[Page, PageProblems], tenant_a: Tenant, client_a: httpx.Client, events: EventWatcher
) -> None:
    page, problems = chat
    doc_id = f"quillfeather-{uuid.uuid4().hex[:8]}"
    response = client_a.post(
        "/v1/documents",
        json={"id": doc_id, "text": DOCUMENT, "title": "Quillfeather Observatory", "content_type": "text/markdown"},
    )
    assert response.status_code == 202, response.text
    await events.wait_for("gyre.index.updated", doc_id)

    # The key survives a reload: it is kept in this browser's localStorage.
    await page.get_by_label("API key", exact=True).fill(tenant_a.key)
    await page.reload()
    await expect(page.get_by_label("API key", exact=True)).to_have_value(tenant_a.key)

    await page.evaluate(WATCH_ANSWER_JS)
    await ask(page, QUESTION)
    turn = page.get_by_test_id("turn").last
    await expect(turn.get_by_test_id("turn-question")).to_have_text(QUESTION)
    await expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)

    answer = turn.get_by_test_id("answer")
    final_text = await answer.text_content() or ""
    assert "Wrenhaven" in final_text, f"the answer does not say what the source says: {final_text!r}"
    await expect(answer).to_have_attribute("aria-busy", "false")
    changes: list[dict[str, Any]] = await page.evaluate("window.answerChanges")
    while_streaming = [c["length"] for c in changes if c["state"] == "streaming" and c["length"] > 0]
    assert len(set(while_streaming)) >= 3, f"the answer did not grow token by token: {changes}"
    assert while_streaming == sorted(while_streaming), f"the answer shrank while streaming: {changes}"
    assert while_streaming[-1] <= len(final_text)

    citation = turn.locator(f'[data-testid="citation"][data-document-id="{doc_id}"]')
    await expect(citation).to_be_visible()
    await expect(citation).to_contain_text("Quillfeather Observatory")
    assert (await citation.locator(".citation-excerpt").text_content() or "").strip()

    request_id = await answer.get_attribute("data-request-id")
    assert request_id and request_id.startswith("chatcmpl-")
    await expect(turn.get_by_test_id("turn-meta")).to_contain_text(request_id)

    feedback = turn.get_by_role("form", name="Rate this answer")
    await feedback.get_by_label("Comment on this answer (optional)").fill("Clear answer, right source.")
    await feedback.get_by_role("button", name="Thumbs up").click()
    await expect(feedback.get_by_test_id("feedback-status")).to_contain_text("recorded")
    await expect(feedback.get_by_test_id("thumbs-up")).to_have_attribute("aria-pressed", "true")

    recorded = json.loads(await events.wait_for("gyre.feedback.recorded", request_id))
    assert recorded["rating"] == 1
    assert recorded["comment"] == "Clear answer, right source."
    assert doc_id in recorded["cited_documents"]

    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert not problems.console_errors, problems.console_errors


async def test_a_wrong_key_shows_the_401_and_keeps_the_question(chat: tuple[Page, PageProblems]) -> None:
    page, _ = chat
    await page.get_by_label("API key", exact=True).fill("not-a-key")
    await ask(page, QUESTION)
    turn = page.get_by_test_id("turn").last
    await expect(turn).to_have_attribute("data-state", "error")
    await expect(turn.get_by_test_id("turn-error")).to_contain_text("API key was refused (401)")
    await expect(page.get_by_label("Question", exact=True)).to_have_value(QUESTION)
    await expect(turn.get_by_role("form", name="Rate this answer")).to_be_hidden()


async def test_a_rate_limited_question_shows_when_to_retry_and_holds_the_ask_button(
    chat: tuple[Page, PageProblems], tenant_a: Tenant
) -> None:
    page, _ = chat

    async def too_many_requests(route: Route) -> None:
        body = {
            "error": {
                "message": "rate limit of this key reached",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limited",
            }
        }
        await route.fulfill(status=429, headers={"Retry-After": "30"}, json=body)

    await page.route("**/v1/chat/completions", too_many_requests)
    await page.get_by_label("API key", exact=True).fill(tenant_a.key)
    await ask(page, QUESTION)
    turn = page.get_by_test_id("turn").last
    await expect(turn.get_by_test_id("turn-error")).to_contain_text("Too many requests (429)")
    await expect(turn.get_by_test_id("turn-error")).to_contain_text("Try again in 30 s")
    await expect(page.get_by_test_id("ask")).to_be_disabled()
    await expect(page.get_by_test_id("ask")).to_contain_text(" s)")


async def test_an_unreachable_gateway_shows_a_network_error(chat: tuple[Page, PageProblems], tenant_a: Tenant) -> None:
    page, _ = chat
    await page.route("**/v1/chat/completions", lambda route: route.abort("connectionrefused"))
    await page.get_by_label("API key", exact=True).fill(tenant_a.key)
    await ask(page, QUESTION)
    turn = page.get_by_test_id("turn").last
    await expect(turn.get_by_test_id("turn-error")).to_contain_text("Network error")
    await expect(page.get_by_test_id("ask")).to_be_enabled()


async def test_the_page_and_its_assets_load_from_the_gateway_alone(stack: LocalStack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        # Everything the page loads comes from the gateway itself (or is inline data): no CDN.
        assert re.findall(r'(?:src|href)="(?!web/|data:)[^"]*"', page.text) == []
        for asset, kind in (("web/chat.js", "text/javascript"), ("web/chat.css", "text/css")):
            response = await client.get(f"/{asset}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert (await client.get("/web/app.py")).status_code == 404
