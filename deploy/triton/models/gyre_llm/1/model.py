"""Triton Python-backend model gyre_llm: onnxruntime-genai token streaming, one response per token.

Decoupled: `execute` hands each request to one owner thread and returns at once, so a single
model instance serves many streams. The owner thread steps up to `max_active` requests
round-robin, one token (or one prefill chunk) each, like gyre_runtime.generation.onnx in the
services: `generate_next_token` holds the GIL, so more threads would add no throughput. It checks
`is_cancelled()` before every step and drops a cancelled request's generator (and KV cache).
Every response carries the text delta and the running `prompt_tokens`/`completion_tokens`; the
last one also `finish_reason` ("stop" or "length") and the COMPLETE_FINAL flag. Stop sequences
are the client's business (it holds back the tail and cancels).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

# The stub ignores PYTHONPATH and starts with the base interpreter's site-packages (numpy 2
# there): the Triton venv's own packages (numpy<2, onnxruntime-genai) go first. run.sh sets it.
for _site in reversed(os.environ.get("GYRE_TRITON_SITE_PACKAGES", "").split(os.pathsep)):
    if _site and _site not in sys.path:
        sys.path.insert(0, _site)

import numpy as np  # noqa: E402
import onnxruntime_genai as og  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
DEFAULTS: dict[str, Any] = {"max_tokens": 256, "temperature": 0.0, "top_p": 1.0, "top_k": 50, "seed": None}


class _Request:
    """One stream: its prompt and search options, and the sender its responses go to."""

    __slots__ = ("completion_tokens", "decoder", "generator", "params", "pending", "prompt", "prompt_tokens", "sender")

    def __init__(self, prompt: str, params: dict[str, Any], sender: Any) -> None:
        self.prompt = prompt
        self.params = params
        self.sender = sender
        self.generator: Any = None
        self.decoder: Any = None
        self.pending: Any = ()  # prompt tokens not yet appended (prefilled in chunks)
        self.prompt_tokens = 0
        self.completion_tokens = 0


def _scalar(request: Any, name: str) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return DEFAULTS[name]
    value = tensor.as_numpy().reshape(-1)[0]
    return value.item() if hasattr(value, "item") else value


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException("gyre_llm streams tokens: its config must set decoupled: true")
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        model_dir = Path(os.environ.get("GYRE_TRITON_MODEL_DIR") or parameters.get("model_dir", ""))
        if not model_dir.is_absolute():  # relative to this model's folder in the repository
            model_dir = (Path(args["model_repository"]) / model_dir).resolve()
        if not (model_dir / "genai_config.json").is_file():
            raise pb_utils.TritonModelException(
                f"{model_dir} holds no onnxruntime-genai model: build it (`just models`) or set GYRE_TRITON_MODEL_DIR"
            )
        og_config = og.Config(str(model_dir))
        threads = int(os.environ.get("GYRE_TRITON_THREADS") or parameters.get("threads") or 0)
        if threads > 0:
            og_config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
        self.model = og.Model(og_config)
        self.tokenizer = og.Tokenizer(self.model)
        self.eos = frozenset(int(t) for t in self.tokenizer.eos_token_ids)
        genai = json.loads((model_dir / "genai_config.json").read_text())
        self.context_length = int(genai["model"]["context_length"])
        self.max_active = max(1, int(parameters.get("max_active") or 8))
        # A long prompt goes in chunks between the other streams' tokens, not in one GIL-holding call.
        self.prefill_chunk = max(1, int(parameters.get("prefill_chunk") or 128))
        self.logger = pb_utils.Logger
        self.logger.log_info(f"gyre_llm: {model_dir} (numpy {np.__version__}, onnxruntime-genai {og.__version__})")
        self.requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self.worker = threading.Thread(target=self._run, name="gyre_llm", daemon=True)
        self.worker.start()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt_tensor = pb_utils.get_input_tensor_by_name(request, "prompt")
                if prompt_tensor is None:
                    raise ValueError("input 'prompt' is required")
                raw = prompt_tensor.as_numpy().reshape(-1)[0]
                prompt = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                params = {name: _scalar(request, name) for name in DEFAULTS}
            except (ValueError, UnicodeDecodeError) as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=FINAL)
                continue
            self.requests.put(_Request(prompt, params, sender))
        return None

    def finalize(self) -> None:
        self.requests.put(None)
        self.worker.join(timeout=10)  # a step takes milliseconds; a prefill chunk well under a second

    # -- owner thread ------------------------------------------------------------------------

    def _run(self) -> None:
        active: list[_Request] = []
        while True:
            while len(active) < self.max_active:
                try:
                    item = self.requests.get(block=not active)
                except queue.Empty:
                    break
                if item is None:  # finalize: end what is running
                    for r in active:
                        with contextlib.suppress(Exception):  # a stream already gone
                            self._send(r, "", final=True, finish_reason="cancelled")
                    return
                if self._start(item):
                    active.append(item)
            for r in list(active):
                if not self._step(r):
                    active.remove(r)
                    r.generator = None  # frees the KV cache now

    def _start(self, r: _Request) -> bool:
        try:
            if r.sender.is_cancelled():
                self._close(r)
                return False
            tokens = self.tokenizer.encode(r.prompt)
            r.prompt_tokens = len(tokens)
            p = r.params
            if r.prompt_tokens == 0:
                raise ValueError("empty prompt")
            if r.prompt_tokens >= self.context_length:
                raise ValueError(f"prompt has {r.prompt_tokens} tokens; the model's context is {self.context_length}")
            if int(p["max_tokens"]) <= 0:
                self._send(r, "", final=True, finish_reason="length")
                return False
            options: dict[str, Any] = {"max_length": min(r.prompt_tokens + int(p["max_tokens"]), self.context_length)}
            if float(p["temperature"]) > 0:
                options.update(do_sample=True, temperature=float(p["temperature"]), top_p=float(p["top_p"]),
                               top_k=int(p["top_k"]))
            else:
                options.update(do_sample=False)
            if p["seed"] is not None:
                options["random_seed"] = int(p["seed"])
            gp = og.GeneratorParams(self.model)
            gp.set_search_options(**options)
            r.generator = og.Generator(self.model, gp)
            r.decoder = self.tokenizer.create_stream()
            r.pending = tokens
            return True
        except Exception as exc:
            self._fail(r, exc)
            return False

    def _step(self, r: _Request) -> bool:
        """One prefill chunk or one token for one request; False when the request is over."""
        try:
            if r.sender.is_cancelled():
                self.logger.log_info(f"gyre_llm: request cancelled after {r.completion_tokens} tokens")
                self._close(r)
                return False
            if len(r.pending):
                r.generator.append_tokens(r.pending[: self.prefill_chunk])
                r.pending = r.pending[self.prefill_chunk :]
                return True
            if r.generator.is_done():
                return self._send(r, "", final=True, finish_reason="length")
            r.generator.generate_next_token()
            token = int(r.generator.get_next_tokens()[0])
            r.completion_tokens += 1
            if token in self.eos:
                return self._send(r, "", final=True, finish_reason="stop")
            delta = r.decoder.decode(token)
            if r.completion_tokens >= int(r.params["max_tokens"]) or r.generator.is_done():
                return self._send(r, delta, final=True, finish_reason="length")
            return self._send(r, delta)
        except Exception as exc:
            self._fail(r, exc)
            return False

    def _send(self, r: _Request, text: str, *, final: bool = False, finish_reason: str = "") -> bool:
        """One response; True while the stream goes on."""
        outputs = [
            pb_utils.Tensor("text", np.array([text.encode("utf-8")], dtype=np.object_)),
            pb_utils.Tensor("prompt_tokens", np.array([r.prompt_tokens], dtype=np.int32)),
            pb_utils.Tensor("completion_tokens", np.array([r.completion_tokens], dtype=np.int32)),
            pb_utils.Tensor("finish_reason", np.array([finish_reason.encode()], dtype=np.object_)),
        ]
        response = pb_utils.InferenceResponse(output_tensors=outputs)
        if final:
            self._close(r, response)
        else:
            r.sender.send(response)
        return not final

    def _fail(self, r: _Request, exc: Exception) -> None:
        try:
            self._close(r, pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}")))
        except Exception as send_exc:  # the stream is gone (cancelled, closed): nothing to tell
            self.logger.log_warn(f"gyre_llm: could not report {exc!r}: {send_exc!r}")

    @staticmethod
    def _close(r: _Request, response: Any = None) -> None:
        """The final response (or the bare final flag); the sender is dropped at once, not whenever
        the request object goes, since the server keeps a request's response factory (and so the
        model, at unload) while the stub holds its sender."""
        sender, r.sender = r.sender, None
        if sender is None:
            return
        if response is None:
            sender.send(flags=FINAL)
        else:
            sender.send(response, flags=FINAL)
