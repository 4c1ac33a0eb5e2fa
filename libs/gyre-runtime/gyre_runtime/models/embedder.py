"""Sentence embeddings with onnxruntime (the built all-MiniLM-L6-v2, int8 by default).

No torch or transformers: `tokenizers` for the text, onnxruntime for the graph, numpy around it.
The exported graph already mean-pools and L2-normalises (`sentence_embedding`); we normalise
once more in numpy, which is free and keeps the contract if another graph is dropped in.

int8 (dynamic quantisation) computes activation scales over the whole batch tensor, so a text's
vector moves slightly with its batch mates (cosine >= 0.98 vs alone); fp32 (`file=
"model_fp32.onnx"`, also the better choice on GPU) does not. `batch_size=1` makes int8
batch-independent at some throughput cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .manifest import load_manifest

BATCH_SIZE = 32
OUTPUT_NAME = "sentence_embedding"


def default_providers() -> list[str]:
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEmbedder:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        threads: int = 0,
        providers: list[str] | None = None,
        file: str = "model.onnx",
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_manifest(self.model_dir)
        self.file = file
        self.batch_size = max(1, batch_size)

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_dir / file),
            sess_options=opts,
            providers=providers if providers is not None else default_providers(),
        )
        self._input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self._output = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]

        # Public tokenizer: no truncation, no padding (callers count and chunk tokens with it).
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        # Private copy that truncates to what the model takes; padding is done per batch here.
        self._encoder = Tokenizer.from_str(self._tokenizer.to_str())
        self._encoder.enable_truncation(self.max_tokens)
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else pad_id

        dim = self.manifest.dimension
        if dim is None:
            shape = next(o.shape for o in self.session.get_outputs() if o.name == self._output)
            dim = int(shape[-1])
        self._dimension = int(dim)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return int(self.manifest.max_tokens or 256)

    @property
    def version(self) -> str:
        m = self.manifest
        if self.file == m.file:
            sha = m.sha256
        else:
            entry = m.files.get(self.file)
            sha = entry.sha256 if entry else m.sha256
        return f"{m.name}:{m.version}:{sha[:12]}"

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def embed_each(self, texts: Sequence[str]) -> np.ndarray:
        """As :meth:`embed`, each text in a model call of its own: its vector does not depend on the others.

        The int8 model quantises activations per call (dynamic quantisation: one scale for the whole
        batch), so a text's vector shifts with what it is batched with (cosine ~0.99). Queries are
        embedded this way: a search's results must not depend on which other searches ran at the same time.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self.embed([text])[0]
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), dimension), L2-normalised; each text truncated to max_tokens."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a string")
        n = len(texts)
        out = np.zeros((n, self.dimension), dtype=np.float32)
        if n == 0:
            return out
        encodings = self._encoder.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(1, int(lengths[idx].max()))
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                enc = encodings[i].ids
                ids[row, : len(enc)] = enc
                mask[row, : len(enc)] = 1
            feeds = {}
            for name in self._input_names:
                if name == "input_ids":
                    feeds[name] = ids
                elif name == "attention_mask":
                    feeds[name] = mask
                elif name == "token_type_ids":
                    feeds[name] = np.zeros_like(ids)
                else:
                    raise ValueError(f"unexpected model input {name!r}")
            (vectors,) = self.session.run([self._output], feeds)
            out[idx] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out
