"""The CLI is a thin shell: commands work, errors are one line and a non-zero exit code."""

from __future__ import annotations

import json

import pytest

from rag import cli


@pytest.fixture
def fake_model(monkeypatch, fake_embedder):
    import rag.assistant

    original = rag.assistant.Assistant.__init__

    def init(self, config=None, *, embedder=None):
        original(self, config, embedder=embedder or fake_embedder)

    monkeypatch.setattr(rag.assistant.Assistant, "__init__", init)


def test_index_search_stats_round_trip(corpus, tmp_path, capsys, fake_model):
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    assert cli.main(["index", *common]) == 0
    assert "5 documents" in capsys.readouterr().out
    assert cli.main(["search", "Usmanov Özbəkistan", "--k", "2", "--json", *common]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["source"].startswith("004_")
    assert {"source", "title", "date", "lang", "text", "start", "end", "score"} <= set(hits[0])
    assert cli.main(["search", "Usmanov", "--lang", "ru", *common]) == 0
    assert "(003_85deb69a06af6b7d.txt, ru" in capsys.readouterr().out
    assert cli.main(["stats", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 5


def test_index_counts_the_files_of_other_types_it_left_out(corpus, tmp_path, capsys, fake_model):
    for name in ("table.xlsx", "photo.jpg", "photo2.JPG", "README"):
        (corpus / name).write_bytes(b"\x00\x01")
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    assert cli.main(["index", *common]) == 0
    out = capsys.readouterr().out
    assert "5 documents" in out
    assert "not read (other file types): 2 .jpg, 1 (no extension), 1 .xlsx" in out
    assert cli.main(["index", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["other_file_types"] == {".jpg": 2, "(no extension)": 1, ".xlsx": 1}


def test_errors_are_one_line_with_exit_code_1(tmp_path, capsys, fake_model):
    assert cli.main(["search", "x", "--index", str(tmp_path / "none"), "--corpus", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["index", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "Config file not found" in capsys.readouterr().err


def test_search_with_empty_question_is_an_error(corpus, tmp_path, capsys, fake_model):
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    cli.main(["index", *common])
    assert cli.main(["search", "   ", *common]) == 1
    assert "question is empty" in capsys.readouterr().err
