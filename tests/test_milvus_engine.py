"""The Milvus engine against a real Milvus Lite (no mocks): build, search, filters, incremental update, delete,
crash mid-build, and the same results as the FAISS engine on the same corpus and questions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pymilvus = pytest.importorskip("pymilvus", reason="the Milvus engine is an optional extra: pip install '.[milvus]'")

import rag  # noqa: E402
from rag.errors import IndexLoadError, IndexMismatchError, RagError  # noqa: E402
from rag.filters import Filters  # noqa: E402
from rag.milvus_engine import MilvusChannels, MilvusEngine, connect, filter_expression  # noqa: E402
from tests.conftest import EVAL, SEEDS  # noqa: E402

SEED_QUESTIONS = [json.loads(line)["q"] for line in (EVAL / "seeds_dev.jsonl").read_text("utf-8").splitlines() if line]
FILTERS = [
    Filters(lang="az"),
    Filters(lang="ru,en"),
    Filters(source="004_6ae4727e16493b4e.txt"),
    Filters(source="00[34]_*.txt"),
    Filters(source="*.txt", date_from="2023-06"),
    Filters(date_from="2023", date_to="2023-12"),
    Filters(date_to="2022"),
    Filters(lang="en", source="no-such-file.txt"),
]


def _pair(corpus: Path, tmp_path: Path, fake_embedder, **index) -> tuple[rag.Assistant, rag.Assistant]:
    """Two assistants over the same corpus: FAISS and Milvus Lite, each with its own index folder."""

    def make(engine: str) -> rag.Assistant:
        sections = {"corpus": {"path": str(corpus)}, "index": {"path": str(tmp_path / engine), "engine": engine}}
        sections["index"].update(index)
        return rag.Assistant(rag.load_config(sections), embedder=fake_embedder)

    return make("faiss"), make("milvus")


def _collections(assistant: rag.Assistant) -> list[str]:
    engine = assistant.index().manifest["engine"]
    client = connect(engine["uri"], "")
    try:
        return sorted(name for name in client.list_collections() if name.startswith(engine["prefix"] + "_gen_"))
    finally:
        client.close()


def _ranked(assistant: rag.Assistant, question: str, **filters) -> list[tuple]:
    return [(h.source, h.start, h.end, round(h.score, 4)) for h in assistant.search(question, k=5, **filters)]


# 0: every language searched by Milvus; the default: the seeds' small languages searched in memory.
# A row cache of 5 passages: every question overflows it, and what it drops is fetched again.
@pytest.mark.parametrize("local_rows,row_cache", [(0, 5), (MilvusEngine.local_language_rows, MilvusEngine.row_cache)])
def test_milvus_gives_the_faiss_results_for_every_seed_question_and_filter(
    corpus, tmp_path, fake_embedder, monkeypatch, local_rows, row_cache
):
    monkeypatch.setattr(MilvusEngine, "local_language_rows", local_rows)
    monkeypatch.setattr(MilvusEngine, "row_cache", row_cache)
    faiss, milvus = _pair(corpus, tmp_path, fake_embedder)
    faiss.build_index()
    milvus.build_index()
    data = milvus.index()
    assert data.engine.kind == "milvus" and data.manifest["engine"]["kind"] == "milvus"
    assert not (data.folder / "dense.faiss").exists(), "the vectors live in Milvus, not in the folder"
    for question in SEED_QUESTIONS:
        assert _ranked(milvus, question) == _ranked(faiss, question), question
        hits = milvus.search(question, k=3)
        for hit, reference in zip(hits, faiss.search(question, k=3), strict=True):
            assert (hit.lexical_score is None) == (reference.lexical_score is None)
            assert (hit.lexical_score or 0) == pytest.approx(reference.lexical_score or 0, rel=1e-4, abs=1e-6)
            assert hit.dense_score == pytest.approx(reference.dense_score, abs=1e-5)
    for f in FILTERS:
        shown = {k: v for k, v in vars(f).items() if v}
        assert _ranked(milvus, "Bayramov", **shown) == _ranked(faiss, "Bayramov", **shown), f


def test_milvus_evaluates_the_filters_itself():
    sources = ["a/report_2023.txt", "report-2023.txt", "b/x.txt"]
    assert filter_expression("az", Filters(lang="ru"), sources) is None  # no language can pass both
    expression = filter_expression(None, Filters(lang="az,en", date_from="2023", date_to="2023-06"), sources)
    assert 'lang in ["az", "en"]' in expression and 'date_hi >= "2023-00-00"' in expression
    assert 'date_lo <= "2023-06-99"' in expression
    assert filter_expression(None, Filters(source="2023/*.txt"), sources).endswith('source like "2023/%.txt")')
    # LIKE would read "_" as any character: such a pattern becomes the list of what it matches, exactly.
    assert filter_expression(None, Filters(source="report_2023.txt"), sources) == '(source in ["a/report_2023.txt"])'


def test_incremental_build_embeds_only_changes_and_drops_old_collections(corpus, tmp_path, fake_embedder):
    faiss, milvus = _pair(corpus, tmp_path, fake_embedder, keep_generations=1)
    milvus.build_index()
    first = _collections(milvus)
    assert len(first) == 1

    changed = corpus / "004_6ae4727e16493b4e.txt"
    changed.write_text(changed.read_text("utf-8") + "\n\nSonda Bayramov Daşkənddə yeni zavod açdı.\n", "utf-8")
    removed = corpus / "002_be657e30248251b4.txt"
    removed.unlink()
    (corpus / "new.txt").write_text("Qazaxıstan və Azərbaycan Xəzər dənizi üzrə saziş imzaladı.\n", "utf-8")
    encoded = fake_embedder.encoded
    summary = milvus.build_index()
    assert summary.changed == [changed.name] and summary.added == ["new.txt"] and summary.removed == [removed.name]
    new_passages = summary.embedded_passages
    assert fake_embedder.encoded - encoded == new_passages < summary.passages  # carried rows came from Milvus
    data = milvus.index()
    assert data.engine.size == data.size == summary.passages
    assert removed.name not in {h.source for h in milvus.search("Bayramov Blinken", k=10)}
    assert milvus.search("Xəzər dənizi saziş", k=1)[0].source == "new.txt"
    after = _collections(milvus)
    assert len(after) == 1 and after != first, "the previous generation's collection is dropped with its folder"

    faiss.build_index()  # the same corpus, built from scratch by the other engine
    assert np.allclose(faiss.index().vectors.vectors(), data.vectors.vectors())
    for question in SEED_QUESTIONS:
        assert _ranked(milvus, question) == _ranked(faiss, question), question


def test_passages_without_index_terms_are_stored_and_never_matched(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "words.txt").write_text("Bayramov met Blinken in New York.\n", "utf-8")
    (corpus / "stopwords.txt").write_text("What is it? It is what it is, and that was that.\n", "utf-8")
    faiss, milvus = _pair(corpus, tmp_path, fake_embedder)
    assert milvus.build_index().passages == faiss.build_index().passages == 2
    for question in ("Bayramov", "what is it", "New York"):
        assert _ranked(milvus, question) == _ranked(faiss, question)
    assert [h.lexical_score is None for h in milvus.search("what was that", k=2)] == [True, True]


def test_a_build_that_dies_midway_leaves_the_previous_generation_in_use(corpus, tmp_path, fake_embedder, monkeypatch):
    _, milvus = _pair(corpus, tmp_path, fake_embedder)
    milvus.build_index()
    before = milvus.search("Bayramov", k=3)
    collections = _collections(milvus)
    (corpus / "new.txt").write_text("Bakıda yeni metro stansiyası açıldı.\n", "utf-8")

    def rows_then_die(self):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(MilvusChannels, "_rows", rows_then_die)
    with pytest.raises((RagError, RuntimeError)):
        milvus.build_index()
    monkeypatch.undo()
    assert milvus.search("Bayramov", k=3) == before
    assert _collections(milvus) == collections, "the half-written collection is dropped"
    assert not list(Path(milvus.config.index.path).glob(".tmp-gen-*"))
    assert milvus.build_index().added == ["new.txt"]


def test_switching_engine_or_losing_the_collection_says_what_to_do(corpus, tmp_path, fake_embedder):
    faiss, milvus = _pair(corpus, tmp_path, fake_embedder)
    faiss.build_index()
    sections = {"corpus": {"path": str(corpus)}, "index": {"path": str(faiss.config.index.path), "engine": "milvus"}}
    switched = rag.Assistant(rag.load_config(sections), embedder=fake_embedder)
    with pytest.raises(IndexMismatchError, match="index engine"):
        switched.build_index()

    milvus.build_index()
    engine = milvus.index().manifest["engine"]
    client = connect(engine["uri"], "")
    client.drop_collection(engine["collection"])
    client.close()
    fresh = rag.Assistant(milvus.config, embedder=fake_embedder)
    with pytest.raises(IndexLoadError, match="rebuild"):
        fresh.index()
    assert fresh.build_index(rebuild=True).passages > 0
    assert fresh.search("Bayramov", k=1)


def test_a_milvus_lite_file_open_in_another_process_is_named_with_the_way_out(corpus, tmp_path, fake_embedder):
    _, milvus = _pair(corpus, tmp_path, fake_embedder)
    milvus.build_index()
    milvus.index()  # this process now serves the Milvus Lite file, as a running app would
    done = subprocess.run(
        [sys.executable, "-m", "rag", "search", "Bayramov", "--index", str(milvus.config.index.path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "serves one process at a time" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_collection_name_is_refused_with_the_rule():
    with pytest.raises(rag.ConfigError, match="letters, digits and underscores"):
        rag.load_config({"index": {"engine": "milvus", "milvus_collection": "my-news"}})
    with pytest.raises(rag.ConfigError, match='"faiss" or "milvus"'):
        rag.load_config({"index": {"engine": "qdrant"}})


@pytest.mark.model
def test_real_model_same_top_sources_on_seed_questions(real_assistant_factory, tmp_path):
    faiss = real_assistant_factory(SEEDS, tmp_path / "faiss")
    milvus = real_assistant_factory(SEEDS, tmp_path / "milvus", index={"engine": "milvus"})
    faiss.build_index()
    milvus.build_index()
    for question in SEED_QUESTIONS:
        assert [h.source for h in milvus.search(question, k=5)] == [h.source for h in faiss.search(question, k=5)]
