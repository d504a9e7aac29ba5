"""File bytes to raw text, one function per format.

Everything that makes a file impossible to index raises `DocumentSkipped` with a reason the user can act on;
the build reports it and goes on with the other files. Nothing here reaches the network.
"""

from __future__ import annotations

import codecs
import errno
import html
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .errors import DocumentSkipped
from .text import word_set

SUPPORTED = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
_MB = 1024 * 1024

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Single-byte encodings these languages were written in before UTF-8: Russian (cp1251, koi8-r, iso-8859-5)
# and Azerbaijani/Turkish Latin (cp1254, iso-8859-9). cp1252 is left out on purpose: cp1254 reads English and
# western European text the same way, and where they differ (ı ş ğ İ Ş Ğ) cp1252 would garble Azerbaijani.
_LEGACY = ["cp1251", "koi8_r", "cp1254", "iso8859_9", "iso8859_5"]
_CONTROL_SHARE = 0.05
_SNIFF = 64 * 1024
_DOCX_MAX_MEMBERS = 10_000


_BINARY = "looks like binary data, not text; remove it, or export it as UTF-8 text if it is a document."


@dataclass(frozen=True)
class RawText:
    """What a reader found in a file: its text, and a title and date when the format records them."""

    text: str
    title: str | None = None
    date: str | None = None
    note: str | None = None  # something the user should know although the file was read (mixed encodings)


def read_text(path: Path, max_bytes: int) -> str:
    """The text of a .txt, .md, .html, .htm, .pdf or .docx file; raises DocumentSkipped when there is none."""
    return extract_raw(read_bytes(path, max_bytes), path.suffix, max_bytes).text


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing unsupported, missing, unreadable, empty and oversized files."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        shown = f"'{path.suffix}'" if path.suffix else "with no extension"
        raise DocumentSkipped(
            f"unsupported file type {shown}; supported types are {', '.join(SUPPORTED)}. "
            "Convert it to one of them, or remove its extension from [corpus] extensions."
        )
    try:
        # Before opening: opening a named pipe blocks until something writes to it, and a device never ends.
        if not stat.S_ISREG(path.stat().st_mode):
            raise DocumentSkipped(
                "is not a regular file (a named pipe, socket or device); remove it from the corpus folder."
            )
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            _check_size(size, max_bytes)
            # read(n) allocates n bytes up front: ask for the file's size, not the limit (200 MB per file).
            data = fh.read(size + 1)
            if len(data) > size:  # it grew since fstat: read on, up to just past the limit
                data += fh.read(max_bytes + 1 - len(data))
    except OSError as exc:
        raise DocumentSkipped(_unreadable(path, exc)) from exc
    _check_size(len(data), max_bytes)  # it may have grown since it was opened
    if not data:
        raise DocumentSkipped("file is empty (0 bytes); add text to it or remove it from the corpus folder.")
    return data


def _unreadable(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        if path.is_symlink():
            return "is a symbolic link to a file that does not exist; fix or remove the link."
        return "disappeared before it could be read (moved or deleted); run the build again."
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied. Give your user read access (chmod u+r) or move it away."
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file; rename it so that its name does not end like a document's."
    if exc.errno == errno.ELOOP:
        return "is a symbolic link that loops back to itself through other links; fix or remove the link."
    return f"cannot be read ({exc.strerror or exc}); check the disk and the file's permissions."


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise DocumentSkipped(
            f"file is {size / _MB:.1f} MB, over the {max_bytes / _MB:g} MB limit; raise [corpus] max_file_mb "
            "in config.toml to index it."
        )


def extract_raw(data: bytes, suffix: str, max_bytes: int) -> RawText:
    """Text of a file's bytes by its extension (".txt", ".pdf"...), plus the title and date HTML records.

    `max_bytes` also bounds what a .docx may unpack to.
    """
    suffix = suffix.lower()
    if suffix in (".txt", ".md"):
        text, note = decode_text_noted(data)
        raw = RawText(text, note=note)
    elif suffix in (".html", ".htm"):
        raw = read_html(data)
    elif suffix == ".pdf":
        raw = RawText(read_pdf(data))
    elif suffix == ".docx":
        raw = RawText(read_docx(data, max_bytes))
    else:
        raise DocumentSkipped(f"unsupported file type '{suffix}'; convert it to one of {', '.join(SUPPORTED)}.")
    if not raw.text.strip():
        raise DocumentSkipped("has no text (only whitespace); add text to it or remove it from the corpus folder.")
    return raw


# Plain text -------------------------------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Decode text whatever its encoding: a byte-order mark, then UTF-8, then the likeliest legacy encoding.

    Raises DocumentSkipped for binary data; undecodable bytes never raise, they become U+FFFD at worst.
    """
    return decode_text_noted(data)[0]


def decode_text_noted(data: bytes) -> tuple[str, str | None]:
    """`decode_text`, plus a note for the user when lines of the file needed another encoding than the rest."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _check_text(data[len(bom) :].decode(encoding, errors="replace")), None
    sniff = data[:_SNIFF]
    if b"\x00" in sniff:
        utf16 = _bomless_utf16(data)
        if utf16 is None:
            raise DocumentSkipped(_BINARY)
        return _check_text(utf16), None
    try:
        return _check_text(data.decode("utf-8")), None
    except UnicodeDecodeError:
        pass
    mixed = _decode_mixed(data)
    if mixed is not None:
        return _check_text(mixed[0]), mixed[1]
    return _check_text(_decode_legacy(data)[0]), None


def _decode_mixed(data: bytes) -> tuple[str, str] | None:
    """Text pasted together from files in different encodings: UTF-8 lines stay UTF-8, the others are read in
    the legacy encoding detected over them alone. None when no line with non-ASCII bytes is valid UTF-8 (a
    file wholly in one legacy encoding). Legacy Cyrillic or Latin text practically never forms valid UTF-8
    multi-byte sequences, so a line that decodes as UTF-8 is UTF-8."""
    lines = data.splitlines(keepends=True)
    foreign: list[int] = []
    utf8_non_ascii = 0
    for number, line in enumerate(lines):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8_non_ascii += 1
        except UnicodeDecodeError:
            foreign.append(number)
    if not utf8_non_ascii or not foreign:
        return None
    _, encoding = _decode_legacy(b"".join(lines[n] for n in foreign))
    is_foreign = set(foreign)
    decoded = [
        line.decode(encoding or "utf-8", errors="replace") if n in is_foreign else line.decode("utf-8")
        for n, line in enumerate(lines)
    ]
    shown = ", ".join(str(n + 1) for n in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    which = f"line {shown} is" if len(foreign) == 1 else f"lines {shown} are"
    how = f"read as {encoding}" if encoding else "undecodable bytes became U+FFFD"
    note = (
        f"mixed encodings: {which} not UTF-8 ({len(foreign)} of {len(lines)} lines; {how}). "
        "Save the file as UTF-8 to be sure it reads as intended."
    )
    return "".join(decoded), note


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a byte-order mark: ASCII-range text puts its zero bytes all on one side."""
    sample = data[: _SNIFF - _SNIFF % 2]
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.3 * half and even == 0:
        encoding = "utf-16-le"
    elif even > 0.3 * half and odd == 0:
        encoding = "utf-16-be"
    else:
        return None
    try:
        return data[: len(data) - len(data) % 2].decode(encoding)
    except UnicodeDecodeError:
        return None


def _decode_legacy(data: bytes) -> tuple[str, str | None]:
    """The text in the likeliest legacy encoding, and that encoding (None: lossy UTF-8 was the last resort)."""
    from charset_normalizer import from_bytes

    try:
        best = from_bytes(data, cp_isolation=_LEGACY).best()
    except Exception:  # a detector bug must not stop the build: fall back to lossy UTF-8 below
        best = None
    if best is not None:
        try:
            return data.decode(best.encoding), best.encoding
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("utf-8", errors="replace"), None


def _check_text(text: str) -> str:
    sample = text[:_SNIFF]
    if sample:
        controls = sum(1 for c in sample if (c < " " and c not in "\t\n\r\f\v") or c == "\x7f")
        if controls / len(sample) > _CONTROL_SHARE or sample.count("\ufffd") / len(sample) > 0.25:
            raise DocumentSkipped(_BINARY)
    return text


# HTML -------------------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def read_html(data: bytes) -> RawText:
    """The article of a web page (menus, scripts, footers and comments dropped), its title and date."""
    markup = _decode_html(data)
    text, title, date = _trafilatura(markup)
    if not text.strip():
        text = strip_tags(markup)
    if title and not text.lstrip().startswith(title):
        text = f"{title}\n\n{text}"
    return RawText(text, title or None, date)


def _decode_html(data: bytes) -> str:
    if not any(data.startswith(bom) for bom, _ in _BOMS):
        declared = _META_CHARSET.search(data[:4096])
        if declared:
            # A page may declare one encoding and be saved in another; then it is detected like plain text.
            try:
                return data.decode(codecs.lookup(declared.group(1).decode("ascii")).name)
            except (LookupError, UnicodeDecodeError):
                pass
    return decode_text(data)


def _trafilatura(markup: str) -> tuple[str, str | None, str | None]:
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            markup,
            include_comments=False,
            include_tables=True,
            with_metadata=True,
            # Only dates the page marks up or states; a wide search guesses from copyright lines and URLs.
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
    except Exception:  # malformed markup can break the extractor; the plain tag-stripper below still works
        return "", None, None
    if doc is None:
        return "", None, None
    lines = [line.strip() for line in (doc.text or "").splitlines()]
    # trafilatura puts one paragraph per line; a blank line between them marks paragraphs as in plain text.
    text = "\n\n".join(line for line in lines if line)
    title = (doc.title or "").strip() or None
    return text, title, doc.date or None


class _TagStripper(HTMLParser):
    _SKIP = word_set("script style noscript template nav header footer aside form svg iframe head")
    _BLOCK = word_set("p div br li ul ol tr table h1 h2 h3 h4 h5 h6 section article blockquote pre dd dt hr main")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def strip_tags(markup: str) -> str:
    """Visible text of HTML without scripts, styles and page furniture, one paragraph per block element."""
    parser = _TagStripper()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient, but a pathological page must not stop the build
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    text = "".join(parser.parts)
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


# PDF --------------------------------------------------------------------------------------------------------


def read_pdf(data: bytes) -> str:
    """The text layer of a PDF, pages as paragraphs, with lines that were only wrapped joined again."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypt(reader):
            raise DocumentSkipped("is password-protected; save a copy without a password and index that instead.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentSkipped:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files; all mean the same to the user
        raise DocumentSkipped(
            f"is not a readable PDF (damaged or truncated: {exc}); re-export or download it again."
        ) from exc
    text = "\n\n".join(unwrap_lines(page) for page in pages if page.strip())
    if not text.strip():
        raise DocumentSkipped(
            "has no text layer (scanned?); run OCR first (for example `ocrmypdf in.pdf out.pdf`) and index the result."
        )
    return text


def _decrypt(reader) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # pypdf needs an extra package for AES; either way the file cannot be read as is
        return False


_SENTENCE_END = tuple('.!?…:;»"”)')


def unwrap_lines(page: str) -> str:
    """Join the lines a PDF wrapped to the page width, keeping headings and paragraph ends on their own lines.

    A line counts as wrapped when it is nearly as long as the page's long lines and does not close a sentence.
    """
    lines = [line.strip() for line in page.splitlines()]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return ""
    wide = lengths[int((len(lengths) - 1) * 0.95)]
    out: list[str] = []
    joining = False
    for line in lines:
        if not line:
            out.append("")
            joining = False
            continue
        if joining and out:
            previous = out[-1]
            if previous.endswith("-") and len(previous) > 1 and previous[-2].isalpha() and line[0].islower():
                out[-1] = previous[:-1] + line
            else:
                out[-1] = f"{previous} {line}"
        else:
            out.append(line)
        joining = len(line) >= 0.8 * wide and not line.endswith(_SENTENCE_END)
    return "\n".join(out)


# DOCX -------------------------------------------------------------------------------------------------------


def read_docx(data: bytes, max_unzipped: int) -> str:
    """Paragraphs and table cells of a Word document, in document order; tables one row per line."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise DocumentSkipped(
            "is an old Word 97-2003 document named .docx; open it in Word or LibreOffice and save it as .docx."
        )
    _check_zip(data, max_unzipped)
    unpacked = _unpack_within_limit(data)
    import docx

    try:
        document = docx.Document(io.BytesIO(unpacked))
        blocks = list(_docx_blocks(document))
    except Exception as exc:  # python-docx and lxml raise assorted errors on damaged or mislabelled files
        raise DocumentSkipped(
            f"is not a valid .docx ({exc}); open it in Word or LibreOffice and save it as .docx again."
        ) from exc
    return "\n\n".join(block for block in blocks if block)


def _check_zip(data: bytes, max_unzipped: int) -> None:
    """Refuse a .docx whose members would unpack to more than the size limit, before anything is unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise DocumentSkipped(
            f"is not a valid .docx (not a readable zip archive: {exc}); open it in Word or LibreOffice and "
            "save it as .docx again."
        ) from exc
    unzipped = sum(member.file_size for member in members)
    if len(members) > _DOCX_MAX_MEMBERS or unzipped > max_unzipped:
        raise DocumentSkipped(
            f"unpacks to {unzipped / _MB:.1f} MB in {len(members)} parts, over the {max_unzipped / _MB:g} "
            "MB limit (a damaged or malicious file?); if it is genuine, raise [corpus] max_file_mb in "
            "config.toml."
        )


def _unpack_within_limit(data: bytes) -> bytes:
    """The archive re-packed uncompressed, each member read 1 MB at a time and never past its declared size.

    `_check_zip` bounds the sizes the archive's own headers declare. A member can declare 1 KB (and carry the
    checksum of that first KB) while its compressed data unpacks to gigabytes, and python-docx reads each
    member with one unbounded `read()`, which inflates all of it before cutting it to the declared size.
    Chunked reads stop at the declared size, so what is unpacked stays within the checked total."""
    out = io.BytesIO()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                if info.is_dir():
                    continue
                with source.open(info) as member, target.open(info.filename, "w") as copy:
                    while chunk := member.read(_MB):
                        copy.write(chunk)
    except Exception as exc:  # zipfile raises assorted errors (bad CRC, encrypted, unknown compression)
        raise DocumentSkipped(
            f"is not a valid .docx (damaged zip archive: {exc}); open it in Word or LibreOffice and save it as "
            ".docx again."
        ) from exc
    return out.getvalue()


def _docx_blocks(container) -> list[str]:
    from docx.table import Table

    blocks = []
    for item in container.iter_inner_content():
        if isinstance(item, Table):
            blocks.extend(_docx_rows(item))
        else:
            blocks.append(item.text.strip())
    return blocks


def _docx_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(" ".join(block.split()) for block in _docx_blocks(cell) if block)
            if text:
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return rows
