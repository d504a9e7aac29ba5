"""The index build and search with a fast fake embedder: incremental, atomic, mismatch-aware, filtered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rag
from rag import store
from rag.errors import RagError
from rag.filters import Filters
from rag.vectorstore import VectorIndex


def _generations(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.glob("gen-*"))


def test_build_then_search_returns_complete_hits(corpus, make_assistant):
    assistant = make_assistant(corpus)
    summary = assistant.build_index()
    assert summary.documents == 5 and summary.passages > 5
    assert sorted(summary.added) == sorted(p.name for p in corpus.iterdir())
    assert summary.rebuilt and not summary.skipped

    hits = assistant.search("Bobur Usmanov Özbəkistan", k=3)
    assert hits[0].source == "004_6ae4727e16493b4e.txt"
    data = assistant.index()
    texts = {d.source: d.text for d in data.documents}
    for hit in hits:
        assert texts[hit.source][hit.start : hit.end] == hit.text
        assert hit.title and hit.lang in {"az", "ru", "en"} and hit.score > 0
    assert hits[0].date == "2023-06"


def test_unchanged_rebuild_embeds_nothing_and_writes_nothing(corpus, make_assistant, fake_embedder):
    assistant = make_assistant(corpus)
    assistant.build_index()
    before = _generations(assistant.config.index.path)
    calls = fake_embedder.calls
    summary = assistant.build_index()
    assert not summary.changed_anything and summary.unchanged == 5
    assert fake_embedder.calls == calls
    assert _generations(assistant.config.index.path) == before


def test_touched_but_identical_file_is_not_embedded_again(corpus, make_assistant, fake_embedder):
    assistant = make_assistant(corpus)
    assistant.build_index()
    encoded = fake_embedder.encoded
    path = next(corpus.iterdir())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000_000))
    summary = assistant.build_index()
    assert summary.unchanged == 5 and not summary.changed and fake_embedder.encoded == encoded
    # and the new mtime is remembered, so the next build does not even read it
    assert not assistant.build_index().changed_anything


def test_add_change_delete_reembed_only_that_file(corpus, make_assistant, fake_embedder):
    assistant = make_assistant(corpus)
    assistant.build_index()
    encoded = fake_embedder.encoded

    (corpus / "new.txt").write_text("Tbilisi summit\n\nGeorgia hosted a summit on water in Tbilisi.", "utf-8")
    summary = assistant.build_index()
    assert summary.added == ["new.txt"] and summary.unchanged == 5
    assert fake_embedder.encoded - encoded == summary.embedded_passages == 1
    assert assistant.search("Tbilisi water summit", k=1)[0].source == "new.txt"

    encoded = fake_embedder.encoded
    (corpus / "new.txt").write_text("Almaty forum\n\nKazakhstan hosted a forum on grain in Almaty.", "utf-8")
    summary = assistant.build_index()
    assert summary.changed == ["new.txt"] and fake_embedder.encoded - encoded == 1
    assert all("Tbilisi" not in h.text for h in assistant.search("Tbilisi water summit", k=10))

    (corpus / "new.txt").unlink()
    summary = assistant.build_index()
    assert summary.removed == ["new.txt"] and summary.documents == 5
    assert all(h.source != "new.txt" for h in assistant.search("Almaty grain forum Kazakhstan", k=20))


def test_passages_and_vectors_of_kept_files_survive_an_incremental_build(corpus, make_assistant, tmp_path):
    assistant = make_assistant(corpus)
    assistant.build_index()
    first = assistant.index()
    rows_before = {
        (first.documents[d].source, int(s), int(e))
        for d, s, e in zip(first.passage_doc, first.passage_start, first.passage_end, strict=True)
    }
    (corpus / "extra.md").write_text("# Extra\n\nSomething else entirely about Ashgabat.", "utf-8")
    assistant.build_index()
    second = assistant.index()
    rows_after = {
        (second.documents[d].source, int(s), int(e))
        for d, s, e in zip(second.passage_doc, second.passage_start, second.passage_end, strict=True)
    }
    assert rows_before < rows_after
    fresh = make_assistant(corpus)
    fresh.config.index.path.rename(tmp_path / "moved")
    fresh.build_index()
    clean = fresh.index()
    assert (clean.vectors.vectors() == second.vectors.vectors()).all()


def test_changed_chunking_is_detected_not_mixed(corpus, make_assistant):
    make_assistant(corpus).build_index()
    other = make_assistant(corpus, chunking={"size": 300, "overlap": 0})
    with pytest.raises(rag.IndexMismatchError, match="--rebuild"):
        other.build_index()
    assert other.build_index(rebuild=True).rebuilt
    auto = make_assistant(corpus, chunking={"size": 400, "overlap": 0}, index={"on_mismatch": "rebuild"})
    assert auto.build_index().rebuilt


def test_search_refuses_an_index_built_with_another_model(corpus, make_assistant, tmp_path):
    make_assistant(corpus).build_index()
    from tests.fakes import FakeEmbedder

    class OtherModel(FakeEmbedder):
        fingerprint = "another-model"

    cfg = make_assistant(corpus).config
    with pytest.raises(rag.IndexMismatchError, match="another embedding model"):
        rag.Assistant(cfg, embedder=OtherModel()).search("Baku")


def test_interrupted_write_leaves_the_previous_index_usable(corpus, make_assistant, monkeypatch):
    assistant = make_assistant(corpus)
    assistant.build_index()
    before = assistant.search("Blinken", k=2)
    (corpus / "new.txt").write_text("Some new document about Blinken and Baku.", "utf-8")

    def fail(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorIndex, "save", fail)
    with pytest.raises(rag.RagError, match="previous index is untouched"):
        assistant.build_index()
    monkeypatch.undo()
    assert not list(assistant.config.index.path.glob(".tmp-*"))
    reloaded = make_assistant(corpus)
    assert reloaded.search("Blinken", k=2) == before
    assert reloaded.build_index().added == ["new.txt"]


def test_damaged_index_is_reported_with_the_fix_and_rebuild_recovers(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    folder = store.current_generation(assistant.config.index.path)
    faiss_file = folder / "dense.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    fresh = make_assistant(corpus)
    with pytest.raises(rag.IndexLoadError, match="python -m rag index --rebuild"):
        fresh.search("Baku")
    with pytest.raises(rag.IndexLoadError):
        fresh.build_index()  # an incremental build must not build on a damaged index
    (folder / "manifest.json").write_text("{garbage", "utf-8")
    with pytest.raises(rag.IndexLoadError, match="manifest"):
        fresh.build_index()
    assert fresh.build_index(rebuild=True).documents == 5
    assert fresh.search("Blinken", k=1)


def test_no_index_yet_says_how_to_build_one(corpus, make_assistant):
    with pytest.raises(rag.IndexLoadError, match="python -m rag index"):
        make_assistant(corpus).search("anything")


def test_missing_corpus_folder_is_a_clear_error(tmp_path, make_assistant):
    with pytest.raises(rag.ConfigError, match="corpus folder"):
        make_assistant(tmp_path / "nope").build_index()


def test_empty_corpus_builds_an_empty_index(tmp_path, make_assistant):
    (tmp_path / "empty").mkdir()
    assistant = make_assistant(tmp_path / "empty")
    assert assistant.build_index().documents == 0
    assert assistant.search("anything") == []


def test_bad_files_are_skipped_with_reasons_and_the_rest_indexed(corpus, make_assistant):
    (corpus / "empty.txt").write_text("", "utf-8")
    (corpus / "blank.txt").write_text("  \n\t \n", "utf-8")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (corpus / "table.xlsx").write_bytes(b"PK\x03\x04 not really")
    summary = make_assistant(corpus).build_index()
    skipped = {s.source: s.reason for s in summary.skipped}
    assert summary.documents == 5
    assert {"empty.txt", "blank.txt", "binary.txt"} <= set(skipped)
    assert all(reason for reason in skipped.values())


def test_an_indexed_file_that_turns_bad_keeps_its_last_good_version(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    target = corpus / "002_be657e30248251b4.txt"
    target.write_bytes(b"\x00\x01\x02" * 1000)
    summary = assistant.build_index()
    assert [s.source for s in summary.skipped] == [target.name]
    assert "kept the previously indexed version" in summary.skipped[0].reason
    assert summary.documents == 5
    assert any(h.source == target.name for h in assistant.search("minefields maps Armenia", k=5))


def test_filters_by_language_source_and_date(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    query = "Bayramov Azerbaijan minister"
    assert {h.lang for h in assistant.search(query, k=10, lang="ru")} == {"ru"}
    assert {h.lang for h in assistant.search(query, k=10, lang="az,en")} <= {"az", "en"}
    assert {h.source for h in assistant.search(query, k=10, source="002_*.txt")} == {"002_be657e30248251b4.txt"}
    dated = assistant.search(query, k=10, date_from="2023-01", date_to="2023-12-31")
    assert dated and {h.source for h in dated} == {"004_6ae4727e16493b4e.txt"}
    assert assistant.search(query, k=10, date_from="2024") == []
    assert assistant.search(query, k=10, lang="de") == []


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ({"date_from": "yesterday"}, "The start date 'yesterday' is not a date"),
        ({"date_to": "2023-13"}, "The end date '2023-13' is not a date"),
        ({"date_from": "2023-02-30"}, "The start date '2023-02-30' is not a date"),
        ({"date_from": "2024", "date_to": "2023-06"}, "The date range is empty: it starts (2024) after it ends"),
    ],
)
def test_a_date_filter_that_is_no_date_or_an_empty_range_is_an_error(dates, message):
    with pytest.raises(RagError) as error:
        Filters(**dates)
    assert message in str(error.value)


def test_filters_take_a_list_of_languages_and_a_year_as_a_number_and_name_any_other_type():
    assert Filters(lang=["az", "ru"], date_from=2023).languages() == {"az", "ru"}
    assert Filters(date_from=2023).date_from == "2023"
    with pytest.raises(RagError, match="The filter source must be text"):
        Filters(source=["a.txt"])


def test_a_date_filter_may_be_a_year_a_month_or_a_day():
    assert Filters(date_from=" 2023 ", date_to="2023-06").date_to == "2023-06"
    assert Filters(date_from="2023-06-14", date_to="2023-06-14").date_from == "2023-06-14"


def test_results_are_diversified_across_documents(corpus, make_assistant):
    assistant = make_assistant(corpus, retrieval={"max_per_document": 1})
    assistant.build_index()
    hits = assistant.search("Azərbaycan Bayramov", k=5)
    assert len({h.source for h in hits}) == 5


def test_approximate_index_above_the_threshold(corpus, make_assistant):
    assistant = make_assistant(corpus, index={"approximate_above": 3})
    assistant.build_index()
    assert assistant.stats()["index_type"] == "hnsw"
    assert assistant.search("Bobur Usmanov Özbəkistan", k=1)[0].source == "004_6ae4727e16493b4e.txt"


def test_stats_describe_the_index(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    stats = assistant.stats()
    assert stats["documents"] == 5 and stats["languages"] == {"az": 3, "en": 1, "ru": 1}
    assert stats["index_bytes"] > 0 and stats["built"]


@pytest.mark.parametrize("query", ["", "   ", "?!...", "\x00\x01"])
def test_empty_or_meaningless_questions_get_a_clear_message(corpus, make_assistant, query):
    assistant = make_assistant(corpus)
    assistant.build_index()
    with pytest.raises(rag.RagError, match="question"):
        assistant.search(query)


def test_very_long_and_mixed_questions_still_search(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    assert assistant.search("Bayramov " * 4000, k=2)
    assert assistant.search("Байрамов met Özbəkistan 中文 \u202e", k=2)


def test_builds_of_one_index_from_two_processes_wait_for_each_other(corpus, tmp_path):
    """The build lock (filelock) holds across processes: the second build starts only after the first has
    written its generation, so it finds nothing to do instead of interleaving a second generation."""
    import subprocess
    import sys
    import textwrap

    sections = {"corpus": {"path": str(corpus)}, "index": {"path": str(tmp_path / "index")}}
    script = textwrap.dedent(
        f"""
        import sys, time, rag
        from tests.fakes import FakeEmbedder
        cfg = rag.load_config({sections!r})
        summary = rag.Assistant(cfg, embedder=FakeEmbedder(sleep_per_passage=0.02)).build_index()
        print(len(summary.added), time.time(), flush=True)
        """
    )
    root = Path(__file__).resolve().parent.parent
    runs = [subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    results = sorted(tuple(float(x) for x in run.communicate(timeout=120)[0].split()) for run in runs)
    assert [added for added, _ in results] == [0, 5], "one build indexed everything, the other found it done"
    assert _generations(tmp_path / "index") and len(_generations(tmp_path / "index")) == 1
