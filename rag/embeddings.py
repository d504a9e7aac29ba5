"""Dense embeddings: encodes queries and passages with the configured model and backend.

Queries and passages are encoded differently on purpose: e5 was trained with "query: " and "passage: "
prefixes, and leaving them out costs retrieval quality. The prompts are the ones the model folder records
(config_sentence_transformers.json): sentence-transformers' encode_query / encode_document apply them on
"torch", and the ONNX path prepends the same strings, read by `recorded_prompts`.

`[models] backend` picks what runs the model: "torch" (sentence-transformers, the only place it and torch are
imported) or an ONNX graph of the same model exported at setup ("onnx", "onnx-int8"; onnx_encoder.py). The fp32
graph computes the same vectors as PyTorch (mean cosine 0.99999, identical rankings in bench/RESULTS.md), so an
index moves between "torch" and "onnx" freely; int8 weights change the vectors, so "onnx-int8" is part of the
model's fingerprint and an index built with it is not searched with fp32 vectors, nor the reverse.

With "onnx-int8" only passages (what indexing, evidence selection and translation checks encode in bulk) go
through the int8 graph; questions go through the fp32 one. A question is one short text (10 ms in fp32), and a
score then carries the int8 error of one side instead of two: over the 723 NTREX title and NTREX-QA searches, the
first result differs from fp32's for 10 instead of 15 (bench/README.md, "Embedding backends").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import ModelsConfig
from .errors import ModelError
from .models import model_fingerprint, recorded_prompts, resolve_embedding_model, resolve_onnx_model
from .onnx_export import EXPORT_VERSION


def backend_fingerprint(model_fingerprint_: str, backend: str) -> str:
    """The fingerprint an index records: the model's, plus the backend and its export version when its vectors
    differ from fp32 (each int8 export computes other vectors)."""
    if backend != "onnx-int8":
        return model_fingerprint_
    version = EXPORT_VERSION[backend]
    return f"{model_fingerprint_}+{backend}" + (f".v{version}" if version > 1 else "")


class Embedder:
    """Loads the configured model once, on the configured backend; encodes queries and passages."""

    def __init__(self, models: ModelsConfig):
        self.reference = resolve_embedding_model(models)
        self.backend = models.backend
        self.fingerprint = backend_fingerprint(model_fingerprint(self.reference), self.backend)
        self.name = models.embedding
        self.query_prompt, self.document_prompt = recorded_prompts(self.reference)
        self.batch_size = models.batch_size
        self._model = None
        self._onnx = None
        self._onnx_queries = None
        self._query_models = replace(models, backend="onnx") if self.backend == "onnx-int8" else None
        self._lock = threading.Lock()
        if self.backend == "torch":
            self._load_torch(models)
        else:
            self._onnx = self._load_onnx(models)
            if self._query_models is not None:
                resolve_onnx_model(self._query_models)  # a missing fp32 graph is named now, not at the first question
            self.dim = self._onnx.dim

    def _load_onnx(self, models: ModelsConfig):
        from .onnx_encoder import OnnxEncoder

        folder = Path(self.reference)
        return OnnxEncoder(
            resolve_onnx_model(models),
            folder / "tokenizer.json",
            max_tokens=_max_seq_length(folder),
            threads=models.threads,
            batch_size=self.batch_size,
        )

    def _load_torch(self, models: ModelsConfig) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

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

    def _question_encoder(self):
        """The graph questions go through. With "onnx-int8" the fp32 graph is loaded at the first question, so a
        process that only indexes never holds it (it is most of the memory: 470 MB of weights, 118 MB in int8)."""
        if self._query_models is None:
            return self._onnx
        with self._lock:
            if self._onnx_queries is None:
                self._onnx_queries = self._load_onnx(self._query_models)
            return self._onnx_queries

    @property
    def max_tokens(self) -> int:
        return self._onnx.max_tokens if self._onnx is not None else int(self._model.max_seq_length)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model reads them (special tokens included), before truncation."""
        if self._onnx is not None:
            return self._onnx.token_counts(texts)
        ids = self._model.tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), query=True)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode in slices so a caller can show progress and memory stays bounded on huge corpora."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = max(self.batch_size * 8, 1)
        for start in range(0, len(texts), step):
            chunk = list(texts[start : start + step])
            out[start : start + len(chunk)] = self._encode(chunk, query=False)
            if progress is not None:
                progress(len(chunk))
        return out

    def passage_token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, a unit vector for each of its own tokens as the model reads it as a passage: the prompt's
        tokens ("passage: ") and the special tokens are left out. What compares two texts word by word
        (grounding.word_alignment) rather than as wholes."""
        prompted = [self.document_prompt + t for t in texts]
        if self._onnx is not None:
            raw = self._onnx.token_vectors(prompted)
        else:
            found = self._model.encode(
                prompted, output_value="token_embeddings", batch_size=self.batch_size, show_progress_bar=False
            )
            raw = [np.asarray(t.float().numpy() if hasattr(t, "numpy") else t, dtype=np.float32) for t in found]
        skip = 1 + self._prompt_tokens()  # <s>, then the prompt; </s> closes every text
        out = []
        for vectors in raw:
            own = vectors[skip:-1]
            out.append(own / np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12))
        return out

    def _prompt_tokens(self) -> int:
        """How many tokens the passage prompt takes at the start of a text ("passage: " is two: "▁passage", ":";
        the space joins the text's first token)."""
        prompt = self.document_prompt.rstrip()
        if not prompt:
            return 0
        if self._onnx is not None:
            return len(self._onnx.tokens(prompt))
        return len(self._model.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _encode(self, texts: list[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._onnx is not None:
            if query:
                return self._question_encoder().encode([self.query_prompt + t for t in texts])
            return self._onnx.encode([self.document_prompt + t for t in texts])
        # The prompt is passed explicitly: sentence-transformers 6 gives every model an empty "document" prompt,
        # which encode_document prefers to the "passage" prompt e5 records, and would drop "passage: " unasked.
        encode = self._model.encode_query if query else self._model.encode_document
        vectors = encode(
            texts,
            prompt=self.query_prompt if query else self.document_prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _max_seq_length(folder: Path) -> int:
    """The input length sentence-transformers would use for this folder (its sentence_bert_config.json)."""
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"{folder} has no readable sentence_bert_config.json ({exc}). Run `python -m rag models`."
        ) from exc
