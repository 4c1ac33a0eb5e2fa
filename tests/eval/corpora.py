"""The committed evaluation corpora and the gate set: pages, golden sets and the Debian packages behind them."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gyre_runtime.state.golden_sets import GoldenItem, parse_golden_jsonl

EVAL_DIR = Path(__file__).resolve().parent
CORPORA_DIR = EVAL_DIR / "corpora"
GATE_DIR = EVAL_DIR / "gate"
GATE_NAME = "gate"


class CorpusManifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A corpus's ``corpus.json``: which installed pages make it up. A page's document id is its relative path."""

    name: str
    package: str
    package_version: str  # the version the golden set was built and checked against
    root: str  # where the package installs the pages
    documents: list[str]
    document_id_prefix: str = ""


@dataclass(frozen=True)
class Corpus:
    """A corpus ready to run: pages under ``root``, golden items whose ``relevant`` ids name those pages."""

    name: str
    root: Path
    documents: list[str]
    items: list[GoldenItem]
    package: str | None = None  # None: the pages are committed files (the gate set)
    package_version: str | None = None
    document_id_prefix: str = ""

    def document_id(self, document: str) -> str:
        return self.document_id_prefix + document

    def path(self, document: str) -> Path:
        return self.root / document


class PackageMissing(RuntimeError):
    """The corpus's pages are not installed and cannot be installed from here."""


def corpus_names() -> list[str]:
    return sorted(path.parent.name for path in CORPORA_DIR.glob("*/corpus.json"))


def load_manifest(name: str) -> CorpusManifest:
    path = CORPORA_DIR / name / "corpus.json"
    if not path.is_file():
        raise FileNotFoundError(f"no corpus {name!r}: {path} is missing (corpora: {', '.join(corpus_names())})")
    return msgspec.json.decode(path.read_bytes(), type=CorpusManifest)


def load_corpus(name: str) -> Corpus:
    """A corpus from its committed files only; its pages need not be installed (see ``ensure_package``)."""
    if name == GATE_NAME:
        return load_gate()
    manifest = load_manifest(name)
    return Corpus(
        name=manifest.name,
        root=Path(manifest.root),
        documents=list(manifest.documents),
        items=parse_golden_jsonl((CORPORA_DIR / name / "golden.jsonl").read_bytes()),
        package=manifest.package,
        package_version=manifest.package_version,
        document_id_prefix=manifest.document_id_prefix,
    )


def load_gate() -> Corpus:
    """The CI gate set: short committed documents, so it runs without any Debian package."""
    documents_dir = GATE_DIR / "documents"
    return Corpus(
        name=GATE_NAME,
        root=documents_dir,
        documents=sorted(path.name for path in documents_dir.iterdir() if path.is_file()),
        items=parse_golden_jsonl((GATE_DIR / "golden.jsonl").read_bytes()),
    )


def ensure_package(corpus: Corpus | CorpusManifest) -> str | None:
    """Makes sure the corpus's pages are installed: apt-get installs the package when it is missing and we are root.

    Returns the installed package version (None for committed pages). Raises PackageMissing, saying
    which package to install, when the pages are missing and cannot be installed here.
    """
    if corpus.package is None:
        return None
    root = Path(corpus.root)
    if _missing(root, corpus.documents):
        _install(corpus.package, root)
    missing = _missing(root, corpus.documents)
    if missing:
        raise PackageMissing(
            f"{corpus.package} is installed but {len(missing)} of the corpus's pages are not under {root} "
            f"(first: {missing[0]}); the corpus was built from {corpus.package} {corpus.package_version}"
        )
    return installed_version(corpus.package)


def installed_version(package: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    version = done.stdout.strip()
    return version if done.returncode == 0 and version else None


def _missing(root: Path, documents: list[str]) -> list[str]:
    return [document for document in documents if not (root / document).is_file()]


def _install(package: str, root: Path) -> None:
    advice = f"install the Debian package {package} (`sudo apt-get install -y {package}`) to get {root}"
    if not shutil.which("apt-get"):
        raise PackageMissing(f"{root} is missing and apt-get is not available: {advice}")
    if os.geteuid() != 0:
        raise PackageMissing(f"{root} is missing and this process is not root: {advice}")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The package lists of a fresh container are empty: update first, as an install alone would not find it.
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PackageMissing(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
