"""Models (OpenAI-compatible list), from the model registry."""
