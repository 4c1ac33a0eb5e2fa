"""Chat completions (OpenAI-compatible), plain and streamed, with citations."""
