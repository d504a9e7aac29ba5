"""Fixtures of the reliability tests: an Assistant with the fast fake embedder over private folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from relfakes import FakeEmbedder, make_config

import rag


@pytest.fixture
def fake_assistant():
    """An Assistant over `corpus_dir` / `index_dir` with the fast fake embedder (and an optional generator)."""

    def make(corpus_dir: Path, index_dir: Path, generator=None, **sections) -> rag.Assistant:
        cfg = make_config(corpus_dir, index_dir, **sections)
        return rag.Assistant(cfg, embedder=FakeEmbedder(), generator=generator)

    return make
