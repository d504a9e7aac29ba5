"""Damaged index files: each is detected at load with a message that names `python -m rag index --rebuild`,
and that rebuild recovers. One case goes through the real CLI with the real embedding model, end to end."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from relfakes import ROOT, SEEDS, FakeEmbedder, make_config, write_corpus

import rag
from rag import store

HINT = "python -m rag index --rebuild"


def _truncate_faiss(gen: Path, index_dir: Path) -> None:
    path = gen / "dense.faiss"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage_documents(gen: Path, index_dir: Path) -> None:
    path = gen / "documents.jsonl"
    size = path.stat().st_size  # same size, so only parsing can tell
    path.write_bytes((b"{not json \xff\xfe garbage}\n" * (size // 24 + 1))[:size])


def _garbage_manifest(gen: Path, index_dir: Path) -> None:
    (gen / "manifest.json").write_bytes(b"\x00\x01 this is not json {{{")


def _current_to_missing(gen: Path, index_dir: Path) -> None:
    (index_dir / "CURRENT").write_text("gen-1234567890\n", encoding="utf-8")


def _other_array_same_shape(gen: Path, index_dir: Path) -> None:
    # Same dtype and shape (so the same file size): passage offsets that fall outside their documents.
    table = np.load(gen / "passages.npy")
    table[:, 1:] += 10_000_000
    np.save(gen / "passages.npy", table, allow_pickle=False)


def _other_array_other_shape(gen: Path, index_dir: Path) -> None:
    table = np.load(gen / "passages.npy")
    np.save(gen / "passages.npy", table[:-1], allow_pickle=False)


def _float_array_same_size(gen: Path, index_dir: Path) -> None:
    table = np.load(gen / "passages.npy")
    np.save(gen / "passages.npy", np.random.default_rng(0).random(table.shape), allow_pickle=False)


CASES = {
    "truncated dense.faiss": _truncate_faiss,
    "garbage documents.jsonl": _garbage_documents,
    "garbage manifest.json": _garbage_manifest,
    "CURRENT names a missing generation": _current_to_missing,
    "passages.npy: same shape, offsets out of range": _other_array_same_shape,
    "passages.npy: one row short": _other_array_other_shape,
    "passages.npy: float array of the same size": _float_array_same_size,
}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder, random.Random(3), files=15)
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_index_is_detected_and_rebuild_recovers(case, small_corpus, tmp_path, fake_assistant):
    index_dir = tmp_path / "index"
    assistant = fake_assistant(small_corpus, index_dir)
    assistant.build_index()
    gen = store.current_generation(index_dir)
    CASES[case](gen, index_dir)

    with pytest.raises(rag.IndexLoadError, match=HINT.replace(" ", r"\s")) as load_error:
        store.load(index_dir)
    assert "\n" not in str(load_error.value)
    with pytest.raises(rag.RagError, match="--rebuild"):
        fake_assistant(small_corpus, index_dir).search("Bayramov", k=3)
    with pytest.raises(rag.RagError, match="--rebuild"):
        fake_assistant(small_corpus, index_dir).build_index()

    summary = fake_assistant(small_corpus, index_dir).build_index(rebuild=True)
    assert summary.rebuilt and summary.documents == 15
    fresh = fake_assistant(small_corpus, index_dir)
    hits = fresh.search("Bayramov", k=3)
    texts = {d.source: d.text for d in fresh.index().documents}
    assert hits and all(texts[h.source][h.start : h.end] == h.text for h in hits)


def test_index_built_with_another_model_is_refused(small_corpus, tmp_path, fake_assistant):
    index_dir = tmp_path / "index"
    fake_assistant(small_corpus, index_dir).build_index()

    class OtherModel(FakeEmbedder):
        fingerprint = "another-model-v9"

    other = rag.Assistant(make_config(small_corpus, index_dir), embedder=OtherModel())
    with pytest.raises(rag.IndexMismatchError, match="--rebuild"):
        other.search("Bayramov", k=3)
    with pytest.raises(rag.IndexMismatchError, match="--rebuild"):
        other.build_index()
    assert other.build_index(rebuild=True).rebuilt
    assert other.search("Bayramov", k=3)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.model
def test_cli_rebuild_recovers_a_truncated_index_end_to_end(tmp_path):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(SEEDS, corpus)
    rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder()).build_index()
    _truncate_faiss(store.current_generation(index_dir), index_dir)

    broken = _cli("search", "Bayramov", "--corpus", str(corpus), "--index", str(index_dir))
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.count("\n") == 1 and HINT in broken.stderr, broken.stderr

    rebuilt = _cli("index", "--rebuild", "--corpus", str(corpus), "--index", str(index_dir))
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert "Index rebuilt" in rebuilt.stdout and "5 documents" in rebuilt.stdout

    stats = _cli("stats", "--json", "--corpus", str(corpus), "--index", str(index_dir))
    assert stats.returncode == 0, stats.stderr
    info = json.loads(stats.stdout)
    assert info["documents"] == 5 and info["model"] == "multilingual-e5-small"
    assert store.load(index_dir).size == info["passages"] > 5
