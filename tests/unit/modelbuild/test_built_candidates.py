"""Every generator in the model store, the default and each candidate built there
(`just models-candidates`), loads with onnxruntime-genai, matches its manifest and knows the
capital of France: asked in the chat template its manifest names, or, for a base model (Gemma 3
270M as packaged: not tuned on chat turns), by a few-shot completion.

The default must be there (a failure otherwise, as in the other `models` tests); candidates are
checked when built, since CI builds only the defaults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gyre_modelbuild.recipes import RECIPES
from gyre_runtime.generation.chat_template import format_prompt
from gyre_runtime.models.manifest import load_manifest, verify_manifest
from tests.support.models import GENERATOR, built_models

pytestmark = pytest.mark.models

CAPITAL = [("user", "What is the capital of France?")]
BOS_TEXT = {"chatml": "", "gemma": "<bos>"}
FEW_SHOT = (
    "Question: What is the capital of Germany?\nAnswer: Berlin\n"
    "Question: What is the capital of Japan?\nAnswer: Tokyo\n"
    "Question: What is the capital of France?\nAnswer:"
)


def _generators_in_store() -> list[Path]:
    store = built_models(GENERATOR)
    names = [r.name for r in RECIPES if r.kind == "generation" and (store / r.name / "manifest.json").is_file()]
    return [store / name for name in names]


def _greedy_answer(folder: Path, prompt: str, max_new: int = 24) -> str:
    import onnxruntime_genai as og

    model = og.Model(og.Config(str(folder)))
    tokenizer = og.Tokenizer(model)
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return str(tokenizer.decode(out))


def test_every_generator_in_the_store_loads_and_knows_the_capital_of_france() -> None:
    folders = _generators_in_store()
    assert folders[0].name == GENERATOR
    for folder in folders:
        manifest = load_manifest(folder)
        assert verify_manifest(folder, check_hashes=False) == [], folder.name
        assert manifest.license and manifest.context_length, folder.name
        if manifest.instruction_tuned:
            answer = _greedy_answer(folder, format_prompt(manifest.chat_template, CAPITAL))
        else:  # the BOS token the template would write, then plain text to continue
            answer = _greedy_answer(folder, BOS_TEXT[manifest.chat_template] + FEW_SHOT)
        assert "Paris" in answer.split("\n", 1)[0], f"{folder.name}: {answer!r}"
