"""The dense channel's storage: a FAISS index over L2-normalised vectors (inner product = cosine).

Exact (flat) search by default; above a configured size an HNSW graph, which answers in well under a
millisecond at the cost of a small recall loss that bench/retrieval.py measures against exact search.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

FLAT = "flat"
HNSW = "hnsw"


class VectorIndex:
    def __init__(self, index: faiss.Index, kind: str):
        self._index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int, *, approximate: bool, hnsw_m: int = 32) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
        if approximate:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            kind = HNSW
        else:
            index = faiss.IndexFlatIP(dim)
            kind = FLAT
        if len(vectors):
            index.add(vectors)
        return cls(index, kind)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The stored vectors (all, or the given rows), so an incremental build can reuse them."""
        if self.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        everything = self._index.reconstruct_n(0, self.size)
        return everything if rows is None else everything[rows]

    def vectors_at(self, rows: list[int]) -> np.ndarray:
        """A few stored vectors, by row."""
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._index.reconstruct(int(r)) for r in rows])

    def search(
        self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None, ef_search: int = 128
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) for one query vector; `allowed` (sorted row ids) restricts the search."""
        k = min(k, self.size if allowed is None else len(allowed))
        if k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if self.kind == HNSW:
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
        else:
            params = faiss.SearchParameters()
        if allowed is not None:
            # The selector object must stay alive while FAISS uses it.
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params.sel = selector
        scores, rows = self._index.search(query, k, params=params)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        index = faiss.read_index(str(path))
        kind = HNSW if isinstance(index, faiss.IndexHNSW) else FLAT
        return cls(index, kind)
