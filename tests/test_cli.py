"""The CLI is a thin shell: commands work, errors are one line and a non-zero exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_search_that_filters_out_everything_names_the_filter_and_the_languages_held(
    corpus, tmp_path, capsys, fake_model
):
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    assert cli.main(["index", *common]) == 0
    capsys.readouterr()
    assert cli.main(["search", "Bayramov", "--lang", "xx", *common]) == 0
    out = capsys.readouterr().out
    assert "No passages found with --lang xx." in out
    assert "The index holds documents in: az (3 documents), en (1 document), ru (1 document)." in out


def test_a_refusal_because_the_filters_leave_no_document_says_so(corpus, tmp_path, capsys, fake_model):
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    assert cli.main(["index", *common]) == 0
    capsys.readouterr()
    assert cli.main(["ask", "Bayramov kimlə görüşüb?", "--lang", "xx", "--model", "test", *common]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "Sənədlərdə bu sualın cavabını tapmadım."
    assert err.startswith("note: No passages found with --lang xx. The index holds documents in: az (3 documents)")


@pytest.mark.parametrize(
    "argv", [["search", "x", "--k", "0"], ["ask", "x", "--k", "-2"], ["eval", "f", "--limit", "0"]]
)
def test_counts_below_one_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "must be a whole number of at least 1" in capsys.readouterr().err


def test_search_with_empty_question_is_an_error(corpus, tmp_path, capsys, fake_model):
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    cli.main(["index", *common])
    assert cli.main(["search", "   ", *common]) == 1
    assert "question is empty" in capsys.readouterr().err


def test_add_then_remove_documents(corpus, tmp_path, capsys, fake_model):
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "idx")]
    assert cli.main(["index", *common]) == 0
    capsys.readouterr()
    report = tmp_path / "wind farm.txt"
    report.write_text("Wind farm deal\n\nAzerbaijan and Masdar signed a deal on a wind farm.", encoding="utf-8")
    program = tmp_path / "program.exe"
    program.write_bytes(b"MZ\x90\x00")
    assert cli.main(["add", str(report), str(program), *common]) == 1  # one refused: exit 1, the other went in
    out, err = capsys.readouterr()
    assert "Saved 'wind farm.txt' as 'wind_farm.txt'." in out and "6 documents" in out and "1 added" in out
    assert err.startswith("error: 'program.exe' was not added: .exe files are not accepted.") and err.count("\n") == 1
    assert (corpus / "wind_farm.txt").exists() and not (corpus / "program.exe").exists()
    assert cli.main(["search", "Masdar wind farm", "--k", "1", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)[0]["source"] == "wind_farm.txt"

    assert cli.main(["add", str(report), "--json", *common]) == 0  # the same name again: renamed, not replaced
    added = json.loads(capsys.readouterr().out)
    assert [a["source"] for a in added["added"]] == ["wind_farm-2.txt"] and added["added"][0]["renamed"]
    assert added["index"]["documents"] == 7 and added["rejected"] == []

    assert cli.main(["remove", "wind_farm.txt", "wind_farm-2.txt", "--json", *common]) == 0
    removed = json.loads(capsys.readouterr().out)
    assert removed["removed"] == ["wind_farm.txt", "wind_farm-2.txt"] and removed["index"]["documents"] == 5
    assert not (corpus / "wind_farm.txt").exists()
    assert cli.main(["remove", "wind_farm.txt", *common]) == 1
    out, err = capsys.readouterr()
    assert "no longer in the corpus folder" in err and "Index" not in out  # nothing removed: index left alone


def test_add_with_only_refused_files_changes_nothing(corpus, tmp_path):
    root = Path(__file__).resolve().parent.parent
    before = sorted(p.name for p in corpus.iterdir())
    command = [sys.executable, "-m", "rag", "add", str(tmp_path / "missing.txt"), "--corpus", str(corpus)]
    command += ["--index", str(tmp_path / "idx")]
    out = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.startswith("error: 'missing.txt' was not added: it cannot be read (No such file")
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert sorted(p.name for p in corpus.iterdir()) == before and not (tmp_path / "idx").exists()
