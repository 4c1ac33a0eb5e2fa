"""Gyre's settings: one typed object, read from ``GYRE_*`` environment variables, documented here only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gyre_contracts.limits import TOP_K_MAX
from gyre_runtime.guardrails.pii import PiiPolicy
from gyre_runtime.vectorstore.base import DEFAULT_COLLECTION

ENV_PREFIX = "GYRE_"

# Default HTTP port of each process; GYRE_HTTP_PORT overrides it for one process.
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8080,
    "ingest": 8091,
    "embed": 8092,
    "generate": 8093,
    "feedback": 8094,
    "improve": 8095,
    "monitor": 8096,
    "evaluate": 8097,
}


# Settings with fixed choices: a value outside them is refused when the settings load, in every process.
ChunkStrategy = Literal["structure", "tokens"]
DuplicatePolicy = Literal["reject", "keep"]
GenerationBackend = Literal["onnx", "triton", "openai"]


def _doc(text: str, **constraints: Any) -> Any:
    """A setting's description (docs/settings.md shows it) and the bounds its value must keep."""
    return msgspec.Meta(description=text, **constraints)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of every Gyre process. Env var = ``GYRE_`` + the field name in upper case."""

    data_dir: Annotated[str, _doc("Local state: NATS store, Qdrant Edge shard, models, API key.")] = "./data"
    model_dir: Annotated[str, _doc("Model store; empty means `<data_dir>/models`.")] = ""
    nats_url: Annotated[str, _doc("NATS server(s), comma separated.")] = "nats://127.0.0.1:4222"
    subject_prefix: Annotated[str, _doc("First token of every subject.")] = "gyre"
    stream_replicas: Annotated[int, _doc("JetStream replicas per stream (3 on a cluster).")] = 1
    http_host: Annotated[str, _doc("Address each process's HTTP server binds.")] = "127.0.0.1"
    http_port: Annotated[int, _doc("HTTP port; 0 means the process's default (gateway 8080, services 8091-8097).")] = 0
    log_level: Annotated[str, _doc("debug, info, warning or error.")] = "info"
    api_keys: Annotated[str, _doc("Extra API keys, `key1:tenant-a,key2:tenant-b`.")] = ""
    api_key_file: Annotated[
        str, _doc("File holding `key:tenant` lines; empty means `<data_dir>/api-key` if present.")
    ] = ""
    api_key_cache_s: Annotated[
        float, _doc("How long the gateway trusts a key it looked up in `gyre_api_keys`; a revoke acts within it.")
    ] = 2.0
    rate_limit_per_minute: Annotated[
        int,
        _doc("Requests per minute per API key, per gateway replica, unless the key sets its own; 0: no limit.", ge=0),
    ] = 1200
    max_request_bytes: Annotated[
        int, _doc("Largest request body of the non-document `/v1` routes (documents follow GYRE_MAX_DOCUMENT_CHARS).")
    ] = 4 * 1024 * 1024
    max_input_chars: Annotated[int, _doc("Most characters all messages of one chat completion may have together.")] = (
        32_000
    )
    max_tokens_limit: Annotated[
        int, _doc("Largest `max_tokens` a chat completion may ask for (the generation model's context window).")
    ] = 8192
    generation_queue_allowance: Annotated[
        int, _doc("Chat requests the gateway lets wait beyond the generate replicas' capacity before answering 429.")
    ] = 4
    generate_load_timeout_s: Annotated[
        float, _doc("How long the gateway waits for a generate replica to say its load; none answers: 503.")
    ] = 0.5
    first_token_timeout_s: Annotated[
        float, _doc("How long the gateway waits for the first token (or the answer) of a chat completion: then 504.")
    ] = 60.0
    embedding_model: Annotated[str, _doc("Embedding model folder name in the model store.")] = "all-minilm-l6-v2"
    generation_model: Annotated[
        str, _doc("Generation model folder name in the model store: served while the hub has no `generator@<alias>`.")
    ] = "smollm2-135m-instruct"
    generation_alias: Annotated[
        str,
        _doc(
            "Model hub alias the generate service serves and follows (`generator@<alias>`): a promotion swaps the"
            " model with no request dropped. Empty: serve the `GYRE_GENERATION_MODEL` folder, never swap."
            " In-process (`onnx`) backend only."
        ),
    ] = "production"
    onnx_threads: Annotated[
        int, _doc("ONNX Runtime intra-op threads per model; 0 means one per CPU core of this machine.")
    ] = 0
    chunk_strategy: Annotated[
        ChunkStrategy, _doc("`structure` (headings, paragraphs, sentences, pages) or `tokens` (plain token windows).")
    ] = "structure"
    chunk_tokens: Annotated[int, _doc("Chunk size in embedding-model tokens.")] = 200
    chunk_overlap: Annotated[int, _doc("Tokens shared by consecutive chunks.")] = 40
    quality_min_chars: Annotated[int, _doc("Documents shorter than this (after cleaning) are rejected.")] = 20
    quality_min_alpha_ratio: Annotated[
        float, _doc("Minimum share of letters among non-space characters (`too_little_text`).")
    ] = 0.5
    quality_max_repeated_line_ratio: Annotated[
        float, _doc("Maximum share of repeated lines (`too_many_repeated_lines`).")
    ] = 0.5
    json_text_fields: Annotated[str, _doc("JSON/JSONL fields holding text, comma separated (dotted paths).")] = (
        "text,content,body"
    )
    csv_text_columns: Annotated[str, _doc("CSV columns to index, comma separated; empty means all.")] = ""
    max_document_chars: Annotated[int, _doc("Documents longer than this are rejected (`too_large`).")] = 2_000_000
    embed_batch_size: Annotated[int, _doc("Chunks per ONNX Runtime call in the embed service.")] = 32
    embed_max_wait_ms: Annotated[
        float, _doc("How long the embed service waits for a batch to fill across messages.")
    ] = 10.0
    pii_policy: Annotated[
        PiiPolicy, _doc("Personal data in documents: redact, reject or allow (per-tenant override: `gyre tenants`).")
    ] = "redact"
    duplicate_policy: Annotated[DuplicatePolicy, _doc("Duplicate documents within a tenant: reject or keep.")] = (
        "reject"
    )
    near_duplicate_threshold: Annotated[
        float, _doc("Estimated Jaccard similarity (MinHash) at or above which a document is a near-duplicate.")
    ] = 0.9
    qdrant_path: Annotated[str, _doc("Qdrant Edge shard folder; empty means `<data_dir>/qdrant`.")] = ""
    qdrant_url: Annotated[
        str, _doc("Qdrant server URL (`http://host:6333`); set it to use qdrant-client instead of Qdrant Edge.")
    ] = ""
    qdrant_collection: Annotated[
        str, _doc("Collection serving search; `gyre reindex` builds a new one and switches to it.")
    ] = DEFAULT_COLLECTION
    generation_backend: Annotated[
        GenerationBackend,
        _doc("Who runs the language model: `onnx` (in-process), `triton` or `openai` (any compatible server)."),
    ] = "onnx"
    triton_url: Annotated[str, _doc("Triton gRPC address (`host:8001`) for the `triton` backend.")] = ""
    triton_model: Annotated[str, _doc("Model name in the Triton repository.")] = "gyre_llm"
    openai_base_url: Annotated[
        str, _doc("Base URL of an OpenAI-compatible server (vLLM, TGI, NIM, Ollama) for the `openai` backend.")
    ] = ""
    openai_api_key: Annotated[str, _doc("API key for `GYRE_OPENAI_BASE_URL` (sent as a Bearer token).")] = ""
    openai_model: Annotated[str, _doc("Model name the OpenAI-compatible server expects.")] = ""
    openai_extra_body: Annotated[
        str, _doc("JSON object merged into every `openai` request body: non-standard fields such as `top_k`.")
    ] = ""
    openai_context_length: Annotated[int, _doc("Context window (tokens) of the `openai` backend's model.")] = 8192
    retrieval_top_k: Annotated[
        int, _doc(f"Chunks retrieved for a chat completion (1 to {TOP_K_MAX}).", ge=1, le=TOP_K_MAX)
    ] = 4
    max_new_tokens: Annotated[int, _doc("Default `max_tokens` of a completion.")] = 256
    retrieval_min_score: Annotated[
        float,
        _doc(
            "Relevance floor: cosine similarity (dense, -1..1) of the best retrieved chunk below which the"
            " answer is the prompt's no-answer text, without calling the model; 0 disables."
        ),
    ] = 0.2
    prompt_name: Annotated[str, _doc("Prompt template (`gyre prompts`) the generate service answers with.")] = (
        "rag-answer"
    )
    evaluation_concurrency: Annotated[
        int, _doc("Golden items one evaluation asks the live pipeline at once.", ge=1, le=64)
    ] = 2
    evaluation_item_timeout_s: Annotated[
        float,
        _doc(
            "An evaluation item with no word from generate this long ends the run if no generate replica answers.", gt=0
        ),
    ] = 120.0
    blocked_terms: Annotated[
        str,
        _doc(
            "Terms (comma separated, case-insensitive, whole words) a question may not contain (refused)"
            " and an answer never shows (`[BLOCKED]`)."
        ),
    ] = ""
    max_input_tokens: Annotated[
        int, _doc("Most tokens (generation model's) all messages of one request may have together.")
    ] = 2048
    max_deliver: Annotated[int, _doc("Deliveries before a failing message goes to the dead-letter stream.")] = 5
    request_timeout_s: Annotated[float, _doc("How long the gateway waits for a service's reply.")] = 120.0
    embeddings_max_inputs: Annotated[
        int, _doc("Most inputs one `/v1/embeddings` request may have (400 past it).", ge=1)
    ] = 256
    embeddings_max_chars: Annotated[
        int, _doc("Most characters all inputs of one `/v1/embeddings` request may have together.", ge=1)
    ] = 200_000
    embeddings_inputs_per_minute: Annotated[
        int,
        _doc("`/v1/embeddings` inputs per minute per API key, per gateway replica (429 past it); 0: no limit.", ge=0),
    ] = 10_000
    embed_tenant_queue_inputs: Annotated[
        int,
        _doc("Query texts one tenant may have waiting in an embed replica; past it `/v1/embeddings` gets 429.", ge=1),
    ] = 1024
    api_docs: Annotated[
        Literal["public", "auth", "off"],
        _doc("The gateway's `/docs` and `/openapi.json`: `public`, `auth` (any valid API key) or `off` (404)."),
    ] = "auth"
    metrics_token: Annotated[
        str,
        _doc(
            "Bearer token that opens `/metrics` and the services' `/stats`/`/tallies` (e.g. for Prometheus);"
            " operator keys (GYRE_API_KEYS, the key file) open them too."
        ),
    ] = ""
    metrics_token_file: Annotated[
        str, _doc("File holding that token (first line), e.g. a secret shared with Prometheus' `credentials_file`.")
    ] = ""

    retention_days: Annotated[
        float, _doc("Days a stream keeps events unless a setting below names it; 0: no limit.", ge=0)
    ] = 30.0
    retention_ingest_days: Annotated[
        float,
        _doc(
            "Days GYRE_INGEST keeps submissions (raw documents): ingest takes them within seconds, the stream"
            " only has to bridge an outage of ingest.",
            ge=0,
        ),
    ] = 7.0
    retention_generate_days: Annotated[
        float,
        _doc(
            "Days GYRE_GENERATE keeps requests and answers (whole conversations); the feedback join reads the"
            " answer record in KV, not the stream.",
            ge=0,
        ),
    ] = 7.0
    retention_dlq_days: Annotated[
        float, _doc("Days GYRE_DLQ keeps dead letters (copies of the messages that failed).", ge=0)
    ] = 14.0
    dead_letter_redaction: Annotated[
        Literal["none", "pii", "drop"],
        _doc(
            "What a dead letter keeps of the failed message: `none` all of it (replayable as is), `pii` personal"
            " data replaced by placeholders and document bytes removed, `drop` nothing but its headers."
        ),
    ] = "pii"
    extraction_workers: Annotated[
        int,
        _doc(
            "Worker processes per ingest replica that read documents; 0: one per document ingest handles at once.", ge=0
        ),
    ] = 0
    extraction_timeout_s: Annotated[
        float,
        _doc(
            "Longest time reading one document (parse, clean, chunk) may take; past it its worker is killed and"
            " replaced and the document rejected `extraction_timeout`.",
            gt=0,
        ),
    ] = 120.0
    extraction_memory_mb: Annotated[
        int,
        _doc(
            "Address space of each extraction worker (Linux); a document that needs more is rejected `too_large`.",
            ge=256,
        ),
    ] = 1024
    max_unpacked_mb: Annotated[
        int,
        _doc("Largest total a DOCX's parts may unpack to (checked before reading them); more: `too_large`.", ge=1),
    ] = 256
    nats_credentials_file: Annotated[
        str,
        _doc(
            'This process\'s NATS credential: a JSON file `{"user", "password"}` (0600; `gyre bus credentials`'
            " writes them). Empty: the user and password in GYRE_NATS_URL (`nats://user:password@host:4222`),"
            " else `<data_dir>/credentials/nats/admin.json` when present (the operator's), else none."
        ),
    ] = ""
    nats_inbox_prefix: Annotated[
        str, _doc("Subject prefix of this process's replies; empty: `_INBOX_<user>`, the only inbox its user may read.")
    ] = ""
    nats_tls_ca: Annotated[
        str, _doc("CA certificate (PEM) that signed the NATS servers' certificates: turns TLS on.")
    ] = ""
    nats_tls_cert: Annotated[str, _doc("Client certificate (PEM) for servers that verify clients (mutual TLS).")] = ""
    nats_tls_key: Annotated[str, _doc("Private key (PEM) of GYRE_NATS_TLS_CERT.")] = ""
    declare_topology: Annotated[
        bool,
        _doc(
            "Create or update streams, durable consumers and buckets at start (needs the admin credential);"
            " false: wait until they exist (`gyre bus declare` makes them), as services with their own"
            " credentials do."
        ),
    ] = True

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def model_path(self) -> Path:
        return Path(self.model_dir).expanduser() if self.model_dir else self.data_path / "models"

    @property
    def qdrant_shard_path(self) -> Path:
        return Path(self.qdrant_path).expanduser() if self.qdrant_path else self.data_path / "qdrant"

    @property
    def model_threads(self) -> int:
        """Intra-op threads for a model session: the setting, or every core (one model call at a time)."""
        return self.onnx_threads or os.cpu_count() or 1

    def port_for(self, service: str) -> int:
        return self.http_port or DEFAULT_PORTS[service]

    def subject(self, suffix: str) -> str:
        return f"{self.subject_prefix}.{suffix}"


class SettingsError(ValueError):
    """An environment variable that does not fit its setting."""


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment (``GYRE_*``), then keyword overrides."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name in Settings.__struct_fields__:
        key = ENV_PREFIX + name.upper()
        if key in env:
            raw[name] = env[key]
    raw.update(overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc} (check the GYRE_* environment variables)") from exc


def settings_table() -> list[tuple[str, str, str]]:
    """(env var, default, description) for every setting: what docs/settings.md shows."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = []
    for field in info.fields:
        description = ""
        if isinstance(field.type, msgspec.inspect.Metadata):
            description = str((field.type.extra_json_schema or {}).get("description", ""))
        rows.append((ENV_PREFIX + field.name.upper(), repr(field.default), description))
    return rows
