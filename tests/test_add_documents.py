"""Assistant.add_document(s) and remove_document(s) with the fake embedder: a document goes into the corpus folder
and the index in one call, comes out of both in one call, and a refused one leaves nothing behind."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

import rag
from rag.vectorstore import VectorIndex

WIND_FARM = "Wind farm deal\n\nAzerbaijan and Masdar signed a deal on a 500 megawatt wind farm near Absheron."


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def generations(assistant: rag.Assistant) -> list[str]:
    return sorted(p.name for p in Path(assistant.config.index.path).glob("gen-*"))


def test_an_added_document_is_searchable_and_a_removed_one_never_comes_back(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    added = assistant.add_document("wind farm.txt", WIND_FARM.encode())
    assert (added.source, added.original, added.renamed) == ("wind_farm.txt", "wind farm.txt", False)
    assert added.passages >= 1 and added.message == "Saved 'wind farm.txt' as 'wind_farm.txt'."
    assert (corpus / "wind_farm.txt").read_text(encoding="utf-8") == WIND_FARM
    assert assistant.search("Masdar wind farm Absheron", k=1)[0].source == "wind_farm.txt"

    summary = assistant.remove_document("wind_farm.txt")
    assert summary.removed == ["wind_farm.txt"] and summary.documents == 5
    assert not (corpus / "wind_farm.txt").exists()
    assert all(h.source != "wind_farm.txt" for h in assistant.search("Masdar wind farm Absheron", k=20))
    assert not assistant.build_index().changed_anything  # and the next build does not bring it back


def test_several_files_take_one_index_update_and_refused_ones_are_listed(corpus, make_assistant, tmp_path):
    assistant = make_assistant(corpus)
    assistant.build_index()
    before_files, before_generations = files_in(corpus), generations(assistant)
    on_disk = tmp_path / "summit.md"
    on_disk.write_text("# Tbilisi summit\n\nGeorgia hosted a summit on water in Tbilisi.", encoding="utf-8")
    existing = "004_6ae4727e16493b4e.txt"
    update = assistant.add_documents(
        [
            ("summit.md", on_disk),
            (existing, io.BytesIO(WIND_FARM.encode())),  # a name that is taken: renamed, never replaced
            ("program.exe", b"MZ\x90\x00"),
            ("empty.txt", b""),
            ("blank.txt", b"   \n\n   "),  # saved, but the index finds no text in it: not kept
        ]
    )
    assert [a.source for a in update.added] == ["summit.md", "004_6ae4727e16493b4e-2.txt"]
    assert update.added[1].renamed and "renamed" in update.added[1].message
    assert [r.name for r in update.rejected] == ["program.exe", "empty.txt", "blank.txt"]
    assert "not accepted" in update.rejected[0].reason and "empty" in update.rejected[1].reason
    assert "'blank.txt' was not added: it could not be read" in update.rejected[2].reason
    assert update.summary is not None and sorted(update.summary.added) == sorted(a.source for a in update.added)
    assert len(generations(assistant)) == len(before_generations) + 1  # one index update for the lot
    assert files_in(corpus) == before_files | {"summit.md", "004_6ae4727e16493b4e-2.txt"}
    assert (corpus / existing).read_bytes() != WIND_FARM.encode()
    assert update.to_dict()["index"]["documents"] == 7


def test_a_refused_document_leaves_nothing_behind(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    before_files, before_generations = files_in(corpus), generations(assistant)
    for name, data in (("program.exe", b"MZ"), ("empty.txt", b""), ("blank.txt", b"  \n  ")):
        with pytest.raises(rag.DocumentRejected, match=f"'{name}' was not added"):
            assistant.add_document(name, data)
    small = make_assistant(corpus, corpus={"max_file_mb": 0.001})  # a limit of 1,048 bytes
    with pytest.raises(rag.DocumentRejected, match="limit"):
        small.add_document("big.txt", b"x" * 1049)
    assert files_in(corpus) == before_files
    assert assistant.add_documents([("program.exe", b"MZ")]).summary is None  # nothing saved: no index update
    assert generations(assistant) == before_generations  # blank.txt's update found nothing to write
    assert assistant.stats()["documents"] == 5


def test_a_failed_index_update_takes_the_new_files_back(corpus, make_assistant, monkeypatch):
    assistant = make_assistant(corpus)
    assistant.build_index()
    before = files_in(corpus)

    def fail(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorIndex, "save", fail)
    with pytest.raises(rag.RagError, match="previous index is untouched"):
        assistant.add_documents([("a.txt", b"Some news about Baku."), ("b.txt", b"More news about Ganja.")])
    assert files_in(corpus) == before  # a retry does not find "a-2.txt" waiting


def test_remove_refuses_what_is_not_a_document_of_the_corpus(corpus, make_assistant, tmp_path):
    assistant = make_assistant(corpus)
    assistant.build_index()
    (tmp_path / "outside.txt").write_text("keep me", encoding="utf-8")
    (corpus / "notes.cfg").write_text("not a document", encoding="utf-8")
    before = files_in(corpus)
    with pytest.raises(rag.DocumentNotFound, match="no longer"):
        assistant.remove_document("missing.txt")
    for name in ("../outside.txt", str(tmp_path / "outside.txt"), "notes.cfg", "."):
        with pytest.raises(rag.DocumentRejected, match="not a document in the corpus folder"):
            assistant.remove_document(name)
    assert files_in(corpus) == before and (tmp_path / "outside.txt").exists()

    update = assistant.remove_documents(["001_44aa1b61c723b359.txt", "missing.txt"])
    assert update.removed == ("001_44aa1b61c723b359.txt",) and [r.name for r in update.rejected] == ["missing.txt"]
    assert update.summary is not None and update.summary.removed == ["001_44aa1b61c723b359.txt"]


def test_threads_adding_the_same_name_each_get_their_own_file(corpus, make_assistant):
    assistant = make_assistant(corpus)
    assistant.build_index()
    results, errors = [], []

    def add(n: int) -> None:
        try:
            results.append(assistant.add_document("same.txt", f"Report number {n} about Shusha.".encode()))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(r.source for r in results) == ["same-2.txt", "same-3.txt", "same-4.txt", "same.txt"]
    indexed = {doc.source for doc in assistant.index().documents}
    assert {"same.txt", "same-2.txt", "same-3.txt", "same-4.txt"} <= indexed


def test_data_of_the_wrong_kind_takes_back_the_files_saved_before_it(corpus, make_assistant):
    assistant = make_assistant(corpus)
    before = files_in(corpus)
    with pytest.raises(TypeError, match="encode"):
        assistant.add_documents([("a.txt", b"Some news about Baku."), ("b.txt", "text, not bytes")])
    assert files_in(corpus) == before
