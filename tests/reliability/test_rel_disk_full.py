"""Disk full during a build: an injected ENOSPC from each write step, and a real 3 MB tmpfs that runs out.

Every time: a RagError that says to free disk space, the previous index intact and searchable, and after the
next successful build no .tmp leftovers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from relfakes import mutate_corpus, write_corpus

import rag
from rag import store
from rag.lexical import LexicalIndex
from rag.vectorstore import VectorIndex


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _snapshot(index_dir: Path):
    data = store.load(index_dir)
    assert data is not None
    rows = [
        (data.documents[d].source, int(s), int(e))
        for d, s, e in zip(data.passage_doc, data.passage_start, data.passage_end, strict=True)
    ]
    return data.folder, sorted(rows)


def _assert_intact_after_failure(assistant: rag.Assistant, before, exc_info) -> None:
    index_dir = Path(assistant.config.index.path)
    message = str(exc_info.value)
    assert "disk space" in message and str(index_dir) in message, message
    assert "Traceback" not in message and "\n" not in message
    assert _snapshot(index_dir) == before
    hits = assistant.search("Bayramov", k=3)
    assert hits and all(h.text for h in hits)


@pytest.mark.parametrize(
    "target",
    ["VectorIndex.save", "np.save", "LexicalIndex.save", "manifest write"],
)
def test_injected_enospc_keeps_the_previous_index(tmp_path, fake_assistant, monkeypatch, target):
    rng = random.Random(7)
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, rng, files=20)
    assistant = fake_assistant(corpus, index_dir)
    assistant.build_index()
    before = _snapshot(index_dir)
    mutate_corpus(corpus, rng, 1)

    with monkeypatch.context() as patch:
        if target == "VectorIndex.save":
            patch.setattr(VectorIndex, "save", _enospc)
        elif target == "np.save":
            patch.setattr(store.np, "save", _enospc)
        elif target == "LexicalIndex.save":
            patch.setattr(LexicalIndex, "save", _enospc)
        else:
            patch.setattr(Path, "write_text", _enospc)
        with pytest.raises(rag.RagError) as exc_info:
            assistant.build_index()
    assert not list(index_dir.glob(".tmp-*")), "the failed build left its temporary folder"
    _assert_intact_after_failure(assistant, before, exc_info)

    summary = assistant.build_index()
    assert summary.changed_anything
    assert _snapshot(index_dir) != before
    assert not list(index_dir.glob(".tmp-*"))


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str):
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a size-limited tmpfs needs root (mount); the injected ENOSPC cases cover the code path")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """A file that takes all free space on the file system of `folder` but `leave` bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))
    return filler


def test_real_full_tmpfs_keeps_the_previous_index(tmp_path, fake_assistant):
    rng = random.Random(11)
    corpus = tmp_path / "corpus"
    write_corpus(corpus, rng, files=40)
    with _tmpfs(tmp_path / "small", "3m") as small:
        index_dir = small / "index"
        assistant = fake_assistant(corpus, index_dir)
        assistant.build_index()
        before = _snapshot(index_dir)
        gen_bytes = sum(p.stat().st_size for p in before[0].rglob("*") if p.is_file())
        for step in range(1, 4):
            mutate_corpus(corpus, rng, step)
        filler = _fill(small, leave=gen_bytes // 3)
        with pytest.raises(rag.RagError) as exc_info:
            assistant.build_index()
        assert not list(index_dir.glob(".tmp-*")), "the failed build left its temporary folder on the full disk"
        _assert_intact_after_failure(assistant, before, exc_info)

        filler.unlink()
        assistant.build_index()
        after = _snapshot(index_dir)
        assert after != before and not list(index_dir.glob(".tmp-*"))
        assert np.isfinite(store.load(index_dir).vectors.vectors()).all()
