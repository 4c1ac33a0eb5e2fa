"""Every KV bucket and Object Store Gyre keeps state in: name, history, purpose. The one table of them.

The topology declares what is listed here; each store names the entry it owns (``KvStore.bucket``).
Names start with ``gyre``, replaced by the subject prefix of a deployment (``Bus.bucket_name``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BucketSpec:
    name: str
    history: int = 1
    description: str = ""


# -- key-value buckets -----------------------------------------------------------------------------

DOCUMENTS = BucketSpec("gyre_documents", history=5, description="document registry: status, version, reasons, timings")
GENERATIONS = BucketSpec("gyre_generations", description="generation records by request id, for the feedback join")
FEEDBACK_TALLIES = BucketSpec(
    "gyre_feedback_tallies", description="feedback counts per prompt version and per model"
)
MODELS = BucketSpec(
    "gyre_models",
    description="model hub: pushed versions, aliases and every move of them; the versions running services serve",
)
DEDUP = BucketSpec(
    "gyre_dedup", description="de-duplication index: content hashes, MinHash signatures, LSH bands"
)
TENANTS = BucketSpec("gyre_tenants", description="per-tenant policies (personal data, duplicates)")
PROMPTS = BucketSpec(
    "gyre_prompts", history=10, description="prompt templates by name and version, and their labels"
)
API_KEYS = BucketSpec(
    "gyre_api_keys", description="API keys by sha256 of the key: tenant, scopes, rate limit, revoked"
)
INDEX = BucketSpec("gyre_index", history=10, description="vector index: the collection serving search, its model")
EVALUATIONS = BucketSpec(
    "gyre_evaluations", description="evaluation runs: status, progress, metrics; items scored so far"
)

BUCKETS: tuple[BucketSpec, ...] = (
    DOCUMENTS, GENERATIONS, FEEDBACK_TALLIES, MODELS, DEDUP, TENANTS, PROMPTS, API_KEYS, INDEX, EVALUATIONS,
)

# -- object stores (large values: files, datasets, results) ----------------------------------------

GOLDEN_SETS = BucketSpec("gyre_golden_sets", description="golden sets: <tenant>/<set>/<version>.jsonl")
# Shares its name with the KV bucket of runs: one evaluation's state and results under one name.
EVALUATION_RESULTS = BucketSpec(
    "gyre_evaluations", description="evaluation results: per-item rows and reports, by evaluation id"
)

MODEL_ARTIFACTS = BucketSpec(
    "gyre_model_artifacts",
    description="model hub: every file of each pushed model version, as <name>/<version>/<hash12>/<file>",
)

OBJECT_STORES: tuple[BucketSpec, ...] = (GOLDEN_SETS, EVALUATION_RESULTS, MODEL_ARTIFACTS)
