"""Guardrails shared by ingestion and generation: personal data, blocked terms, prompt injection, answer redaction.

- ``pii``: the personal data detector (ingest applies it to documents, generate to answers).
- ``blocked_terms``: an operator's list of terms questions may not contain and answers never show.
- ``injection``: retrieved text that speaks to the model ("ignore previous instructions ...").
- ``answers``: the answer guard (personal data and blocked terms replaced), also while it streams.
"""
