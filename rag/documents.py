"""Raw text to a `Document`: cleaning, headline, date and language, plus finding the files of a corpus.

Cleaning removes what a news site wraps around an article (subscription prompts, share buttons, "read also"
link lists, cookie notices, section labels above the headline) and never a sentence of the article itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .errors import DocumentSkipped
from .language import detect_language
from .readers import extract_raw, read_bytes
from .types import Document

# Lines of page furniture, matched against a whole stripped line that starts with a capital letter or a sign:
# a line starting in lower case continues a hard-wrapped sentence ("share.", "subscribe to the offer"). Each
# pattern is specific, since one that also matches a sentence of an article would delete content.
_SOCIAL = r"(Facebook|Twitter|X|Telegram|WhatsApp|VK|VKontakte|ВКонтакте|Одноклассники|OK|LinkedIn|E-?mail|Email|Print)"
_BOILERPLATE = [
    re.compile(p)
    for p in (
        # subscription prompts
        r"(Подписывайтесь|Подпишитесь|Подписаться) .{0,80}",
        r"(Subscribe|Follow us|Sign up|Join us)\b.{0,80}",
        r"(Bizi|Bizə)\b.{0,60}\b(izləyin|abunə olun)\W*",
        r".{0,60}\b([Aa]bunə olun|kanalımıza qoşulun)\W*",
        # share buttons and rows of social network names
        rf"(Share|SHARE|Поделиться|Paylaş|Paylaşın)(( this( article| story)?)|( on| в| via) {_SOCIAL})?\s*:?",
        rf"({_SOCIAL}[\s|,/·•]*){{2,}}",
        # "read also" links, as a single line
        r"(Читайте также|Смотрите также|См\. также|Read also|Read more|See also|Also read|Related)\s*:.{0,200}",
        r"(Oxşar xəbərlər|Həmçinin oxuyun|Həmçinin bax|Digər xəbərlər)\s*:.{0,200}",
        # cookie notices and site footers
        r"(?i)(?=.*\b(cookies?|kuki\w*|çərəz\w*)\b)(?=.*\b(accept\w*|consent|privacy|policy|website|this site|"
        r"browsing|сайт\w*|sayt\w*)\b).{0,300}",
        r"(?i)(©|(\(c\)|copyright)\s*©?\s*\d{4}).{0,150}",
        r"(?i).{0,100}(all rights reserved|все права защищены|bütün hüquqlar qorunur)\W*.{0,100}",
        r"(?i)(advertisement|реклама|reklam)\W*",
    )
]
# A heading that opens a list of links to other articles: when only short headline lines follow it to the end
# of the document, the whole tail goes.
_READ_ALSO = re.compile(
    r"(читайте также|смотрите также|см\. также|по теме|другие новости|read also|read more|see also|also read|"
    r"related( news| articles| stories)?|more on this story|oxşar xəbərlər|həmçinin oxuyun|digər xəbərlər|"
    r"bu mövzuda|ən çox oxunanlar|most read|популярное)\s*:?",
    re.IGNORECASE,
)
# Section labels and breadcrumbs a page shows above the headline.
_SECTION_LABEL = re.compile(
    r"(news|новости|xəbərlər|xeberler|politics|политика|siyasət|world|в мире|мир|dünya|economy|"
    r"экономика|iqtisadiyyat|society|общество|cəmiyyət|sport|спорт|idman|culture|культура|mədəniyyət|"
    r"home|главная|ana səhifə|region|регион|регионы|latest|последние новости|son xəbərlər|"
    r"breaking news|главное|аналитика|analytics|analitika|in the news|top stories)[\s:|]*",
    re.IGNORECASE,
)
_LINK_TITLE_MAX = 160
_READ_ALSO_MAX_LINKS = 15

_DATE_MARKER = re.compile(r"^\s*date\s*[:=]?\s*(\d{4}-\d{2}(?:-\d{2})?)\b[ \t]*", re.IGNORECASE)
_HIDDEN = ("~$",)  # Word's lock files next to an open document


def discover(
    root: Path,
    extensions: tuple[str, ...],
    problems: list[tuple[str, str]] | None = None,
    other_types: Counter | None = None,
) -> list[Path]:
    """Files under `root` with one of `extensions`, sorted by relative path; hidden files and folders skipped.
    Files of other types are counted by extension in `other_types`, so that the summary can say what was left.

    Symbolic links are followed, each real folder is visited once, so a link back up the tree cannot loop.
    Whatever is not a folder is listed (a link to a missing file, a link loop, a named pipe), so that reading
    it reports what is wrong. Folders that cannot be listed are added to `problems` as (folder/, reason).
    """
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def unlistable(exc: OSError) -> None:
        if problems is not None:
            folder = Path(exc.filename or root)
            rel = folder.relative_to(root).as_posix() if folder != root else "."
            problems.append((f"{rel}/", _unlistable_reason(exc)))

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unlistable):
        try:
            st = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or name.startswith(_HIDDEN):
                continue
            path = Path(folder) / name
            if path.suffix.lower() in wanted:
                found.append(path)
            elif other_types is not None:
                other_types[path.suffix.lower() or "(no extension)"] += 1
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _unlistable_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return (
            "folder cannot be read: permission denied, so its files were not read. Give your user access "
            "(chmod u+rx) or move it out of the corpus folder."
        )
    return f"folder cannot be read ({exc.strerror or exc}), so its files were not read; check the disk."


def display_name(source: str) -> str:
    """A relative path as it can be printed on one line: bytes that are not UTF-8 and control characters
    (a newline, a terminal escape) escaped, so a hostile file name cannot break or forge lines of output."""
    text = source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def load_document(path: Path, root: Path, max_bytes: int, warn: Callable[[str], None] | None = None) -> Document:
    """Read, clean and describe one file; raises DocumentSkipped when it cannot be indexed.

    `warn` receives what the user should know about a file that was indexed anyway (mixed encodings)."""
    source = path.relative_to(root).as_posix()
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        # The index stores paths as UTF-8 text; a name in another encoding could not be written or found again.
        raise DocumentSkipped(
            "its name is not valid UTF-8 (written in another encoding); rename the file (e.g. with convmv)."
        ) from None
    data = read_bytes(path, max_bytes)
    content_hash = hashlib.sha256(data).hexdigest()
    raw = extract_raw(data, path.suffix, max_bytes)
    del data  # not kept while a large file is cleaned: bytes, decoded text and cleaned text would all be alive
    text = clean_text(raw.text)
    if not text.strip():
        raise DocumentSkipped("has no article text left after removing page furniture; check the file's content.")
    document = Document(
        doc_id=doc_id_for(source),
        source=source,
        title=find_title(text, fallback=raw.title or path.stem),
        date=(_iso(raw.date) if raw.date else None) or find_date(text),
        lang=detect_language(text),
        text=text,
        content_hash=content_hash,
    )
    if raw.note and warn is not None:
        warn(raw.note)
    return document


def doc_id_for(source: str) -> str:
    """A stable id from the path relative to the corpus root, so it survives edits to the file."""
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:16]


# Cleaning ---------------------------------------------------------------------------------------------------

# Terminal escape sequences (colour, cursor moves, window title, OSC links) are removed whole: dropping only
# their ESC byte would leave "[31m" in the text. A document is shown in terminals and pages, and a question
# is cleaned the same way (retrieval.visible_text).
ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase line
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # CSI as one C1 character
)
# Removed without a trace, since they sit inside words ("terri\u200btorial" is still the word): soft hyphens,
# zero-width characters and joiners, direction marks, bidi embeddings, overrides and isolates (which reverse
# whatever a page or terminal shows after them), invisible operators, byte order marks; and the remaining
# C0 / C1 control characters and lone surrogates, which mean nothing in text. One regex, not a loop over
# characters: a document may hold 100 MB.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]"
)
_SPACES = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85\v\f]")


def clean_text(text: str) -> str:
    """NFC text, \\n line ends, trimmed lines, at most one blank line in a row, nothing invisible or
    unprintable, and no site boilerplate."""
    text = ESCAPE_SEQUENCE.sub(" ", unicodedata.normalize("NFC", text))
    text = _INVISIBLE.sub("", _LINE_BREAKS.sub("\n", text))
    lines = text.split("\n")
    del text  # a large document is held at most twice below (in lines, then joined), not four times
    for k, line in enumerate(lines):  # in place, for the same reason
        lines[k] = _SPACES.sub(" ", line).strip()
    lines = _drop_leading_labels(lines)
    lines = _drop_read_also_tail(lines)
    lines = [line for line in lines if not _is_boilerplate(line)]
    lines = _drop_repeated_lines(lines)
    text = "\n".join(lines)
    del lines
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def _is_boilerplate(line: str) -> bool:
    return bool(line) and not line[0].islower() and any(p.fullmatch(line) for p in _BOILERPLATE)


def _drop_leading_labels(lines: list[str]) -> list[str]:
    """Drop section labels and breadcrumbs above the headline; stop at the first line that is neither."""
    for k, line in enumerate(lines):
        if line and not _is_label(line):
            return lines[k:]
    return []


def _is_label(line: str) -> bool:
    if _SECTION_LABEL.fullmatch(line):
        return True
    parts = [part.strip() for part in re.split(r"[/>»›|]", line)]
    return len(parts) > 1 and all(_SECTION_LABEL.fullmatch(part) for part in parts if part)


def _drop_read_also_tail(lines: list[str]) -> list[str]:
    """Cut closing "read also" blocks: a heading followed only by a few short headline-like lines."""
    while True:
        end = len(lines)
        while end and not lines[end - 1]:
            end -= 1
        cut = _read_also_start(lines[:end])
        if cut is None:
            return lines[:end]
        lines = lines[:cut]


def _read_also_start(lines: list[str]) -> int | None:
    for k in range(len(lines) - 1, -1, -1):
        if lines[k] and not lines[k][0].islower() and _READ_ALSO.fullmatch(lines[k]):
            tail = [line for line in lines[k + 1 :] if line]
            if len(tail) <= _READ_ALSO_MAX_LINKS and all(_is_link_title(line) for line in tail):
                return k
            return None
    return None


def _is_link_title(line: str) -> bool:
    return len(line) <= _LINK_TITLE_MAX and not re.search(r"[.!?…]\s+\S", line)


def _drop_repeated_lines(lines: list[str]) -> list[str]:
    """Drop a line that repeats the previous non-blank line (a headline printed twice by the page)."""
    out: list[str] = []
    previous = None
    for line in lines:
        if line and line == previous:
            while out and not out[-1]:
                out.pop()
            continue
        out.append(line)
        if line:
            previous = line
    return out


# Title ------------------------------------------------------------------------------------------------------


def find_title(text: str, fallback: str) -> str:
    """The headline: the first line with words, without a leading date marker or a closing full stop."""
    for line in text.split("\n"):
        line = _DATE_MARKER.sub("", line).strip().lstrip("#").strip()
        if not any(c.isalpha() for c in line) or _is_date_line(line):
            continue
        if line.endswith(".") and not line.endswith(".."):
            line = line[:-1].rstrip()
        return line
    return fallback


def _is_date_line(line: str) -> bool:
    """A dateline such as "26 September 2023, 14:05" is not a headline."""
    return _words_without_dates(line) == 0


def _words_without_dates(line: str) -> int:
    for pattern, _ in _DATE_PATTERNS:
        line = pattern.sub(" ", line)
    return len(re.findall(r"[^\W\d_]{2,}", line))


# Dates ------------------------------------------------------------------------------------------------------

_MONTHS = {
    # English (spelled out here: the calendar module follows the process locale)
    **dict.fromkeys(("january", "jan"), 1),
    **dict.fromkeys(("february", "feb"), 2),
    **dict.fromkeys(("march", "mar"), 3),
    **dict.fromkeys(("april", "apr"), 4),
    "may": 5,
    **dict.fromkeys(("june", "jun"), 6),
    **dict.fromkeys(("july", "jul"), 7),
    **dict.fromkeys(("august", "aug"), 8),
    **dict.fromkeys(("september", "sep", "sept"), 9),
    **dict.fromkeys(("october", "oct"), 10),
    **dict.fromkeys(("november", "nov"), 11),
    **dict.fromkeys(("december", "dec"), 12),
    # Russian, nominative, genitive and short forms
    **dict.fromkeys(("январь", "января", "янв"), 1),
    **dict.fromkeys(("февраль", "февраля", "фев", "февр"), 2),
    **dict.fromkeys(("март", "марта", "мар"), 3),
    **dict.fromkeys(("апрель", "апреля", "апр"), 4),
    **dict.fromkeys(("май", "мая"), 5),
    **dict.fromkeys(("июнь", "июня", "июн"), 6),
    **dict.fromkeys(("июль", "июля", "июл"), 7),
    **dict.fromkeys(("август", "августа", "авг"), 8),
    **dict.fromkeys(("сентябрь", "сентября", "сен", "сент"), 9),
    **dict.fromkeys(("октябрь", "октября", "окт"), 10),
    **dict.fromkeys(("ноябрь", "ноября", "нояб", "ноя"), 11),
    **dict.fromkeys(("декабрь", "декабря", "дек"), 12),
    # Azerbaijani
    "yanvar": 1,
    "fevral": 2,
    "mart": 3,
    "aprel": 4,
    "iyun": 6,
    "iyul": 7,
    "avqust": 8,
    "sentyabr": 9,
    "oktyabr": 10,
    "noyabr": 11,
    "dekabr": 12,
}
_MONTH = "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True))
# Azerbaijani case endings on a month name ("sentyabrın", "iyunun") and on a day ("14-də", "26-sı").
_AZ_CASE = r"(?:-?[ıiuü]n|-?n[ıiuü]n)?"
_AZ_DAY_END = r"(?:-?(?:[dt][aə]|[ıiuü]|s[ıiuü]|c[ıiuü]|[ıiuü]nc[ıiuü]))?"
_DATE_PATTERNS = [
    (re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"), "ymd"),
    (re.compile(r"\b(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4})\b"), "ymd"),
    # 26 September 2023, 24 сентября 2021 г., 26 sentyabr 2023-cü il
    (re.compile(rf"\b(?P<d>\d{{1,2}})\s+(?P<mon>{_MONTH})\.?,?\s+(?P<y>\d{{4}})\b", re.IGNORECASE), "ymd"),
    # September 26, 2023
    (re.compile(rf"\b(?P<mon>{_MONTH})\.?\s+(?P<d>\d{{1,2}}),?\s+(?P<y>\d{{4}})\b", re.IGNORECASE), "ymd"),
    # 2023-cü il 26 sentyabr, 2023-cü ilin sentyabrın 26-da
    (
        re.compile(
            rf"\b(?P<y>\d{{4}})(?:-?c[iıuü])?\s+il(?:in|də)?\s+(?:(?P<d1>\d{{1,2}})\s+(?P<mon1>{_MONTH})"
            rf"|(?P<mon2>{_MONTH}){_AZ_CASE}\s+(?P<d2>\d{{1,2}}){_AZ_DAY_END})\b",
            re.IGNORECASE,
        ),
        "az",
    ),
    # June 2023, июнь 2023, iyun 2023
    (re.compile(rf"\b(?P<mon>{_MONTH})\.?,?\s+(?P<y>\d{{4}})\b", re.IGNORECASE), "ym"),
]
# A date inside the body usually names an event the article refers to, not when it was written, so only the
# places where news carries its own date are read: a dateline at the start of one of the first lines ("BAKU,
# 25 September 2021 -", "Published 14 June 2023") and a short byline among the last lines.
_LEAD_LINES = 5
_TAIL_LINES = 3
_DATELINE_START = 40  # characters before the date, at most
_DATELINE_WORDS = 3  # words before the date, at most ("BAKU,", "Published on")
_BYLINE_CHARS = 80
_BYLINE_WORDS = 4  # words other than the date in a closing byline
# What may follow the year of a date in the same sentence: "2021 г.", "2021 года", "2023-cü il".
_YEAR_WORD = re.compile(r"^\s*(гг?\.|года?\b\.?|-?c[iıuü] il\w*\.?)")


def find_date(text: str) -> str | None:
    """The document's own date as ISO text, as precise as stated ("2023-06", "2021-09-24"), or None.

    A `date YYYY-MM(-DD)` marker wins; otherwise a full date (with a year: none is ever guessed) in a dateline.
    """
    for line in text.split("\n")[:_LEAD_LINES]:
        marker = _DATE_MARKER.match(line)
        if marker:
            return _iso(marker.group(1))
    lines = [line for line in text.split("\n") if line.strip()]
    for line in lines[:_LEAD_LINES]:
        found = _dateline_date(line)
        if found:
            return found
    for line in lines[_LEAD_LINES:][-_TAIL_LINES:]:
        found = _dateline_date(line)
        short = len(line) <= _BYLINE_CHARS and not line.endswith(".")
        if found and short and _words_without_dates(line) <= _BYLINE_WORDS:
            return found
    return None


def _dateline_date(line: str) -> str | None:
    """The first date of a line when the line opens with it, as a dateline does.

    A line starting in lower case continues a wrapped sentence, and a date followed by a lower-case word
    ("March 31 1988 when...") is part of one.
    """
    if line[0].islower():
        return None
    first = _first_date(line)
    if first is None:
        return None
    start, end, iso = first
    if start > _DATELINE_START or len(re.findall(r"\w+", line[:start])) > _DATELINE_WORDS:
        return None
    after = _YEAR_WORD.sub("", line[end:], count=1).lstrip()
    # A dateline goes on with a dash, a comma or the text; a full stop right after the date ends a sentence.
    return None if after and (after[0].islower() or after[0] == ".") else iso


def _first_date(text: str) -> tuple[int, int, str] | None:
    """Span and ISO form of the earliest date in `text`, the more precise one when two start together."""
    candidates = []
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            iso = _from_match(m, kind)
            if iso:
                candidates.append((m.start(), -len(iso), m.end(), iso))
    if not candidates:
        return None
    start, _, end, iso = min(candidates)
    return start, end, iso


def _from_match(m: re.Match, kind: str) -> str | None:
    groups = m.groupdict()
    year = int(groups["y"])
    if kind == "az":
        month = _MONTHS[(groups["mon1"] or groups["mon2"]).lower()]
        day = int(groups["d1"] or groups["d2"])
    else:
        month = int(groups["m"]) if groups.get("m") else _MONTHS[groups["mon"].lower()]
        day = int(groups["d"]) if groups.get("d") else None
    if not 1900 <= year <= 2100:
        return None
    try:
        dt.date(year, month, day or 1)
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}" + (f"-{day:02d}" if day else "")


def _iso(value: str) -> str | None:
    """A date string cut to ISO form at its own precision, or None when it is not one."""
    m = re.match(r"(\d{4})-(\d{2})(?:-(\d{2}))?", value.strip())
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        dt.date(year, month, int(day) if day else 1)
    except ValueError:
        return None
    return m.group(0)
