"""Readers: every supported format and encoding gives its text; every bad input is skipped with a reason."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import docx
import pytest

from rag.errors import DocumentSkipped
from rag.readers import SUPPORTED, decode_text, extract_raw, read_text, strip_tags, unwrap_lines

MB = 1024 * 1024
LIMIT = 10 * MB

AZ = (
    "Bakı şəhərində siyasi məsləhətləşmələr keçirilib. Nazir müavini Xələf Xələfov Özbəkistan tərəfi ilə "
    "danışıqlar aparıb. Qarşılıqlı maraq doğuran məsələlər müzakirə olunub."
)
RU = (
    "Министр иностранных дел Азербайджана Джейхун Байрамов встретился с коллегой из Кыргызстана. "
    "Стороны обсудили расширение сотрудничества."
)
EN = "The minister said “peace” is close — and the talks will go on."


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF whose text layer holds `lines` (Helvetica, so Latin-1 text only)."""

    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    if lines:
        shown = " ".join(f"({escape(line)}) Tj T*" for line in lines)
        content = f"BT /F1 11 Tf 14 TL 72 720 Td {shown} ET"
    else:
        content = "0 0 m 200 200 l S"  # a drawing and no text, like a scanned page
    stream = content.encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Bayramov Özbəkistan nümayəndə heyəti ilə görüşüb", 1)
    document.add_paragraph("Görüşdə ikitərəfli əməkdaşlıq müzakirə olunub.")
    table = document.add_table(rows=2, cols=3)
    for col, text in enumerate(("Ölkə", "Nazir", "Tarix")):
        table.cell(0, col).text = text
    for col, text in enumerate(("Azərbaycan", "Ceyhun Bayramov", "2023")):
        table.cell(1, col).text = text
    document.add_paragraph("Tərəflər qarşılıqlı səfərlərin davamını vacib sayıb.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def skip_reason(path: Path, max_bytes: int = LIMIT) -> str:
    with pytest.raises(DocumentSkipped) as info:
        read_text(path, max_bytes)
    return str(info.value)


# Text and encodings -----------------------------------------------------------------------------------------


def test_plain_text_and_markdown_are_read_as_utf8(tmp_path):
    assert read_text(write(tmp_path, "a.txt", AZ), LIMIT) == AZ
    markdown = f"# Başlıq\n\n{AZ}\n"
    assert read_text(write(tmp_path, "a.md", markdown), LIMIT) == markdown
    assert read_text(write(tmp_path, "UPPER.TXT", RU), LIMIT) == RU


@pytest.mark.parametrize(
    "encoding, prefix",
    [
        ("utf-8-sig", b""),
        ("utf-16", b""),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-32", b""),
    ],
)
def test_byte_order_marks_pick_the_encoding(tmp_path, encoding, prefix):
    for text in (AZ, RU):
        assert read_text(write(tmp_path, "bom.txt", prefix + text.encode(encoding)), LIMIT) == text


def test_utf16_without_byte_order_mark(tmp_path):
    assert read_text(write(tmp_path, "u16.txt", EN.encode("utf-16-le")), LIMIT) == EN
    assert read_text(write(tmp_path, "u16.txt", EN.encode("utf-16-be")), LIMIT) == EN


@pytest.mark.parametrize("encoding", ["cp1251", "koi8_r"])
def test_legacy_russian_encodings(tmp_path, encoding):
    assert read_text(write(tmp_path, "ru.txt", RU.encode(encoding)), LIMIT) == RU
    assert decode_text("Новости".encode(encoding)) == "Новости"


@pytest.mark.parametrize("encoding", ["cp1254", "iso8859_9"])
def test_legacy_azerbaijani_latin_encodings(tmp_path, encoding):
    # Neither code page has ə; legacy Azerbaijani text wrote ä instead, and ı ş ğ İ must survive.
    legacy = AZ.replace("ə", "ä").replace("Ə", "Ä")
    assert read_text(write(tmp_path, "az.txt", legacy.encode(encoding)), LIMIT) == legacy


def test_utf8_is_preferred_when_the_bytes_are_valid_utf8(tmp_path):
    assert read_text(write(tmp_path, "en.txt", EN), LIMIT) == EN


def test_invalid_bytes_never_raise(tmp_path):
    text = read_text(write(tmp_path, "bad.txt", b"Salam d\xfcnya. Valid text around \xff\xfa bytes."), LIMIT)
    assert text.startswith("Salam d") and "Valid text around" in text


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02binary\x00\xff" * 20,
        bytes(range(256)) * 8,
        b"\x89PNG\r\n\x1a\n" + bytes(300),
        b"\x01\x02\x03\x04\x05\x06\x07\x08" * 20 + b"text",
    ],
)
def test_binary_data_named_txt_is_skipped(tmp_path, data):
    assert "looks like binary data, not text" in skip_reason(write(tmp_path, "photo.txt", data))


# HTML -------------------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html lang="az"><head><meta charset="utf-8">
<title>Siyasi məsləhətləşmələr | Metbuat.az</title>
<meta property="article:published_time" content="2023-06-14T10:00:00+04:00">
<script>var tracking = "SCRIPT_TEXT";</script><style>.menu{color:red}</style></head>
<body><nav><ul><li><a href="/">Ana səhifə</a></li><li><a href="/siyaset">NAV_MENU</a></li></ul></nav>
<header><div class="logo">HEADER_LOGO</div></header>
<main><article><h1>Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib</h1>
<p>Bildirilib ki, iyunun 14-də Azərbaycan və Özbəkistan Xarici İşlər nazirlikləri arasında siyasi
məsləhətləşmələr keçirilib. Nümayəndə heyətlərinə Azərbaycan tərəfindən xarici işlər nazirinin müavini
Xələf Xələfov rəhbərlik edib.</p>
<p>Görüşdə Azərbaycan və Özbəkistan arasında münasibətlərin yüksələn xətt üzrə inkişafı qeyd olunub.</p>
</article>
<div class="comments"><h3>Şərhlər</h3><p>COMMENT_TEXT çox maraqlı xəbərdir!</p></div></main>
<footer>FOOTER_TEXT © 2023 Metbuat.az</footer><script>console.log("SCRIPT2")</script></body></html>"""


def test_html_keeps_the_article_and_drops_page_furniture(tmp_path):
    text = read_text(write(tmp_path, "page.html", PAGE), LIMIT)
    assert text.startswith("Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib")
    assert "Xələf Xələfov rəhbərlik edib." in text
    assert "münasibətlərin yüksələn xətt üzrə inkişafı" in text
    for furniture in ("SCRIPT", "NAV_MENU", "HEADER_LOGO", "FOOTER_TEXT", "COMMENT_TEXT", "color:red"):
        assert furniture not in text
    # Paragraphs stay apart.
    assert "\n\nGörüşdə" in text


def test_html_metadata_gives_title_and_date():
    raw = extract_raw(PAGE.encode("utf-8"), ".htm", LIMIT)
    assert raw.title == "Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib"
    assert raw.date == "2023-06-14"


def test_html_declared_legacy_charset(tmp_path):
    page = f'<html><head><meta charset="windows-1251"></head><body><article><p>{RU}</p></article></body></html>'
    assert RU in read_text(write(tmp_path, "ru.html", page.encode("cp1251")), LIMIT)


def test_html_falls_back_to_tag_stripping_when_the_extractor_fails(tmp_path, monkeypatch):
    import trafilatura

    def fail(*args, **kwargs):
        raise ValueError("extractor failure")

    monkeypatch.setattr(trafilatura, "bare_extraction", fail)
    page = "<html><body><nav>MENU</nav><div>Qısa mətn</div><script>SCRIPT()</script></body></html>"
    assert read_text(write(tmp_path, "tiny.html", page), LIMIT) == "Qısa mətn"


def test_strip_tags_keeps_paragraphs_and_entities():
    markup = "<p>Birinci &amp; ikinci</p><style>x{}</style><p>Üçüncü<br>dördüncü</p><footer>F</footer>"
    assert strip_tags(markup) == "Birinci & ikinci\n\nÜçüncü\n\ndördüncü"


def test_html_with_no_text_is_skipped(tmp_path):
    reason = skip_reason(write(tmp_path, "empty.html", "<html><body><script>x()</script></body></html>"))
    assert "has no text" in reason


# PDF --------------------------------------------------------------------------------------------------------


def test_pdf_text_layer_with_wrapped_lines_joined(tmp_path):
    lines = [
        "Azerbaijan and Uzbekistan hold political consultations",
        "On June 14 the foreign ministries of Azerbaijan and Uzbekistan held political",
        "consultations in Baku. The delegations were led by deputy ministers Khalaf Khalafov",
        "and Bobur Usmanov.",
        "Trade and economic ties were discussed (see p. 2).",
    ]
    text = read_text(write(tmp_path, "doc.pdf", make_pdf(lines)), LIMIT)
    assert text.split("\n") == [
        "Azerbaijan and Uzbekistan hold political consultations",
        "On June 14 the foreign ministries of Azerbaijan and Uzbekistan held political consultations in "
        "Baku. The delegations were led by deputy ministers Khalaf Khalafov and Bobur Usmanov.",
        "Trade and economic ties were discussed (see p. 2).",
    ]


def test_unwrap_lines_rejoins_hyphenated_words():
    page = "The ministers discussed the reconstruction of the liber-\nated territories and other things.\nEnd."
    assert unwrap_lines(page).split("\n")[0] == (
        "The ministers discussed the reconstruction of the liberated territories and other things."
    )


def test_pdf_without_text_layer_is_skipped(tmp_path):
    reason = skip_reason(write(tmp_path, "scan.pdf", make_pdf([])))
    assert "has no text layer (scanned?); run OCR first" in reason


def test_damaged_pdf_is_skipped(tmp_path):
    reason = skip_reason(write(tmp_path, "broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog"))
    assert "not a readable PDF" in reason


# DOCX -------------------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_table_cells_in_order(tmp_path):
    text = read_text(write(tmp_path, "doc.docx", make_docx()), LIMIT)
    assert text.split("\n\n") == [
        "Bayramov Özbəkistan nümayəndə heyəti ilə görüşüb",
        "Görüşdə ikitərəfli əməkdaşlıq müzakirə olunub.",
        "Ölkə | Nazir | Tarix",
        "Azərbaycan | Ceyhun Bayramov | 2023",
        "Tərəflər qarşılıqlı səfərlərin davamını vacib sayıb.",
    ]


def test_docx_zip_bomb_is_refused_before_unpacking(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (3 * MB))
    path = write(tmp_path, "bomb.docx", buffer.getvalue())
    assert path.stat().st_size < 64 * 1024
    reason = skip_reason(path, max_bytes=1 * MB)
    assert "unpacks to 3.0 MB" in reason and "[corpus] max_file_mb" in reason


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"PK\x03\x04 not really a zip", "not a valid .docx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old Word 97-2003 document"),
    ],
)
def test_files_that_are_not_docx_are_skipped(tmp_path, data, expected):
    assert expected in skip_reason(write(tmp_path, "fake.docx", data))


def test_zip_without_a_word_document_is_skipped(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert "not a valid .docx" in skip_reason(write(tmp_path, "other.docx", buffer.getvalue()))


# Bad files --------------------------------------------------------------------------------------------------


def test_empty_file_is_skipped(tmp_path):
    assert "file is empty" in skip_reason(write(tmp_path, "empty.txt", b""))


def test_whitespace_only_file_is_skipped(tmp_path):
    assert "has no text (only whitespace)" in skip_reason(write(tmp_path, "blank.md", " \n\t\r\n  \n"))


def test_oversized_file_names_its_size_and_the_config_key(tmp_path):
    reason = skip_reason(write(tmp_path, "big.txt", "a" * (3 * MB)), max_bytes=2 * MB)
    assert "3.0 MB" in reason and "2 MB" in reason and "[corpus] max_file_mb" in reason


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    reason = skip_reason(write(tmp_path, "sheet.xlsx", b"data"))
    assert "'.xlsx'" in reason and all(ext in reason for ext in SUPPORTED)


def test_vanished_file_is_skipped(tmp_path):
    assert "disappeared before it could be read" in skip_reason(tmp_path / "gone.txt")


def test_broken_symbolic_link_is_skipped(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "missing.txt")
    assert "symbolic link to a file that does not exist" in skip_reason(link)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file_is_skipped(tmp_path):
    path = write(tmp_path, "secret.txt", AZ)
    path.chmod(0)
    try:
        assert "permission denied" in skip_reason(path)
    finally:
        path.chmod(0o644)


def test_permission_error_is_reported_as_unreadable(tmp_path, monkeypatch):
    path = write(tmp_path, "secret.txt", AZ)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert "permission denied" in skip_reason(path)
