"""Reading, chunking and embedding on Ray workers (rag/distributed.py) give exactly what the same work gives
in-process. A real local Ray with two workers, started once for the module (about 5 s on 2 cores)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
# Ray Data warns about its own deprecated settings each time it copies its context; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

import rag  # noqa: E402
from rag.chunking import chunk_spans  # noqa: E402
from rag.distributed import FileResult, embed_passages, ray_session, read_and_chunk, run_embedding  # noqa: E402
from rag.documents import load_document  # noqa: E402
from rag.errors import DocumentSkipped, ModelError, RagError  # noqa: E402
from rag.indexer import embedding_text  # noqa: E402
from tests.conftest import ROOT, SEEDS  # noqa: E402

MAX_BYTES = 50 * 1024 * 1024
SIZE, OVERLAP = 600, 150


def test_importing_the_module_does_not_import_ray():
    code = "import sys, rag.distributed; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_nothing_to_read_starts_nothing():
    import ray

    assert read_and_chunk([], "/nowhere", MAX_BYTES, SIZE, OVERLAP) == []
    assert not ray.is_initialized()


# Before the module's Ray session starts: an address is only looked at when no session is open.
@pytest.mark.parametrize("address", ["127.0.0.1:1", "no-port-here"])
def test_an_unreachable_cluster_is_one_clear_error(address):
    import ray

    assert not ray.is_initialized()
    with pytest.raises(RagError) as caught, ray_session(address, 2):
        pass
    message = str(caught.value)
    assert message.startswith(f"Could not connect to the Ray cluster at {address} (")
    assert "Start it with `ray start --head` or drop --ray ADDRESS to use a local Ray." in message
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    with ray_session(None, 2) as ray:
        yield ray
    assert not ray.is_initialized()  # started here, so shut down here


def in_process(path: Path, root: Path, source: str) -> FileResult:
    """What the indexer does with one file without Ray."""
    notes: list[str] = []
    try:
        doc = load_document(path, root, MAX_BYTES, warn=notes.append)
    except DocumentSkipped as exc:
        return FileResult(source, None, [], str(exc), notes)
    return FileResult(source, doc, chunk_spans(doc.text, SIZE, OVERLAP), None, notes)


def test_read_and_chunk_gives_the_in_process_documents_and_spans_in_order(local_ray, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(SEEDS, root)
    (root / "empty.txt").write_bytes(b"")
    (root / "picture.txt").write_bytes(bytes(range(256)) * 64)  # binary
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as f:  # a Latin-1 name, not UTF-8
        f.write(b"A headline\n\nSome text that would be indexed if its name could be stored.")
    (root / "mixed.txt").write_bytes(  # indexed, with a note: one line is in another encoding than the rest
        "Переговоры в Баку\n\nВстреча министров прошла в среду.\n".encode()
        + "Стороны договорились продолжить переговоры в следующем месяце.\n".encode("cp1251")
    )
    gone = root / "gone.txt"  # listed, then deleted before it was read
    seeds = sorted(p.name for p in SEEDS.iterdir())
    names = [seeds[0], "empty.txt", *seeds[1:3], "picture.txt", os.fsdecode(b"caf\xe9.txt"), gone.name, *seeds[3:]]
    names.insert(2, "mixed.txt")
    items = [(str(root / name), name) for name in names]

    results = read_and_chunk(items, str(root), MAX_BYTES, SIZE, OVERLAP, workers=2)

    assert [r.source for r in results] == names
    assert results == [in_process(root / name, root, name) for name in names]
    skipped = {r.source: r.skip_reason for r in results if r.document is None}
    assert set(skipped) == {"empty.txt", "picture.txt", os.fsdecode(b"caf\xe9.txt"), "gone.txt"}
    assert all(skipped.values())
    assert "not valid UTF-8" in skipped[os.fsdecode(b"caf\xe9.txt")]
    assert all(r.spans for r in results if r.document is not None)
    assert [r.source for r in results if r.notes] == ["mixed.txt"]
    assert "mixed encodings" in results[2].notes[0]


@pytest.mark.model
def test_embed_passages_equals_in_process_vectors_bit_for_bit_from_two_workers(local_ray):
    from rag.embeddings import Embedder

    texts = []
    for path in sorted(SEEDS.iterdir()):
        doc = load_document(path, SEEDS, MAX_BYTES)
        texts += [embedding_text(doc, doc.text[s:e]) for s, e in chunk_spans(doc.text, SIZE, OVERLAP)]
    # Small model batches (4 texts, so slices of 32) make the 37 seed passages two Ray batches, one per actor;
    # 20 rows per batch asked is rounded up to one slice, 32.
    assert 32 < len(texts) <= 64
    models = replace(rag.load_config({}).models, batch_size=4)
    expected = Embedder(models).encode_passages(texts)

    run = run_embedding(models, texts, workers=2, batch_rows=20)

    assert run.vectors.dtype == np.float32
    assert np.array_equal(run.vectors, expected)
    assert sorted(run.rows_by_worker.values()) == [len(texts) - 32, 32]
    assert len(run.busy_seconds_by_worker) == 2


def test_a_model_error_on_a_worker_reaches_the_caller_as_itself(local_ray):
    models = replace(rag.load_config({}).models, embedding="/nonexistent/model")
    with pytest.raises(ModelError) as caught:
        embed_passages(models, ["a passage"], workers=2)
    assert type(caught.value) is ModelError  # not Ray's wrapper, whose text is a remote traceback
    assert "/nonexistent/model" in str(caught.value)
    assert "Traceback" not in str(caught.value) and "UDF" not in str(caught.value)


@pytest.mark.model
def test_index_built_on_ray_equals_the_in_process_index(local_ray, real_assistant_factory, tmp_path):
    """`[index] ray_address` (what `python -m rag index --ray` sets): the index equals the in-process one, vectors
    included, and an incremental build on Ray embeds only the changed file."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    (corpus / "skipped.txt").write_bytes(b"")
    on_ray = real_assistant_factory(corpus, tmp_path / "ray", index={"ray_address": "local", "ray_workers": 2})
    here = real_assistant_factory(corpus, tmp_path / "here")
    ray_summary, here_summary = on_ray.build_index(), here.build_index()
    assert ray_summary.to_dict() | {"seconds": 0} == here_summary.to_dict() | {"seconds": 0}
    assert [s.source for s in ray_summary.skipped] == ["skipped.txt"]
    a, b = on_ray.index(), here.index()
    assert a.documents == b.documents and a.manifest["files"] == b.manifest["files"]
    assert np.array_equal(
        np.stack([a.passage_doc, a.passage_start, a.passage_end]),
        np.stack([b.passage_doc, b.passage_start, b.passage_end]),
    )
    assert np.array_equal(a.vectors.vectors(), b.vectors.vectors())

    changed = corpus / "004_6ae4727e16493b4e.txt"
    changed.write_text(changed.read_text("utf-8") + "\n\nBayramov Daşkənddə yeni səfirliyin açılışında iştirak edib.\n")
    ray_summary, here_summary = on_ray.build_index(), here.build_index()
    assert ray_summary.changed == here_summary.changed == [changed.name]
    assert ray_summary.embedded_passages == here_summary.embedded_passages < ray_summary.passages
    assert np.array_equal(on_ray.index().vectors.vectors(), here.index().vectors.vectors())


def test_cli_ray_flags_say_what_is_wrong(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    base = [sys.executable, "-m", "rag", "index", "--corpus", str(corpus), "--index", str(tmp_path / "index")]
    done = subprocess.run([*base, "--ray", "127.0.0.1:1"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "Could not connect to the Ray cluster at 127.0.0.1:1" in done.stderr
    assert not (tmp_path / "index" / "CURRENT").exists()
    done = subprocess.run([*base, "--ray", "--ray-workers", "0"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "--ray-workers: must be a whole number of at least 1" in done.stderr
