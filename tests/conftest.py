"""Shared fixtures: a fast deterministic fake embedder for unit tests, the real model loaded once for
integration tests, and paths to the project's seeds and the shared evaluation data."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.lexical import tokenize

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
EVAL = ROOT.parent / "shared" / "eval"


class FakeEmbedder:
    """Hashed bag of index terms: instant, deterministic, and similar texts get similar vectors."""

    fingerprint = "fake-embedder-v1"
    dim = 512

    def __init__(self):
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
        if progress:
            progress(len(texts))
        return self.encode_queries(texts)


def _config(corpus_dir: Path, index_dir: Path, sections: dict) -> rag.Config:
    data = {key: dict(value) for key, value in sections.items()}
    data.setdefault("corpus", {})["path"] = str(corpus_dir)
    data.setdefault("index", {})["path"] = str(index_dir)
    return rag.load_config(data)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the seeds, free to modify."""
    folder = tmp_path / "corpus"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture
def make_assistant(tmp_path: Path, fake_embedder: FakeEmbedder):
    """Build an Assistant over a corpus folder with the fake embedder and a private index folder."""

    def make(corpus_dir: Path, **sections) -> rag.Assistant:
        return rag.Assistant(_config(corpus_dir, tmp_path / "index", sections), embedder=fake_embedder)

    return make


@pytest.fixture(scope="session")
def real_assistant_factory(tmp_path_factory):
    """Assistants with the real converted e5 model, loaded once for the whole session."""
    from rag.embeddings import Embedder
    from rag.models import prepare_models

    cfg = rag.load_config()
    prepare_models(cfg.models.cache, ["embedding"])
    embedder = Embedder(cfg.models)

    def make(corpus_dir: Path = SEEDS, index_dir: Path | None = None, **sections) -> rag.Assistant:
        index_dir = index_dir or tmp_path_factory.mktemp("index")
        return rag.Assistant(_config(corpus_dir, index_dir, sections), embedder=embedder)

    return make
