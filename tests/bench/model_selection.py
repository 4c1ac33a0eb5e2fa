"""The model-selection report (issue 10): `gyre models compare` on the Python documentation's hand-checked set.

Installs python3.11-doc if missing (as the answer benchmark does), copies the 105 pages of the
python-doc corpus (tests/eval/corpora/python-doc) into a temporary folder (document id = path under
it, as the golden set's labels name them), and compares the default models with every built
candidate through the evaluate service. Writes docs/model-selection.md and docs/model-selection.png.

Run: `just model-selection` (builds the candidates first with `just models-candidates`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gyre_cli.stack import find_executable
from tests.eval.corpora import ensure_package, load_corpus

REPO = Path(__file__).resolve().parents[2]
SET = REPO / "tests/eval/corpora/python-doc/hand.jsonl"
CANDIDATES = (
    "smollm2-135m-instruct", "smollm2-135m-instruct-int8", "smollm2-135m-instruct-fp32", "gemma3-270m",
    "all-minilm-l6-v2", "all-minilm-l6-v2-fp32",
)


def main() -> int:
    corpus = load_corpus("python-doc")
    ensure_package(corpus)
    with tempfile.TemporaryDirectory(prefix="gyre-model-selection-") as folder:
        pages = Path(folder)
        for document in corpus.documents:
            target = pages / corpus.document_id(document)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(corpus.root) / document, target)
        argv = [find_executable("gyre"), "models", "compare", "--set", str(SET), "--documents", str(pages),
                "--out", str(REPO / "docs/model-selection.md"), "--env", "GYRE_ONNX_THREADS=2",
                "--reproduce", "just model-selection", *sys.argv[1:], *CANDIDATES]
        return subprocess.run(argv, cwd=REPO, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
