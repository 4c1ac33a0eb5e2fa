"""The runtime Gyre's services share: settings, logging, bus, state, metrics, models, vector store."""
