"""Dense embeddings: the only module that imports sentence-transformers (and so torch).

Queries and passages are encoded differently on purpose: e5 was trained with "query: " and "passage: "
prefixes, and leaving them out costs retrieval quality.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .config import ModelsConfig
from .errors import ModelError
from .models import model_fingerprint, resolve_embedding_model


class Embedder:
    """Loads the configured sentence-transformers model once; encodes queries and passages."""

    def __init__(self, models: ModelsConfig):
        import torch
        from sentence_transformers import SentenceTransformer

        self.reference = resolve_embedding_model(models)
        self.fingerprint = model_fingerprint(self.reference)
        self.name = models.embedding
        self.query_prefix = models.query_prefix
        self.passage_prefix = models.passage_prefix
        self.batch_size = models.batch_size
        if models.threads:
            torch.set_num_threads(models.threads)
        try:
            self._model = SentenceTransformer(self.reference, device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"Could not load the embedding model {self.reference!r}: {exc}. "
                "Run `python -m rag models` to prepare the default model, or fix [models] embedding in config.toml."
            ) from exc
        self.dim = int(self._model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts])

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode in slices so a caller can show progress and memory stays bounded on huge corpora."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = max(self.batch_size * 8, 1)
        for start in range(0, len(texts), step):
            chunk = [self.passage_prefix + t for t in texts[start : start + step]]
            out[start : start + len(chunk)] = self._encode(chunk)
            if progress is not None:
                progress(len(chunk))
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
