"""The embedding model's forward pass in ONNX Runtime: the only module that imports onnxruntime at run time.

Why: indexing time is all embedding, and ONNX Runtime runs the same e5 graph faster than PyTorch on a laptop CPU,
and faster still with int8 weights (bench/RESULTS.md, "Embedding backends"). The graph is exported from the
prepared sentence-transformers folder at setup (`onnx_export.py`); this module only runs it. Tokenisation is the
same tokenizer.json through the `tokenizers` library that sentence-transformers uses underneath, and pooling is
the model's own: the mean of the token vectors under the attention mask, then unit length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import ModelError


class OnnxEncoder:
    """Texts -> unit vectors with an exported e5 graph (inputs input_ids and attention_mask, output the token
    vectors). Texts are sorted by length before batching, so a batch pads to similar lengths."""

    def __init__(self, model_file: Path, tokenizer_file: Path, *, max_tokens: int, threads: int, batch_size: int):
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
            self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged graph
            raise ModelError(
                f"Could not load the ONNX embedding model {model_file}: {exc}. Run `python -m rag models --verify` "
                'to rebuild it, or set [models] backend = "torch" in config.toml.'
            ) from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text before truncation, special tokens included."""
        self._tokenizer.no_truncation()
        try:
            return [len(e.ids) for e in self._tokenizer.encode_batch(_as_read(texts))]
        finally:
            self._tokenizer.enable_truncation(self.max_tokens)

    def tokens(self, text: str) -> list[str]:
        """The text's tokens without the special ones."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows, tokens, mask in self._forward(texts):
            weights = mask[..., None].astype(np.float32)
            pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, the model's vector of each of its tokens (special tokens included), in text order."""
        out: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)] * len(texts)
        for rows, tokens, mask in self._forward(texts):
            for j, i in enumerate(rows):
                out[i] = tokens[j, : int(mask[j].sum())]
        return out

    def _forward(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """(rows of `texts`, token vectors, attention mask) per batch of similar lengths."""
        if not texts:
            return
        encoded = self._tokenizer.encode_batch(_as_read(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)  # 0 is never read: the mask hides the padding
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                n = len(encoded[i].ids)
                ids[j, :n] = encoded[i].ids
                mask[j, :n] = 1
            yield rows, self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0], mask


def _as_read(texts: Sequence[str]) -> list[str]:
    """The texts as sentence-transformers' tokenizer reads them: transformers drops trailing whitespace, which
    tokenizer.json alone turns into one more token ("▁"). Same token ids on 2,340 NTREX spans checked."""
    return [text.rstrip() for text in texts]
