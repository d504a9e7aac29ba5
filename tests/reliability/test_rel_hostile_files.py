"""Hostile files in one corpus, one whole build: every bad file is skipped with its reason, the rest is indexed.

One corpus holds empty, whitespace-only and binary files named .txt, text with invalid UTF-8 and with two
encodings, a .docx zip bomb (600 MB of XML in a 2.7 MB file), a .docx whose zip header lies about its size, a
PDF without a text layer, file names with spaces, quotes, Cyrillic and Azerbaijani letters, a leading dash, a
newline and a terminal control character, a name that is not UTF-8, a folder link back to the corpus root, file
link loops, a dangling link, a named pipe, a link to /dev/zero, and a file and a folder without read permission;
and, among them, good documents that must all be found by search.

The build runs twice: in this process with the fake embedder (`build_index()`), and through the CLI code
(`rag.cli.main(["index", ...])`, what `python -m rag index` runs) in a child process with the same fake
embedder, as test_rel_kill.py does. As root, chmod 000 does not stop reads: the child then runs without the
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH capabilities, so the permission bits bite; in this process the same
failure is injected (a PermissionError from opening the file or listing the folder).
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import random
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from relfakes import RELIABILITY_DIR, ROOT, SEEDS, FakeEmbedder, make_config

import rag
from rag import store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="named pipes, symbolic links and chmod are POSIX")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
BOMB_MB = 600

# The seeds under hostile names, with a query that must find each.
SEED_NAMES = {
    "000_f7aabd5eab4a1a5e.txt": ("with spaces in the name.txt", "Hissein Brahim Taha İƏT Baş katibi"),
    "001_44aa1b61c723b359.txt": ('quote\'s "double" name.txt', "Entoni Blinken İlham Əliyevə zəng edib"),
    "002_be657e30248251b4.txt": ("Новости дня.txt", "ambassadors of OIC member states accredited"),
    "003_85deb69a06af6b7d.txt": ("Azərbaycan xəbərləri.txt", "еврейской общины США"),
    "004_6ae4727e16493b4e.txt": ("-rf.txt", "Özbəkistan siyasi məsləhətləşmələr"),
}
MIXED_UTF8 = "Министр иностранных дел Японии встретился с послом Монголии в Токио.\n"
MIXED_CP1251 = "Парламент Грузии утвердил бюджет на следующий год большинством голосов.\n"
# Good documents added with the hostile files: name -> query.
NEW_GOOD = {
    "mixed encodings.txt": "Парламент Грузии утвердил бюджет",
    "invalid-utf8.txt": "Sumqayit harbour authority doubled port tariffs",
    "report.docx": "Ganja vineyards record grape harvest",
    "printed.pdf": "Lankaran tea plantations expanded",
    "two\nlines.txt": "Shaki silk festival weavers",
    "sub/nested.txt": "Qabala observatory telescope",
}
# What each bad entry must be skipped with: display name -> words of the reason.
EXPECTED_SKIPS = {
    "empty.txt": "file is empty",
    "whitespace.txt": "only whitespace",
    "binary.txt": "looks like binary data",
    "zip-bomb.docx": f"unpacks to {BOMB_MB}.0 MB",
    "lying-zip.docx": "not a valid .docx",  # its XML ends after the declared 1000 bytes
    "not-a-zip.docx": "not a readable zip archive",
    "scanned.pdf": "has no text layer",
    "secret.txt": "permission denied",
    "locked/": "permission denied",
    "ring-a.txt": "loops back to itself",
    "ring-b.txt": "loops back to itself",
    "self.txt": "loops back to itself",
    "dangling.txt": "link to a file that does not exist",
    "pipe.txt": "not a regular file",
    "zero.txt": "not a regular file",
    "bell\\x07\\nnewline.txt": "file is empty",
    "latin1-caf\\xe9.txt": "name is not valid UTF-8",
}
PERMISSION_SKIPS = ("secret.txt", "locked/")


# -- building the corpus -------------------------------------------------------------------------------------


def _pdf(*objects: bytes) -> bytes:
    """A minimal, valid PDF: the objects in order (1 is the catalog), a correct xref table and trailer."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(entries: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (entries, len(data), data)


def scanned_pdf() -> bytes:
    """One page showing an 8x8 grey image and nothing else: what a scanner without OCR produces."""
    image = bytes(random.Random(7).randrange(256) for _ in range(64))
    return _pdf(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << /XObject << /Im1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        _stream(
            b"/Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray /BitsPerComponent 8", image
        ),
        _stream(b"", b"q 200 0 0 200 0 0 cm /Im1 Do Q"),
    )


def text_pdf(line: str) -> bytes:
    return _pdf(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 200] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        _stream(b"", b"BT /F1 14 Tf 20 100 Td (%s) Tj ET" % line.encode("ascii")),
    )


CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    b'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
    b'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main'
    b'+xml"/></Types>'
)
RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    b'2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
    b'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
)


def zip_bomb(unpacked_mb: int) -> bytes:
    """A .docx whose word/document.xml really unpacks to `unpacked_mb` MB (mostly spaces); a few MB on disk."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(DOCUMENT_HEAD)
            block = b" " * (1 << 20)
            for _ in range(unpacked_mb):
                member.write(block)
    return buffer.getvalue()


def lying_zip(real_mb: int = 100, claimed: int = 1000) -> bytes:
    """A .docx whose headers say word/document.xml has `claimed` bytes, with the CRC-32 of those first bytes,
    while it unpacks to `real_mb` MB: a check of the declared sizes passes, and a reader that inflates the
    whole member before cutting it to the declared size (zipfile's `read()`) holds all of it in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        with archive.open("word/document.xml", "w") as member:
            member.write(DOCUMENT_HEAD)
            for _ in range(real_mb):
                member.write(b" " * (1 << 20))
    data = bytearray(buffer.getvalue())
    name = b"word/document.xml"
    crc = zlib.crc32((DOCUMENT_HEAD + b" " * claimed)[:claimed]).to_bytes(4, "little")
    local = data.index(b"PK\x03\x04")
    while True:
        name_len = int.from_bytes(data[local + 26 : local + 28], "little")
        if data[local + 30 : local + 30 + name_len] == name:
            data[local + 14 : local + 18] = crc
            data[local + 22 : local + 26] = claimed.to_bytes(4, "little")
            break
        local = data.index(b"PK\x03\x04", local + 4)
    central = data.index(b"PK\x01\x02")
    while True:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == name:
            data[central + 16 : central + 20] = crc
            data[central + 24 : central + 28] = claimed.to_bytes(4, "little")
            break
        central = data.index(b"PK\x01\x02", central + 4)
    return bytes(data)


def good_docx(path: Path, text: str) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Ganja harvest", level=1)
    document.add_paragraph(text)
    document.save(str(path))


def write_seeds(corpus: Path) -> dict[str, str]:
    """The five seeds under hostile names; returns name -> query."""
    corpus.mkdir(parents=True, exist_ok=True)
    for seed, (name, _) in SEED_NAMES.items():
        shutil.copyfile(SEEDS / seed, corpus / name)
    return {name: query for name, query in SEED_NAMES.values()}


def write_hostile(corpus: Path, bomb: bytes, outside: Path) -> None:
    """Every bad file, and the good documents that arrive with them."""
    outside.mkdir(parents=True, exist_ok=True)
    (corpus / "sub").mkdir(exist_ok=True)
    # good, in unusual shapes
    (corpus / "mixed encodings.txt").write_bytes(
        "Новости региона\n\n".encode() + MIXED_UTF8.encode("utf-8") + b"\n" + MIXED_CP1251.encode("cp1251")
    )
    # UTF-8 (Sumqay\xc4\xb1t) with two damaged byte sequences on one line
    (corpus / "invalid-utf8.txt").write_bytes(
        b"Sumqayit harbour authority doubled port tariffs\n\nOfficials in Sumqay\xc4\xb1t confirmed it.\n\n"
        b"The Sumqayit harbour authority said on Monday that port tariffs \xff\xfe will double from March, "
        b"citing \xc3\x28 dredging costs.\n"
    )
    good_docx(corpus / "report.docx", "Ganja vineyards brought in a record grape harvest this autumn, growers said.")
    (corpus / "printed.pdf").write_bytes(text_pdf("Lankaran tea plantations expanded by a third this spring."))
    (corpus / "two\nlines.txt").write_text("Shaki silk festival\n\nWeavers from Shaki opened the silk festival.\n")
    (corpus / "sub" / "nested.txt").write_text("Qabala observatory\n\nThe Qabala observatory got a new telescope.\n")
    # bad
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "whitespace.txt").write_text("   \n\t\n \r\n  \n")
    (corpus / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(4096))
    (corpus / "zip-bomb.docx").write_bytes(bomb)
    (corpus / "lying-zip.docx").write_bytes(lying_zip())
    (corpus / "not-a-zip.docx").write_text("This is plain text that someone named .docx.")
    (corpus / "scanned.pdf").write_bytes(scanned_pdf())
    (corpus / "secret.txt").write_text("Secret text that nobody may read.\n")
    (corpus / "secret.txt").chmod(0)
    (corpus / "locked").mkdir(exist_ok=True)
    if not (corpus / "locked" / "inside.txt").exists():
        (corpus / "locked" / "inside.txt").write_text("Text inside a folder nobody may list.\n")
    (corpus / "locked").chmod(0)
    (corpus / "sub" / "up").symlink_to("..", target_is_directory=True)
    (corpus / "ring-a.txt").symlink_to("ring-b.txt")
    (corpus / "ring-b.txt").symlink_to("ring-a.txt")
    (corpus / "self.txt").symlink_to("self.txt")
    (corpus / "dangling.txt").symlink_to(outside / "missing.txt")
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "zero.txt").symlink_to("/dev/zero")
    (corpus / "bell\x07\nnewline.txt").write_bytes(b"")
    with open(os.fsencode(corpus) + b"/latin1-caf\xe9.txt", "wb") as latin1_name:
        latin1_name.write(b"Cafe text under a file name written in Latin-1.\n")


def restore_permissions(corpus: Path) -> None:
    for path in (corpus / "secret.txt", corpus / "locked"):
        if path.exists():
            path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zip_bomb(BOMB_MB)


# -- checks shared by both builds ----------------------------------------------------------------------------


def check_skips(skipped: dict[str, str], expected: dict[str, str]) -> None:
    """Every bad entry skipped with a reason naming its problem, and nothing else skipped."""
    assert set(skipped) == set(expected), f"skipped {sorted(skipped)}, expected {sorted(expected)}"
    for name, words in expected.items():
        assert words in skipped[name], (name, skipped[name])
        assert "\n" not in skipped[name]
    assert "OCR" in skipped["scanned.pdf"] and "ocrmypdf" in skipped["scanned.pdf"]
    assert "max_file_mb" in skipped["zip-bomb.docx"]


def check_searchable(assistant: rag.Assistant, queries: dict[str, str]) -> None:
    """Each good document is the best hit for a query from its text."""
    for name, query in queries.items():
        hits = assistant.search(query, k=3)
        assert hits and hits[0].source == name, (name, query, [(h.source, round(h.score, 3)) for h in hits])


def check_documents(assistant: rag.Assistant, names: set[str]) -> None:
    """Exactly the good documents are indexed, once each (no copy through the folder link back to the root), and
    both halves of the mixed-encoding file and the text around the damaged bytes read as written."""
    documents = {doc.source: doc for doc in assistant.index().documents}
    assert set(documents) == names
    mixed = documents["mixed encodings.txt"].text
    assert MIXED_UTF8.strip() in mixed and MIXED_CP1251.strip() in mixed
    assert "Sumqayit harbour authority said on Monday" in documents["invalid-utf8.txt"].text


# -- in this process -----------------------------------------------------------------------------------------


@pytest.fixture
def deny_reads(monkeypatch):
    """As root, make opening secret files and listing locked folders fail as they would for any other user."""

    def deny(paths: set[Path]) -> None:
        if not IS_ROOT:
            return  # chmod already does it
        real_open, real_scandir = Path.open, os.scandir

        def guarded_open(self, *args, **kwargs):
            if self in paths:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        def guarded_scandir(path="."):
            if isinstance(path, str | os.PathLike) and Path(path) in paths:
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(Path, "open", guarded_open)
        monkeypatch.setattr(os, "scandir", guarded_scandir)

    return deny


def test_hostile_corpus_one_build_skips_each_bad_file_and_loses_nothing(tmp_path, fake_assistant, bomb, deny_reads):
    """A first build indexes the five seeds (under hostile names) and a file in a folder. Then every hostile
    file arrives, two of the indexed seeds turn bad (one emptied, one rewritten unreadable) and the folder loses
    its permissions. The second build completes; each bad entry is skipped once with its reason, the damaged
    seeds and the locked folder's file keep their indexed version, every good document is the
    top hit for its query, the mixed-encoding file is read line by line with a warning, the zip bomb is refused
    without unpacking (traced Python memory stays far below its 600 MB), and the folder link back to the root
    neither loops nor duplicates a document. A third build changes nothing and writes no new generation."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    queries = write_seeds(corpus)
    (corpus / "locked").mkdir()
    (corpus / "locked" / "inside.txt").write_text("Nakhchivan salt mine\n\nThe Nakhchivan salt mine reopened.\n")
    queries["locked/inside.txt"] = "Nakhchivan salt mine reopened"
    assistant = fake_assistant(corpus, tmp_path / "index")
    first = assistant.build_index()
    assert first.documents == 6 and not first.skipped

    write_hostile(corpus, bomb, outside)
    (corpus / "with spaces in the name.txt").write_bytes(b"")
    (corpus / "-rf.txt").write_text("A new version of this article, which nobody may read.\n")
    (corpus / "-rf.txt").chmod(0)
    deny_reads({corpus / "secret.txt", corpus / "-rf.txt", corpus / "locked"})
    warnings: list[str] = []
    try:
        tracemalloc.start()
        second = assistant.build_index(warn=warnings.append)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        expected = {**EXPECTED_SKIPS, "with spaces in the name.txt": "file is empty", "-rf.txt": "permission denied"}
        skipped = {s.source: s.reason for s in second.skipped}
        check_skips(skipped, expected)
        kept = [name for name, reason in skipped.items() if reason.endswith("(kept the previously indexed version)")]
        assert sorted(kept) == ["-rf.txt", "with spaces in the name.txt"]
        assert skipped["locked/"].endswith("(kept the 1 previously indexed file(s) in it)")
        assert peak < 100 * 2**20, f"traced memory peaked at {peak / 2**20:.0f} MB"
        assert sorted(second.added) == sorted(NEW_GOOD) and not second.removed and not second.changed
        assert second.documents == 6 + len(NEW_GOOD)
        notes = [w for w in warnings if "mixed encodings" in w]
        assert len(notes) == 2 and notes[0].startswith("invalid-utf8.txt: ") and "read as cp1251" in notes[1]
        assert len(warnings) == len(expected) + 2 and all("\n" not in w for w in warnings)

        good = queries | NEW_GOOD
        check_searchable(assistant, good)
        check_documents(assistant, set(good))

        generation = store.current_generation(tmp_path / "index")
        third = assistant.build_index()
        assert (third.added, third.changed, third.removed, third.embedded_passages) == ([], [], [], 0)
        assert {s.source: s.reason for s in third.skipped} == skipped
        assert store.current_generation(tmp_path / "index") == generation, "an unchanged corpus wrote a generation"
        check_searchable(assistant, good)
    finally:
        restore_permissions(corpus)
        (corpus / "-rf.txt").chmod(0o644)


# -- through the CLI, in a child process ---------------------------------------------------------------------

CHILD = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from relfakes import FakeEmbedder
import rag.assistant

original = rag.assistant.Assistant.__init__

def init(self, config=None, *, embedder=None, generator=None):
    original(self, config, embedder=embedder or FakeEmbedder(), generator=generator)

rag.assistant.Assistant.__init__ = init
from rag.cli import main

code = main(sys.argv[3:])
with open(sys.argv[2], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def _drop_read_override() -> None:
    """In the child, before exec: root without the capabilities that let it ignore permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _child_cannot_read(path: Path) -> bool:
    """Whether a child started like the CLI child is refused `path` (chmod 000)."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import sys; open(sys.argv[1]).read()", str(path)],
            preexec_fn=_drop_read_override if IS_ROOT else None,
            capture_output=True,
            timeout=60,
        )
    except subprocess.SubprocessError:
        return False
    return probe.returncode != 0 and b"PermissionError" in probe.stderr


def _run_cli(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    rss_file = tmp_path / "peak-rss-kb"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(RELIABILITY_DIR), str(rss_file), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=_drop_read_override if IS_ROOT else None,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, int(rss_file.read_text()) if rss_file.exists() else -1


def test_cli_index_of_the_hostile_corpus_warns_once_per_bad_file(tmp_path, bomb):
    """`rag index` (the CLI code in a child process) over the hostile corpus exits 0 without a traceback, prints
    one `warning:` line per skipped entry naming it (newline and control characters in names escaped) and the
    same entries in its summary, reads the unreadable file and folder as denied, never holds the zip bomb in
    memory (peak RSS), and the index it writes finds every good document. A second run changes nothing."""
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    good = write_seeds(corpus) | NEW_GOOD
    write_hostile(corpus, bomb, tmp_path / "outside")
    expected = dict(EXPECTED_SKIPS)
    try:
        if not _child_cannot_read(corpus / "secret.txt"):
            # Root that cannot drop its capabilities reads anything; the in-process test injects the denial.
            for name in PERMISSION_SKIPS:
                del expected[name]
            good |= {"secret.txt": "Secret text that nobody may read", "locked/inside.txt": "folder nobody may list"}
        where = ["--corpus", str(corpus), "--index", str(index_dir)]
        proc, peak_kb = _run_cli(tmp_path, "index", *where)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr + proc.stdout
        assert 0 < peak_kb < 400 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB with a {BOMB_MB} MB zip bomb"

        warning_lines = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warning_lines) == len(proc.stderr.splitlines()) == len(expected) + 2, proc.stderr
        for name, words in expected.items():
            mine = [line for line in warning_lines if line.startswith(f"warning: {name}: ")]
            assert len(mine) == 1 and words in mine[0], (name, mine)
        summary_lines = [line for line in proc.stdout.splitlines() if line.startswith("  skipped ")]
        skipped = dict(line.removeprefix("  skipped ").split(": ", 1) for line in summary_lines)
        check_skips(skipped, expected)
        assert f"{len(good)} documents" in proc.stdout and "Index rebuilt" in proc.stdout

        assistant = rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder())
        check_searchable(assistant, good)
        check_documents(assistant, set(good))

        generation = store.current_generation(index_dir)
        again, _ = _run_cli(tmp_path, "index", *where)
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-3000:]
        assert f"0 added, 0 changed, 0 removed, {len(good)} unchanged; 0 passages embedded" in again.stdout
        # The same skips; the notes on the two mixed-encoding files came with indexing them and are not repeated.
        assert again.stderr.splitlines() == [line for line in warning_lines if "mixed encodings:" not in line]
        assert store.current_generation(index_dir) == generation
    finally:
        restore_permissions(corpus)


def test_zip_bomb_fixture_really_unpacks_to_hundreds_of_megabytes(bomb):
    """The bomb is real: small on disk, and its document.xml declares (and streams) 600 MB."""
    assert len(bomb) < 5 * 2**20
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        info = archive.getinfo("word/document.xml")
        assert info.file_size > BOMB_MB * 2**20
        with archive.open(info) as member:
            unpacked = sum(len(chunk) for chunk in iter(lambda: member.read(1 << 24), b""))
    assert unpacked == info.file_size
    lying = zipfile.ZipFile(io.BytesIO(lying_zip()))
    assert lying.getinfo("word/document.xml").file_size == 1000
    tracemalloc.start()
    assert len(lying.read("word/document.xml")) == 1000  # the CRC of the claimed bytes passes...
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak > 100 * 2**20  # ...after inflating all 100 MB at once
