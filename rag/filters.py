"""Which documents a search may return: by language, source path and date.

The filters are evaluated per document, not per passage, and every index engine evaluates the same rules:
the FAISS engine through `document_mask`, the Milvus engine as an expression over the same fields
(`milvus_engine.filter_expression`), with dates stored as the earliest and latest day they may mean
(`date_bounds`) so that a range compares as plain strings in either.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import date as Date

import numpy as np

from .errors import RagError
from .types import Document

_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class Filters:
    """Restrict search to some documents. Dates compare as ISO strings, at the precision the document states."""

    lang: str | None = None  # "az", "ru", "en", or several separated by commas
    source: str | None = None  # a path relative to the corpus, or a glob such as "2023/*.txt"
    date_from: str | None = None  # "2023", "2023-06" or "2023-06-14"; inclusive
    date_to: str | None = None

    def __post_init__(self) -> None:
        # Callers of the API and of rag.search pass JSON values: a list of languages and a year as a number are
        # what they mean; anything else that is not text is named, not left to fail deep inside a search.
        if isinstance(self.lang, (list, tuple)) and all(isinstance(x, str) for x in self.lang):
            object.__setattr__(self, "lang", ",".join(self.lang))
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, str(value))
        for name, example in (("lang", '"az" or "az,ru"'), ("source", '"2023/*.txt"'), ("date_from", '"2023-06"'),
                              ("date_to", '"2023-06"')):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise RagError(f"The filter {name} must be text such as {example}, not {type(value).__name__}.")
        for label, value in (("start", self.date_from), ("end", self.date_to)):
            if value and not _is_date(value):
                raise RagError(
                    f"The {label} date {value.strip()!r} is not a date: write it as 2023, 2023-06 or 2023-06-14."
                )
        if self.date_from and self.date_to and date_bounds(self.date_from)[0] > date_bounds(self.date_to)[1]:
            raise RagError(
                f"The date range is empty: it starts ({self.date_from.strip()}) after it ends "
                f"({self.date_to.strip()}). Swap the two dates."
            )

    def languages(self) -> set[str] | None:
        """The languages asked for, or None for all."""
        return {x.strip().lower() for x in self.lang.split(",") if x.strip()} if self.lang else None

    def is_empty(self) -> bool:
        return not (self.lang or self.source or self.date_from or self.date_to)


def document_mask(documents: list[Document], filters: Filters) -> np.ndarray:
    """Which documents pass the filters (boolean array over `documents`)."""
    langs = filters.languages()
    return np.array([_passes(doc, langs, filters) for doc in documents], dtype=bool)


def _passes(doc, langs: set[str] | None, filters: Filters) -> bool:
    if langs is not None and doc.lang not in langs:
        return False
    if filters.source and not source_matches(doc.source, filters.source):
        return False
    return not (filters.date_from or filters.date_to) or _date_in_range(doc.date, filters)


def source_matches(source: str, pattern: str) -> bool:
    pattern = pattern.strip().lstrip("./")
    return source == pattern or fnmatch.fnmatchcase(source, pattern) or source.endswith("/" + pattern)


def _is_date(text: str) -> bool:
    """A year, a month or a day in ISO form that exists: "2023", "2023-06", "2023-06-14"; not "2023-13"."""
    match = _DATE.fullmatch(text.strip())
    if not match:
        return False
    year, month, day = match.groups()
    try:
        Date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return True


def date_bounds(date: str) -> tuple[str, str]:
    """Earliest and latest day a date of any precision may mean, as comparable strings ("2023-06" -> 06-00..06-99)."""
    date = date.strip()
    return date + "-00-00"[len(date) - 4 :], date + "-99-99"[len(date) - 4 :]


def _date_in_range(date: str | None, filters: Filters) -> bool:
    if not date:
        return False  # a document without a date cannot be placed in a date range
    earliest, latest = date_bounds(date)
    if filters.date_from and latest < date_bounds(filters.date_from)[0]:
        return False
    return not (filters.date_to and earliest > date_bounds(filters.date_to)[1])


class PassageRows:
    """Which passage rows a search may return, for a language and the filters: what both engines ask, once.

    Retrieval searches each language apart, so one question asks for the same filters once per language and
    channel; the rows the last filters allow are kept rather than matched against every document again."""

    def __init__(self, documents: list[Document], passage_doc: np.ndarray):
        self.documents = documents
        self.passage_doc = passage_doc
        doc_langs = np.array([doc.lang for doc in documents], dtype=object)
        row_langs = doc_langs[passage_doc] if len(passage_doc) else np.array([], dtype=object)
        self.by_lang = {lang: np.flatnonzero(row_langs == lang) for lang in sorted(set(row_langs))}
        self._last: tuple[Filters, np.ndarray] | None = None

    def passing(self, filters: Filters) -> np.ndarray:
        """Boolean mask over all rows: those whose document passes `filters`."""
        last = self._last
        if last is None or last[0] != filters:
            last = (filters, document_mask(self.documents, filters)[self.passage_doc])
            self._last = last  # one assignment: a concurrent search sees the old pair or the new one
        return last[1]

    def allowed(self, lang: str | None, filters: Filters) -> np.ndarray | None:
        """The rows in `lang` (all languages when None) that pass `filters`; None when that is every row."""
        rows = None if lang is None else self.by_lang.get(lang, np.zeros(0, dtype=np.int64))
        if not filters.is_empty():
            mask = self.passing(filters)
            rows = np.flatnonzero(mask) if rows is None else rows[mask[rows]]
        if rows is not None and len(rows) == len(self.passage_doc):
            return None
        return rows
