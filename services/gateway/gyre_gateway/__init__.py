"""Gyre's HTTP gateway: REST and OpenAI-compatible endpoints in front of the event bus."""
