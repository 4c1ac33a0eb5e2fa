"""The ingest service: documents in, normalised and chunked, ChunksReady out."""
