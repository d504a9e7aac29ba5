"""Index engines: where a generation's passage vectors and lexical channel live, and how they are searched.

Two engines answer the same five questions (`Engine` below), so retrieval.py never knows which one it talks to:

- "faiss" (the default, laptop use): a FAISS index and a bm25s index as files in the generation folder,
  searched in this process. Filters become the set of passage rows they allow.
- "milvus" (milvus_engine.py, imported only when configured): one Milvus collection per generation, holding
  the dense vectors, the lexical channel as sparse vectors and the filter fields; filters become a Milvus
  expression evaluated by the engine. Milvus Lite (a local file) and a Milvus server or cluster are the same
  client code.

Either way the generation folder keeps what retrieval needs in memory beside the engine: the documents, the
passage offsets, the language means and the acronym table (store.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from .filters import Filters, PassageRows
from .lexical import LexicalIndex
from .vectorstore import VectorIndex

FAISS = "faiss"
MILVUS = "milvus"
ENGINES = (FAISS, MILVUS)


class Engine(Protocol):
    """What retrieval asks of an index engine. Rows are passage rows of the generation (0..size-1)."""

    kind: str
    ef_search: int  # HNSW search breadth, when the dense index is approximate

    @property
    def size(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def dense_search(
        self, query: np.ndarray, n: int, *, lang: str | None, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n (inner products, rows) among the passages in `lang` (all languages when None) that pass."""
        ...

    def lexical_search(
        self, query: str, n: int, *, lang: str | None, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n (BM25 scores, rows) with a positive score, best first, among the passages that pass."""
        ...

    def lexical_scores_at(self, query: str, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of the given rows (0 where no query term occurs)."""
        ...

    def vectors_at(self, rows: list[int]) -> np.ndarray: ...

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The stored vectors (all, or the given rows, in that order), so an incremental build can reuse them."""
        ...

    def close(self) -> None: ...


class FaissEngine:
    """FAISS for the dense channel, bm25s for the lexical one, both in this process."""

    kind = FAISS

    def __init__(self, vectors: VectorIndex, lexical: LexicalIndex, rows: PassageRows):
        self.index = vectors
        self.lexical = lexical
        self._rows = rows
        self._last_query: tuple[str, np.ndarray] | None = None
        self.ef_search = 128  # HNSW search breadth; the assistant sets [index] hnsw_ef_search

    @classmethod
    def load(cls, folder: Path, rows: PassageRows) -> FaissEngine:
        vectors = VectorIndex.load(folder / "dense.faiss")
        lexical = LexicalIndex.load(folder / "lexical", len(rows.passage_doc))
        return cls(vectors, lexical, rows)

    @property
    def size(self) -> int:
        return self.index.size

    @property
    def dim(self) -> int:
        return self.index.dim

    @property
    def lexical_size(self) -> int:
        return self.lexical.size

    def dense_search(
        self, query: np.ndarray, n: int, *, lang: str | None, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        allowed = self._rows.allowed(lang, filters)
        if allowed is not None and len(allowed) == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        return self.index.search(query, n, allowed=allowed, ef_search=self.ef_search)

    def lexical_search(
        self, query: str, n: int, *, lang: str | None, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self._scores(query)
        allowed = self._rows.allowed(lang, filters)
        candidates = np.flatnonzero(scores > 0) if allowed is None else allowed[scores[allowed] > 0]
        if len(candidates) > n:
            candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
        order = np.lexsort((candidates, -scores[candidates]))
        rows = candidates[order].astype(np.int64)
        return scores[rows], rows

    def lexical_scores_at(self, query: str, rows: np.ndarray) -> np.ndarray:
        return self._scores(query)[np.asarray(rows, dtype=np.int64)]

    def _scores(self, query: str) -> np.ndarray:
        # bm25s scores every passage at once; one question asks for them per language and again for the
        # candidates, so the last question's scores are kept.
        if self._last_query is None or self._last_query[0] != query:
            self._last_query = (query, self.lexical.scores(query))
        return self._last_query[1]

    def vectors_at(self, rows: list[int]) -> np.ndarray:
        return self.index.vectors_at(rows)

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        return self.index.vectors(rows)

    def close(self) -> None:
        pass


class FaissChannels:
    """A generation's FAISS and bm25s files, written into the generation folder being built."""

    kind = FAISS

    def __init__(self, vectors: VectorIndex, lexical: LexicalIndex):
        self.vectors = vectors
        self.lexical = lexical
        self.dim = vectors.dim
        self.index_type = vectors.kind

    def write(self, folder: Path, generation: str) -> dict:
        self.vectors.save(folder / "dense.faiss")
        self.lexical.save(folder / "lexical")
        return {"kind": FAISS}

    def discard(self, generation: str) -> None:
        pass  # its files are in the generation folder, which the caller removes
