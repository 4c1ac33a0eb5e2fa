"""The embed service: chunks in, ONNX embeddings into Qdrant, retrieval answered."""
