"""rag/corpus_files.py: files go into the corpus folder under a safe name, never over another, and only files
inside it come out. No index and no model here (tests/test_add_documents.py goes through the Assistant)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import rag
from rag import corpus_files
from rag.errors import DocumentNotFound, DocumentRejected

EXTENSIONS, MAX_BYTES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx"), 1000


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "a" / "b" / "corpus"  # deep, so that "../../x.txt" would still land inside tmp_path
    folder.mkdir(parents=True)
    (folder / "existing.txt").write_text("the original document", encoding="utf-8")
    return folder


def upload_file(tmp_path: Path, content: bytes = b"Some news text.") -> Path:
    path = tmp_path / "incoming" / "upload.bin"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# -- names ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x.txt", "x.txt"),
        ("..\\..\\windows\\x.txt", "x.txt"),
        ("/etc/passwd.txt", "passwd.txt"),
        ("my report 'final' \"v2\".txt", "my_report_final_v2.txt"),
        ("Özbəkistan xəbəri.md", "Özbəkistan_xəbəri.md"),
        ("Узбекистан.TXT", "Узбекистан.txt"),
        ("--rm -rf.txt", "rm_-rf.txt"),
        (".hidden.txt", "hidden.txt"),
        ("...txt", "document.txt"),
        ("a\x00b;c|d.txt", "a_b_c_d.txt"),
    ],
)
def test_safe_filename(name, expected):
    assert corpus_files.safe_filename(name) == expected


def test_safe_filename_is_short():
    assert len(corpus_files.safe_filename("x" * 500 + ".txt")) <= corpus_files.MAX_NAME_CHARS + 4


# -- saving ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../../x.txt", "/tmp/abs.txt", "..\\evil.md", "-leading-dash.txt", "spaces and 'quotes'.txt", "Мир.txt"]
)
def test_upload_lands_inside_the_corpus_folder(tmp_path, corpus, name):
    incoming = upload_file(tmp_path)
    outside_before = tree(tmp_path) - {f"a/b/corpus/{p}" for p in tree(corpus)}
    saved = corpus_files.save_file(incoming, name, corpus, EXTENSIONS, MAX_BYTES)
    assert saved.path.parent == corpus.resolve()
    assert saved.path.read_bytes() == b"Some news text."
    assert not saved.path.name.startswith(("-", "."))
    outside_after = tree(tmp_path) - {f"a/b/corpus/{p}" for p in tree(corpus)}
    assert outside_after == outside_before  # nothing written outside the corpus folder
    assert (corpus / "existing.txt").read_text(encoding="utf-8") == "the original document"


def test_absolute_path_without_an_accepted_type_is_rejected(tmp_path, corpus):
    with pytest.raises(DocumentRejected, match="not accepted"):
        corpus_files.save_file(upload_file(tmp_path), "/etc/passwd", corpus, EXTENSIONS, MAX_BYTES)
    assert tree(corpus) == {"existing.txt"}


def test_same_name_as_an_existing_document_is_renamed_and_said_so(tmp_path, corpus):
    first = corpus_files.save_file(upload_file(tmp_path, b"new one"), "existing.txt", corpus, EXTENSIONS, MAX_BYTES)
    second = corpus_files.save_file(upload_file(tmp_path, b"newer"), "../existing.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert (first.path.name, second.path.name) == ("existing-2.txt", "existing-3.txt")
    assert first.renamed and "renamed" in first.message() and "existing-2.txt" in first.message()
    assert "exists already" in first.message()
    assert (corpus / "existing.txt").read_text(encoding="utf-8") == "the original document"
    assert first.path.read_bytes() == b"new one" and second.path.read_bytes() == b"newer"
    fresh = corpus_files.save_file(upload_file(tmp_path), "fresh.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert not fresh.renamed and "renamed" not in fresh.message()


def test_a_planted_symlink_is_not_followed(tmp_path, corpus):
    target = corpus.parent / "outside.txt"
    (corpus / "link.txt").symlink_to(target)  # dangling: writing through it would create a file outside
    saved = corpus_files.save_file(upload_file(tmp_path), "link.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert saved.path.name == "link-2.txt" and not target.exists()


@pytest.mark.parametrize("name", ["program.exe", "script.py", "archive.txt.zip", "noextension"])
def test_wrong_type_is_rejected(tmp_path, corpus, name):
    with pytest.raises(DocumentRejected, match="not accepted.*Accepted: .txt"):
        corpus_files.save_file(upload_file(tmp_path), name, corpus, EXTENSIONS, MAX_BYTES)
    assert tree(corpus) == {"existing.txt"}


def test_oversized_and_empty_uploads_are_rejected(tmp_path, corpus):
    with pytest.raises(DocumentRejected, match="limit"):
        corpus_files.save_file(upload_file(tmp_path, b"x" * (MAX_BYTES + 1)), "big.txt", corpus, EXTENSIONS, MAX_BYTES)
    with pytest.raises(DocumentRejected, match="empty"):
        corpus_files.save_file(upload_file(tmp_path, b""), "empty.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert tree(corpus) == {"existing.txt"}


def test_a_sanitised_name_is_reported_but_not_called_a_rename(tmp_path, corpus):
    saved = corpus_files.save_file(upload_file(tmp_path), "wind farm.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert saved.path.name == "wind_farm.txt" and not saved.renamed
    assert saved.message() == "Saved 'wind farm.txt' as 'wind_farm.txt'."


def test_bytes_and_open_files_are_saved_like_paths(corpus):
    from_bytes = corpus_files.save_file(b"From bytes.", "a.txt", corpus, EXTENSIONS, MAX_BYTES)
    stream = io.BytesIO(b"skipped header|From a file.")
    stream.seek(len(b"skipped header|"))  # read from where it stands
    from_file = corpus_files.save_file(stream, "b.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert from_bytes.path.read_bytes() == b"From bytes." and from_file.path.read_bytes() == b"From a file."
    assert not stream.closed  # the caller's file stays the caller's


class Unseekable(io.RawIOBase):
    """A pipe-like stream: its size is known only once it has been read."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_stream_over_the_limit_or_empty_leaves_nothing_behind(corpus):
    with pytest.raises(DocumentRejected, match="limit"):
        corpus_files.save_file(Unseekable(b"x" * (MAX_BYTES + 1)), "big.txt", corpus, EXTENSIONS, MAX_BYTES)
    with pytest.raises(DocumentRejected, match="empty"):
        corpus_files.save_file(Unseekable(b""), "empty.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert tree(corpus) == {"existing.txt"}
    saved = corpus_files.save_file(Unseekable(b"fits"), "small.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert saved.path.read_bytes() == b"fits"


def test_a_path_that_cannot_be_read_is_rejected_with_the_reason(tmp_path, corpus):
    with pytest.raises(DocumentRejected, match="cannot be read"):
        corpus_files.save_file(tmp_path / "missing.txt", "missing.txt", corpus, EXTENSIONS, MAX_BYTES)
    with pytest.raises(DocumentRejected, match="cannot be read|not a file"):
        corpus_files.save_file(tmp_path / "incoming", "folder.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert tree(corpus) == {"existing.txt"}


def test_a_str_is_refused_rather_than_guessed(corpus):
    with pytest.raises(TypeError, match="encode"):
        corpus_files.save_file("Some text.", "a.txt", corpus, EXTENSIONS, MAX_BYTES)
    assert tree(corpus) == {"existing.txt"}


def test_limits_come_from_the_corpus_config():
    config = rag.load_config({"corpus": {"extensions": [".TXT", "md"], "max_file_mb": 2}})
    assert corpus_files.limits(config) == ((".txt", ".md"), 2 * 1024 * 1024)


# -- removal ------------------------------------------------------------------------------------------------------


def test_remove_deletes_only_files_inside_the_corpus(tmp_path, corpus):
    outside = corpus.parent / "outside.txt"
    outside.write_text("keep me", encoding="utf-8")
    for source in ("../outside.txt", str(outside), "/etc/passwd", ".", "sub/../../outside.txt"):
        with pytest.raises(DocumentRejected):
            corpus_files.delete_file(source, corpus)
    assert outside.exists()
    with pytest.raises(DocumentRejected, match="no longer"):
        corpus_files.delete_file("missing.txt", corpus)
    assert corpus_files.delete_file("existing.txt", corpus) == corpus.resolve() / "existing.txt"
    assert tree(corpus) == set()


def test_remove_can_be_kept_to_documents_the_index_reads(corpus):
    (corpus / "notes.cfg").write_text("not a document", encoding="utf-8")
    with pytest.raises(DocumentRejected, match="not a document"):
        corpus_files.delete_file("notes.cfg", corpus, EXTENSIONS)
    with pytest.raises(DocumentNotFound):
        corpus_files.delete_file("gone.txt", corpus, EXTENSIONS)
    assert tree(corpus) == {"existing.txt", "notes.cfg"}
