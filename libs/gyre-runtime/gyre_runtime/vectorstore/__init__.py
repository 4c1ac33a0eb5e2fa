"""Vector storage: the VectorStore port and its adapters."""

from gyre_runtime.vectorstore.base import SearchHit, VectorPoint, VectorStore, point_id

__all__ = ["SearchHit", "VectorPoint", "VectorStore", "point_id"]
