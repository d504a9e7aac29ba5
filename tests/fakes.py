"""Fast deterministic stand-ins for the models, shared by the unit tests and the reliability child processes."""

from __future__ import annotations

import hashlib
import re
import time

import numpy as np

from rag.lexical import tokenize


class FakeEmbedder:
    """Hashed bag of index terms: instant, deterministic, and similar texts get similar vectors. An optional
    sleep per passage lets a test aim a kill at the embedding step."""

    fingerprint = "fake-embedder-v1"
    dim = 512

    def __init__(self, sleep_per_passage: float = 0.0, on_embed=None):
        self.sleep_per_passage = sleep_per_passage
        self.on_embed = on_embed
        self.calls = 0
        self.encoded = 0

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for term in tokenize(text):
            h = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")
            v[h % self.dim] += 1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def encode_queries(self, texts):
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts, progress=None):
        self.calls += 1
        self.encoded += len(texts)
        if self.on_embed:
            self.on_embed()
        rows = []
        for t in texts:
            if self.sleep_per_passage:
                time.sleep(self.sleep_per_passage)
            rows.append(self._vector(t))
        if progress:
            progress(len(texts))
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


class ScriptedGenerator:
    """A chat model whose reply is decided by the test: a fixed string, or a function of the prompt."""

    name = "scripted"
    queue_length = 0

    def __init__(self, reply):
        self.reply = reply
        self.prompts: list[list[dict]] = []
        self.sent: list[str] = []  # every piece the caller took, across calls

    def chat(self, messages, *, max_tokens, temperature=0.0, stop=None, cancel=None):
        self.prompts.append(messages)
        text = self.reply(messages) if callable(self.reply) else self.reply
        for piece in re.findall(r"\S+\s*", text):
            self.sent.append(piece)
            yield piece
