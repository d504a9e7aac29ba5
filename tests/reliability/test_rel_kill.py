"""SIGKILL during an index build, seeded and reproducible, aimed at reading, embedding and writing.

Each trial changes a few files of a 60-file corpus, starts `rag.Assistant(...).build_index()` in a child process
with the fake embedder, and kills it with SIGKILL: after a seeded random delay, or a short seeded delay after the
child reports reaching a stage (reading, embedding, writing, the window between renaming the new generation into
place and switching CURRENT). Then:
  * the index loads, or there is none yet (first build), never a half state;
  * it is the previous generation (or the new one, complete, when the kill came after the switch), with no
    duplicated or out-of-range passage rows and counts that match its manifest, and it answers searches;
  * the next build completes, leaves no .tmp leftovers, and holds exactly what a clean build of the corpus holds.
Set RAG_KILL_SEED / RAG_KILL_TRIALS to rerun with another seed or more trials.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from relfakes import RELIABILITY_DIR, ROOT, FakeEmbedder, make_config, mutate_corpus, write_corpus

import rag
from rag import store

SEED = int(os.environ.get("RAG_KILL_SEED", "20261123"))
TRIALS = int(os.environ.get("RAG_KILL_TRIALS", "20"))
STAGES = ("random", "reading", "embedding", "writing", "switch")

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import relfakes, rag
corpus, index, marker, read_sleep, embed_sleep, write_sleep, rebuild = sys.argv[2:9]
relfakes.mark(marker, "started")
relfakes.slow_down_stages(marker, float(read_sleep), float(write_sleep))
embedder = relfakes.FakeEmbedder(float(embed_sleep), on_embed=lambda: relfakes.mark(marker, "embedding"))
cfg = relfakes.make_config(corpus, index)
rag.Assistant(cfg, embedder=embedder).build_index(rebuild=rebuild == "1")
relfakes.mark(marker, "done")
"""


def rows_of(data: store.IndexData) -> list[tuple[str, int, int]]:
    return sorted(
        (data.documents[d].source, int(s), int(e))
        for d, s, e in zip(data.passage_doc, data.passage_start, data.passage_end, strict=True)
    )


def hashes_of(data: store.IndexData) -> list[tuple[str, str]]:
    return sorted((doc.source, doc.content_hash) for doc in data.documents)


def check_whole(index_dir: Path) -> store.IndexData | None:
    """Loads the index and checks it is one complete generation; None when there is no index."""
    data = store.load(index_dir)
    if data is None:
        return None
    manifest = data.manifest
    rows = rows_of(data)
    assert len(rows) == len(set(rows)), "duplicated passage rows"
    assert data.size == manifest["passages"] == data.vectors.size, "passage counts differ from the manifest"
    assert len(data.documents) == manifest["documents"] == len(manifest["files"])
    texts = {doc.source: doc.text for doc in data.documents}
    per_doc: dict[str, int] = {}
    for row in range(data.size):
        doc = data.documents[int(data.passage_doc[row])]
        start, end = int(data.passage_start[row]), int(data.passage_end[row])
        assert 0 <= start < end <= len(doc.text), f"passage {row} outside its document"
        assert data.passage_text(row) == texts[doc.source][start:end] and data.passage_text(row).strip()
        per_doc[doc.source] = per_doc.get(doc.source, 0) + 1
    for source, state in manifest["files"].items():
        assert per_doc.get(source, 0) == state["passages"], f"{source}: passage count differs from the manifest"
    for doc in data.documents:
        assert manifest["files"][doc.source]["content_hash"] == doc.content_hash
    return data


def searchable(corpus: Path, index_dir: Path, data: store.IndexData) -> None:
    assistant = rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder())
    for doc in data.documents[:: max(1, len(data.documents) // 3)]:
        hits = assistant.search(doc.title, k=3)
        assert hits, f"no hits for {doc.title!r}"
        for hit in hits:
            text = next(d.text for d in data.documents if d.source == hit.source)
            assert text[hit.start : hit.end] == hit.text


def clean_build(corpus: Path, index_dir: Path) -> store.IndexData:
    rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder()).build_index(rebuild=True)
    data = store.load(index_dir)
    assert data is not None
    return data


def wait_for(marker: Path, stages: tuple[str, ...], proc: subprocess.Popen, timeout: float = 60) -> str | None:
    """The first of `stages` (or "done") that the child reports; None if it exited or timed out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = marker.read_text().split() if marker.exists() else []
        for stage in seen:
            if stage in stages or stage == "done":
                return stage
        if proc.poll() is not None:
            return None
        time.sleep(0.005)
    return None


def run_trial(rng: random.Random, trial: int, stage: str, corpus: Path, index_dir: Path, work: Path) -> dict:
    rebuild = rng.random() < 0.4
    read_sleep, embed_sleep, write_sleep = 0.004, 0.002, 0.01
    target: tuple[str, ...] = ("started",)
    delay = rng.uniform(0.0, 1.5)
    if stage == "reading":
        read_sleep, target, delay = 0.03, ("reading",), rng.uniform(0.0, 0.15)
    elif stage == "embedding":
        embed_sleep, target, delay = 0.02, ("embedding",), rng.uniform(0.0, 0.15)
    elif stage == "writing":
        write_sleep, target, delay = 0.05, ("writing",), rng.uniform(0.0, 0.4)
    elif stage == "switch":
        write_sleep, target, delay = 0.1, ("writing:rename",), rng.uniform(0.0, 0.15)
    marker = work / f"marker-{trial}"
    args = [corpus, index_dir, marker, read_sleep, embed_sleep, write_sleep, int(rebuild)]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(RELIABILITY_DIR), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        reached = wait_for(marker, target, proc)
        if reached is not None and reached != "done":
            time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    seen = marker.read_text().split() if marker.exists() else []
    assert proc.returncode == -signal.SIGKILL or "done" in seen, f"child failed: {stderr[-2000:]}"
    return {
        "trial": trial,
        "aimed": stage,
        "landed": seen[-1] if seen else "startup",
        "delay": round(delay, 3),
        "rebuild": rebuild,
        "killed": proc.returncode == -signal.SIGKILL,
    }


def test_sigkill_during_build_never_leaves_a_half_index(tmp_path):
    rng = random.Random(SEED)
    corpus = tmp_path / "corpus"
    index_dir = tmp_path / "index"
    write_corpus(corpus, rng, files=60)
    outcomes: list[dict] = []
    failures: list[str] = []
    for trial in range(TRIALS):
        stage = STAGES[trial % len(STAGES)]
        if trial:
            mutate_corpus(corpus, rng, trial)
        before = store.load(index_dir)
        before_rows = rows_of(before) if before is not None else None
        before_folder = before.folder if before is not None else None
        outcome = run_trial(rng, trial, stage, corpus, index_dir, tmp_path)
        outcomes.append(outcome)
        try:
            after = check_whole(index_dir)
            clean = clean_build(corpus, tmp_path / f"clean-{trial}")
            if after is None:
                assert before is None, "the previous index disappeared"
                outcome["result"] = "no index yet"
            elif before_folder is not None and after.folder == before_folder:
                assert rows_of(after) == before_rows
                outcome["result"] = "previous generation"
            else:
                assert rows_of(after) == rows_of(clean) and hashes_of(after) == hashes_of(clean)
                outcome["result"] = "new generation, complete"
            if after is not None:
                searchable(corpus, index_dir, after)
            rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder()).build_index()
            final = check_whole(index_dir)
            assert final is not None
            assert rows_of(final) == rows_of(clean) and hashes_of(final) == hashes_of(clean)
            assert np.allclose(np.sort(final.vectors.vectors(), axis=0), np.sort(clean.vectors.vectors(), axis=0))
            leftovers = sorted(p.name for p in index_dir.glob(".tmp-*"))
            assert not leftovers, f"leftovers after the next build: {leftovers}"
            outcome["next build"] = "equals clean build"
        except Exception as exc:  # collect every trial's outcome, then fail with all of them
            outcome["result"] = f"FAILED: {type(exc).__name__}: {exc}"
            failures.append(str(trial))
    table = "\n".join(str(o) for o in outcomes)
    killed = sum(o["killed"] for o in outcomes)
    assert len(outcomes) >= 20 or TRIALS < 20
    assert not failures, f"seed {SEED}: trials {failures} failed\n{table}"
    assert killed >= TRIALS * 0.75, f"seed {SEED}: only {killed} of {TRIALS} builds were killed\n{table}"
    landed = {o["landed"].split(":")[0] for o in outcomes if o["killed"]}
    assert {"reading", "embedding", "writing"} <= landed, f"seed {SEED}: kills landed only in {landed}\n{table}"
    print(f"seed {SEED}: {TRIALS} trials, {killed} killed, all survived\n{table}")
