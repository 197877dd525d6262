"""Approximate nearest-neighbour index over the store's vectors.

``from engine.index import HnswIndex`` -- see :mod:`engine.index.hnsw`.
"""

from .hnsw import HnswIndex

__all__ = ["HnswIndex"]
