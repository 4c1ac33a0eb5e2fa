"""The generate service: retrieval-augmented answers, streamed token by token, with citations."""
