// Gyre's chat page: streams answers from /v1/chat/completions (SSE over fetch), lists their
// sources, and sends thumbs up/down to /v1/feedback. Plain browser JavaScript, no dependencies.
"use strict";

(() => {
  const KEY_STORAGE = "gyre.apiKey";
  // Relative URLs, so the page also works when the gateway is mounted under a path prefix.
  const CHAT_URL = "v1/chat/completions";
  const FEEDBACK_URL = "v1/feedback";

  const byId = (id) => document.getElementById(id);
  const ui = {
    key: byId("api-key"),
    keyStatus: byId("key-status"),
    forgetKey: byId("forget-key"),
    error: byId("error"),
    conversation: byId("conversation"),
    empty: byId("empty"),
    askForm: byId("ask-form"),
    question: byId("question"),
    ask: byId("ask"),
    stop: byId("stop"),
    template: byId("turn-template"),
  };

  // --- The API key, kept in this browser's localStorage -------------------------------------

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return ""; // storage disabled: the key then lives in the field only
    }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      /* storage disabled */
    }
  }

  function currentKey() {
    return ui.key.value.trim();
  }

  function showKeyStatus() {
    ui.keyStatus.textContent = currentKey()
      ? "saved in this browser"
      : "enter the key printed by `just up` (also in <data dir>/api-key)";
  }

  // --- Errors a user can act on ---------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, message, retryAfterS) {
      super(message);
      this.status = status;
      this.retryAfterS = retryAfterS;
    }
  }

  class StreamError extends Error {}

  /** Retry-After is either seconds or an HTTP date; null when absent or unreadable. */
  function retryAfterSeconds(header) {
    if (!header) return null;
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, seconds);
    const date = Date.parse(header);
    return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
  }

  async function httpError(response) {
    let message = "";
    try {
      const body = await response.json();
      message = (body && body.error && body.error.message) || "";
    } catch {
      /* not JSON: the status line says enough */
    }
    const retryAfterS = retryAfterSeconds(response.headers.get("Retry-After"));
    return new HttpError(response.status, message || response.statusText || "request failed", retryAfterS);
  }

  function describe(error) {
    if (error instanceof HttpError) {
      const wait = error.retryAfterS === null ? "" : ` Try again in ${Math.ceil(error.retryAfterS)} s.`;
      switch (error.status) {
        case 401:
          return `The API key was refused (401): ${error.message}. Check the key at the top of the page.`;
        case 403:
          return `This key may not do that (403): ${error.message}. The page needs the query and feedback scopes.`;
        case 429:
          return `Too many requests (429): ${error.message}.${wait || " Wait a moment and try again."}`;
        case 503:
          return `The service is busy or starting (503): ${error.message}.${wait}`;
        default:
          return `Error ${error.status}: ${error.message}${wait}`;
      }
    }
    if (error instanceof StreamError) return `The answer failed: ${error.message}`;
    // fetch rejects with a TypeError when the network (or the gateway) is unreachable.
    if (error instanceof TypeError) {
      return "Network error: the gateway could not be reached. Check that it is running, then try again.";
    }
    return String(error.message || error);
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  // --- Ask button: busy while an answer streams, held while a Retry-After runs ---------------

  const askState = { controller: null, holdUntil: 0, timer: null };

  function refreshAskButton() {
    const busy = askState.controller !== null;
    const holdS = Math.ceil((askState.holdUntil - Date.now()) / 1000);
    ui.ask.disabled = busy || holdS > 0;
    ui.ask.textContent = holdS > 0 ? `Ask (${holdS} s)` : "Ask";
    ui.stop.hidden = !busy;
    if (holdS > 0 && askState.timer === null) {
      askState.timer = setInterval(() => {
        if (Date.now() >= askState.holdUntil) {
          clearInterval(askState.timer);
          askState.timer = null;
        }
        refreshAskButton();
      }, 250);
    }
  }

  function holdAsk(seconds) {
    askState.holdUntil = Math.max(askState.holdUntil, Date.now() + seconds * 1000);
    refreshAskButton();
  }

  // --- One question and its answer -----------------------------------------------------------

  let turnCount = 0;

  class Turn {
    constructor(question) {
      turnCount += 1;
      this.number = turnCount;
      this.el = ui.template.content.firstElementChild.cloneNode(true);
      this.el.id = `turn-${this.number}`;
      this.answer = this.el.querySelector(".answer");
      this.error = this.el.querySelector(".turn-error");
      this.sources = this.el.querySelector(".sources");
      this.citations = this.el.querySelector(".citations");
      this.meta = this.el.querySelector(".meta");
      this.feedback = this.el.querySelector(".feedback");
      this.el.querySelector(".question").textContent = question;
      this.text = document.createTextNode("");
      this.answer.append(this.text);
      this.requestId = "";
      this.usage = null;
      this.el.querySelectorAll(".thumb").forEach((button) => {
        button.addEventListener("click", () => this.rate(Number(button.dataset.rating), button));
      });
      ui.empty.hidden = true;
      ui.conversation.append(this.el);
    }

    setRequestId(id) {
      if (!id || id === this.requestId) return;
      this.requestId = id;
      this.el.dataset.requestId = id;
      this.answer.dataset.requestId = id;
    }

    append(text) {
      const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      this.text.appendData(text);
      if (nearBottom) window.scrollTo(0, document.body.scrollHeight);
    }

    showCitations(citations) {
      this.citations.replaceChildren(
        ...citations.map((citation) => {
          const item = document.createElement("li");
          item.id = `${this.el.id}-source-${citation.number}`;
          item.value = citation.number;
          item.dataset.testid = "citation";
          item.dataset.documentId = citation.document_id;
          item.dataset.chunkId = citation.chunk_id;
          const title = document.createElement("span");
          title.className = "citation-title";
          title.textContent = citation.title || citation.document_id;
          const docId = document.createElement("code");
          docId.className = "citation-document";
          docId.textContent = citation.document_id;
          const score = document.createElement("span");
          score.className = "citation-score hint";
          score.textContent = `score ${Number(citation.score).toFixed(2)}`;
          const excerpt = document.createElement("blockquote");
          excerpt.className = "citation-excerpt";
          excerpt.textContent = citation.excerpt;
          item.append(title, " ", docId, " ", score, excerpt);
          return item;
        }),
      );
      this.sources.hidden = citations.length === 0;
    }

    /** Once the text is final, its [n] markers become links to the numbered sources. */
    linkCitationMarkers() {
      const text = this.text.data;
      const parts = [];
      let last = 0;
      for (const match of text.matchAll(/\[(\d+)\]/g)) {
        const source = byId(`${this.el.id}-source-${match[1]}`);
        if (!source) continue;
        parts.push(text.slice(last, match.index));
        const link = document.createElement("a");
        link.href = `#${source.id}`;
        link.className = "marker";
        link.textContent = match[0];
        link.setAttribute("aria-label", `source ${match[1]}`);
        parts.push(link);
        last = match.index + match[0].length;
      }
      if (parts.length) this.answer.replaceChildren(...parts, text.slice(last));
    }

    finish() {
      this.el.dataset.state = "done";
      this.answer.setAttribute("aria-busy", "false");
      this.linkCitationMarkers();
      const tokens = this.usage ? ` · ${this.usage.completion_tokens} tokens` : "";
      this.meta.textContent = `${this.requestId}${tokens}`;
      this.meta.hidden = !this.requestId;
      // Only a completed answer has a generation record that feedback can be joined to.
      this.feedback.hidden = !this.requestId;
    }

    fail(message, state = "error") {
      this.el.dataset.state = state;
      this.answer.setAttribute("aria-busy", "false");
      this.answer.hidden = !this.text.data;
      this.error.textContent = message;
      this.error.hidden = false;
    }

    async rate(rating, button) {
      const status = this.feedback.querySelector(".feedback-status");
      const buttons = this.feedback.querySelectorAll(".thumb");
      const comment = this.feedback.querySelector(".comment");
      buttons.forEach((b) => (b.disabled = true));
      status.textContent = "Sending…";
      try {
        const response = await fetch(FEEDBACK_URL, {
          method: "POST",
          headers: { Authorization: `Bearer ${currentKey()}`, "Content-Type": "application/json" },
          body: JSON.stringify({ request_id: this.requestId, rating, comment: comment.value.trim() }),
        });
        if (!response.ok) throw await httpError(response);
        button.setAttribute("aria-pressed", "true");
        comment.disabled = true;
        this.feedback.dataset.state = "sent";
        status.textContent = "Thank you, your feedback was recorded.";
      } catch (error) {
        buttons.forEach((b) => (b.disabled = false));
        this.feedback.dataset.state = "error";
        status.textContent = describe(error);
        if (error instanceof HttpError && error.retryAfterS !== null) holdAsk(error.retryAfterS);
      }
    }
  }

  // --- Reading the SSE stream -----------------------------------------------------------------

  /** The `data:` payloads of a text/event-stream body, as they arrive. */
  async function* sseData(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = event
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) yield data;
      }
      if (done) return;
    }
  }

  async function readStream(turn, response) {
    for await (const data of sseData(response.body)) {
      if (data === "[DONE]") return true;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new StreamError(chunk.error.message || "unknown error");
      turn.setRequestId(chunk.id);
      const choice = chunk.choices && chunk.choices[0];
      const text = choice && choice.delta && choice.delta.content;
      if (text) turn.append(text);
      if (chunk.citations) turn.showCitations(chunk.citations);
      if (chunk.usage) turn.usage = chunk.usage;
    }
    return false;
  }

  /** A server that answered without streaming: one chat.completion. */
  function readCompletion(turn, completion) {
    turn.setRequestId(completion.id);
    turn.append(completion.choices[0].message.content || "");
    turn.showCitations(completion.citations || []);
    turn.usage = completion.usage || null;
  }

  async function ask(question) {
    const key = currentKey();
    if (!key) {
      showError("Enter an API key first (at the top of the page).");
      ui.key.focus();
      return;
    }
    showError("");
    const turn = new Turn(question);
    const controller = new AbortController();
    askState.controller = controller;
    refreshAskButton();
    try {
      const response = await fetch(CHAT_URL, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${key}`,
          "Content-Type": "application/json",
          Accept: "text/event-stream",
        },
        body: JSON.stringify({
          messages: [{ role: "user", content: question }],
          stream: true,
          stream_options: { include_usage: true },
        }),
        signal: controller.signal,
      });
      if (!response.ok) throw await httpError(response);
      if ((response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        if (!(await readStream(turn, response))) {
          throw new StreamError("the answer stream ended before it was complete (connection lost?)");
        }
      } else {
        readCompletion(turn, await response.json());
      }
      turn.finish();
    } catch (error) {
      if (error.name === "AbortError") {
        turn.fail("Stopped.", "stopped");
      } else {
        turn.fail(describe(error));
        if (error instanceof HttpError && error.retryAfterS !== null) holdAsk(error.retryAfterS);
        // Refused before any answer: give the question back so it can be sent again.
        if (!turn.text.data && !ui.question.value) ui.question.value = question;
      }
    } finally {
      askState.controller = null;
      refreshAskButton();
    }
  }

  // --- Wiring ---------------------------------------------------------------------------------

  ui.key.value = storedKey();
  showKeyStatus();
  ui.key.addEventListener("input", () => {
    storeKey(currentKey());
    showKeyStatus();
  });
  ui.forgetKey.addEventListener("click", () => {
    ui.key.value = "";
    storeKey("");
    showKeyStatus();
    ui.key.focus();
  });
  document.getElementById("key-form").addEventListener("submit", (event) => event.preventDefault());

  ui.askForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = ui.question.value.trim();
    if (!question || ui.ask.disabled) return;
    ui.question.value = "";
    ask(question);
  });
  ui.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.askForm.requestSubmit();
    }
  });
  ui.stop.addEventListener("click", () => {
    if (askState.controller) askState.controller.abort();
  });

  refreshAskButton();
  document.body.dataset.ready = "true";
})();
