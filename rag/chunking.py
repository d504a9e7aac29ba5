"""Sentence splitting and passage packing, as pure functions over character offsets.

Every span indexes the string it was computed on, so `text[start:end]` is the sentence or passage itself.
Languages handled: Azerbaijani (Latin), Russian and English news prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .text import word_set
from .types import Document, Passage

_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_LINE = re.compile(f"[^{_BREAKS}]+")
# A candidate sentence end: terminal punctuation, any closing quotes or brackets, then whitespace.
_END = re.compile(r"[.!?…]+[»”\"'’)\]]*(?=\s)")
_OPENERS = "«“„\"'‘([—–-"
# What follows a candidate end: spaces, opening quotes or dashes, then the next sentence's first character.
_FOLLOWING = re.compile(r"\s*[«“„\"'‘(\[—–\-]*\s*(\S?)")
_HEADING_MAX = 150


# Words that a full stop follows without ending the sentence: titles before a name, and short forms that are
# followed by more of the same sentence even when the next word is capitalised ("г. Баку", "Prof. Smith").
_TITLES = word_set(
    "mr mrs ms dr prof st gen sen rep gov lt col capt sgt maj rev hon pres messrs mt ft jan feb mar apr "
    "jun jul aug sep sept oct nov dec vs cf al approx ca дж тов гр ул пр просп пер пл им св проф акад ген "
    "доц канд напр ср янв фев февр мар апр авг сен сент окт нояб дек dos akad müəl"
)
# Short forms that stand before a number: "No. 5", "ст. 12", "səh. 4".
_BEFORE_NUMBER = word_set("no nos nr vol p pp art fig ch sec ст п ч гл стр рис табл т səh b bənd")
# Dotted lower-case short forms that never end a sentence ("т.д.", "т.п." often do, so they are not here).
_DOTTED = word_set("т.е т.к т.н т.ч т.о e.g i.e a.k.a")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    whole: bool  # False for a piece of a sentence that alone is longer than a passage
    heading: bool


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans over `text`, covering all of its non-space characters, each without surrounding spaces.

    A line break always ends a sentence, since headlines and list items carry no full stop.
    """
    return [(start, end) for start, end, _ in _sentences(text)]


def _sentences(text: str) -> Iterator[tuple[int, int, bool]]:
    """Sentence spans, each flagged when it is a whole line that opens a paragraph (a heading candidate)."""
    previous_end = None
    for line in _LINE.finditer(text):
        spans = _split_line(line.group())
        if not spans:
            continue
        gap = text[previous_end : line.start()] if previous_end is not None else ""
        opens_paragraph = previous_end is None or sum(c in _BREAKS for c in gap) >= 2
        previous_end = line.end()
        base = line.start()
        for start, end in spans:
            yield base + start, base + end, opens_paragraph and len(spans) == 1


def _split_line(line: str) -> list[tuple[int, int]]:
    spans = []
    pos = 0
    for match in _END.finditer(line):
        if _ends_sentence(line, pos, match):
            spans.extend(_stripped(line, pos, match.end()))
            pos = match.end()
    spans.extend(_stripped(line, pos, len(line)))
    return spans


def _stripped(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if start < end else []


def _ends_sentence(line: str, sentence_start: int, match: re.Match) -> bool:
    following = _FOLLOWING.match(line, match.end()).group(1)
    if not following or following.islower():
        return False
    if match.group().rstrip("»”\"'’)]") != ".":
        return True
    token_start = _word_start(line, sentence_start, match.start())
    if token_start == match.start():
        return False
    token = line[token_start : match.start()].lstrip(_OPENERS)
    previous_end = token_start
    while previous_end > sentence_start and line[previous_end - 1].isspace():
        previous_end -= 1
    previous = line[_word_start(line, sentence_start, previous_end) : previous_end]
    return not _is_short_form(token, previous, following, first_in_sentence=not previous)


def _word_start(line: str, lower: int, end: int) -> int:
    """Start of the run of non-space characters that ends at `end` (scanning back no further than `lower`)."""
    start = end
    while start > lower and not line[start - 1].isspace():
        start -= 1
    return start


def _is_short_form(token: str, previous: str, next_char: str, first_in_sentence: bool) -> bool:
    """Whether the full stop after `token` belongs to a short form (initial, abbreviation, list number)."""
    if not token:
        return False
    lowered = token.lower()
    if re.fullmatch(r"(?:\w\.)+\w", token):
        # "U.S.", "В.В." (initials, acronyms) never end a sentence here; "т.д." may.
        return token.upper() == token or lowered in _DOTTED
    if lowered in ("г", "гг"):
        # "в 2020 г. Затем" ends a sentence; "г. Баку" does not.
        return not previous.rstrip("–-").isdigit()
    if lowered in _TITLES:
        return True
    if lowered in _BEFORE_NUMBER and next_char.isdigit():
        return True
    if len(token) == 1 and token.isalpha():
        return token.isupper()
    # A numbered list item: "1. Title".
    return first_in_sentence and token.isdigit()


def chunk_spans(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Pack consecutive sentences of `text` into passages of at most `size` characters.

    A sentence is split (at whitespace) only when it alone exceeds `size`. Each passage after the first starts
    with the trailing sentences of the previous one that together span at most `overlap` characters. A new
    section (a heading followed by text) starts a new passage, and no overlap is carried into it.
    """
    if size < 1:
        raise ValueError(f"passage size must be at least 1 character, got {size}")
    units = _units(text, size)
    section_starts = _section_starts(units)
    spans: list[tuple[int, int]] = []
    current: list[_Unit] = []
    for k, unit in enumerate(units):
        if current:
            new_section = section_starts[k] and not all(u.heading for u in current)
            piecewise = not unit.whole or not current[-1].whole
            if new_section or piecewise or unit.end - current[0].start > size:
                spans.append((current[0].start, current[-1].end))
                current = [] if new_section or piecewise else _carry(current, unit, size, overlap)
        current.append(unit)
    if current:
        spans.append((current[0].start, current[-1].end))
    return spans


def _carry(previous: list[_Unit], unit: _Unit, size: int, overlap: int) -> list[_Unit]:
    """The longest tail of `previous` (never all of it) within `overlap` that still fits with `unit`."""
    end = previous[-1].end
    for j in range(1, len(previous)):
        start = previous[j].start
        if end - start <= overlap and unit.end - start <= size:
            return previous[j:]
    return []


def _units(text: str, size: int) -> list[_Unit]:
    units = []
    for start, end, own_paragraph in _sentences(text):
        if end - start <= size:
            units.append(_Unit(start, end, True, own_paragraph and _is_heading(text[start:end])))
        else:
            units.extend(_Unit(s, e, False, False) for s, e in _split_long(text, start, end, size))
    return units


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    pieces = []
    while end - start > size:
        window = text[start : start + size + 1]
        cut = max(window.rfind(" "), window.rfind("\t"), window.rfind("\xa0"))
        # A break far from the limit would leave a tiny piece; cut the word instead.
        if cut < size // 2:
            cut = size
        pieces.extend(_stripped(text, start, start + cut))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    pieces.extend(_stripped(text, start, end))
    return pieces


def _is_heading(line: str) -> bool:
    """A paragraph of one line that reads like a title: short, with no closing punctuation, or a # heading."""
    if line.startswith("#"):
        return True
    return len(line) <= _HEADING_MAX and line[-1] not in ".!?…:;," and any(c.isalpha() for c in line)


def _section_starts(units: list[_Unit]) -> list[bool]:
    """A heading starts a section when it is the first of its run and body text follows it."""
    starts = [False] * len(units)
    body_after = False
    for k in range(len(units) - 1, -1, -1):
        unit = units[k]
        if not unit.heading:
            body_after = True
            continue
        starts[k] = body_after and (k == 0 or not units[k - 1].heading)
    return starts


def make_passages(doc: Document, size: int, overlap: int) -> list[Passage]:
    """The passages of one document, with offsets into `doc.text`."""
    return [
        Passage(doc_id=doc.doc_id, source=doc.source, start=s, end=e, text=doc.text[s:e])
        for s, e in chunk_spans(doc.text, size, overlap)
    ]
