"""Shared fixtures: a fast deterministic fake embedder for unit tests, the real model loaded once for
integration tests, and paths to the project's seeds and the shared evaluation data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import rag
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
EVAL = ROOT.parent / "shared" / "eval"


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
    prepare_models(cfg.models.cache, ["embedding"], backend=cfg.models.backend)
    embedder = Embedder(cfg.models)

    def make(corpus_dir: Path = SEEDS, index_dir: Path | None = None, **sections) -> rag.Assistant:
        index_dir = index_dir or tmp_path_factory.mktemp("index")
        return rag.Assistant(_config(corpus_dir, index_dir, sections), embedder=embedder)

    return make
