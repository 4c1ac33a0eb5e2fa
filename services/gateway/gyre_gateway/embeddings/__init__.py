"""Embeddings (OpenAI-compatible), through the embed service."""
