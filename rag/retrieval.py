"""Hybrid retrieval: dense (meaning, across languages) + BM25 (names and numbers), fused by reciprocal rank.

Reciprocal rank fusion needs no score calibration between the two channels, whose scales have nothing in
common (cosines packed near 0.8 vs unbounded BM25 sums). The fused list is then diversified so that one long
article cannot fill the whole top k.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .config import RetrievalConfig
from .errors import RagError
from .store import IndexData
from .types import Hit


@dataclass(frozen=True)
class Filters:
    """Restrict search to some documents. Dates compare as ISO strings, at the precision the document states."""

    lang: str | None = None  # "az", "ru", "en", or several separated by commas
    source: str | None = None  # a path relative to the corpus, or a glob such as "2023/*.txt"
    date_from: str | None = None  # "2023", "2023-06" or "2023-06-14"; inclusive
    date_to: str | None = None

    def is_empty(self) -> bool:
        return not (self.lang or self.source or self.date_from or self.date_to)


def document_mask(data: IndexData, filters: Filters) -> np.ndarray:
    """Which documents pass the filters (boolean array over data.documents)."""
    langs = {x.strip().lower() for x in filters.lang.split(",") if x.strip()} if filters.lang else None
    return np.array([_passes(doc, langs, filters) for doc in data.documents], dtype=bool)


def _passes(doc, langs: set[str] | None, filters: Filters) -> bool:
    if langs is not None and doc.lang not in langs:
        return False
    if filters.source and not _source_matches(doc.source, filters.source):
        return False
    return not (filters.date_from or filters.date_to) or _date_in_range(doc.date, filters)


def _source_matches(source: str, pattern: str) -> bool:
    pattern = pattern.strip().lstrip("./")
    return source == pattern or fnmatch.fnmatchcase(source, pattern) or source.endswith("/" + pattern)


def _date_bounds(date: str) -> tuple[str, str]:
    """Earliest and latest day a date of any precision may mean, as comparable strings ("2023-06" -> 06-00..06-99)."""
    date = date.strip()
    return date + "-00-00"[len(date) - 4 :], date + "-99-99"[len(date) - 4 :]


def _date_in_range(date: str | None, filters: Filters) -> bool:
    if not date:
        return False  # a document without a date cannot be placed in a date range
    earliest, latest = _date_bounds(date)
    if filters.date_from and latest < _date_bounds(filters.date_from)[0]:
        return False
    return not (filters.date_to and earliest > _date_bounds(filters.date_to)[1])


def search(
    data: IndexData,
    query_vector: np.ndarray,
    query: str,
    k: int,
    settings: RetrievalConfig,
    filters: Filters | None = None,
) -> list[Hit]:
    if data.size == 0:
        return []
    filters = filters or Filters()
    allowed_rows = None
    if not filters.is_empty():
        doc_ok = document_mask(data, filters)
        allowed_rows = np.flatnonzero(doc_ok[data.passage_doc])
        if len(allowed_rows) == 0:
            return []
    candidates = max(settings.candidates, k)

    dense_scores, dense_rows = data.vectors.search(query_vector, candidates, allowed=allowed_rows)
    lexical_all = data.lexical.scores(query)
    if allowed_rows is not None:
        masked = np.full_like(lexical_all, -1.0)
        masked[allowed_rows] = lexical_all[allowed_rows]
        lexical_all = masked
    lexical_rows = _top_positive(lexical_all, candidates)

    fused: dict[int, float] = defaultdict(float)
    for rank, row in enumerate(dense_rows.tolist()):
        fused[row] += settings.dense_weight / (settings.rrf_k + rank + 1)
    for rank, row in enumerate(lexical_rows.tolist()):
        fused[row] += settings.lexical_weight / (settings.rrf_k + rank + 1)
    dense_by_row = dict(zip(dense_rows.tolist(), dense_scores.tolist(), strict=True))

    ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    chosen = _diversify([row for row, _ in ranked], data, k, settings.max_per_document)
    return [
        _hit(
            data,
            row,
            fused[row],
            dense_by_row.get(row),
            float(lexical_all[row]) if lexical_all[row] > 0 else None,
        )
        for row in chosen
    ]


def _top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    positive = np.flatnonzero(scores > 0)
    if len(positive) > n:
        positive = positive[np.argpartition(-scores[positive], n - 1)[:n]]
    return positive[np.lexsort((positive, -scores[positive]))]


def _diversify(rows: list[int], data: IndexData, k: int, per_document: int) -> list[int]:
    """Best first, at most `per_document` passages of one document, unless too few documents matched at all."""
    if per_document <= 0:
        return rows[:k]
    chosen, overflow = [], []
    taken: dict[int, int] = defaultdict(int)
    for row in rows:
        doc = int(data.passage_doc[row])
        if taken[doc] < per_document:
            taken[doc] += 1
            chosen.append(row)
            if len(chosen) == k:
                return chosen
        else:
            overflow.append(row)
    return chosen + overflow[: k - len(chosen)]


def _hit(data: IndexData, row: int, score: float, dense: float | None, lexical: float | None) -> Hit:
    doc = data.documents[int(data.passage_doc[row])]
    start, end = int(data.passage_start[row]), int(data.passage_end[row])
    return Hit(
        source=doc.source,
        title=doc.title,
        date=doc.date,
        lang=doc.lang,
        text=doc.text[start:end],
        start=start,
        end=end,
        score=round(float(score), 6),
        doc_id=doc.doc_id,
        dense_score=None if dense is None else round(float(dense), 6),
        lexical_score=None if lexical is None else round(float(lexical), 6),
    )


def validate_query(query: object) -> str:
    if not isinstance(query, str):
        raise RagError(f"The question must be text, got {type(query).__name__}.")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in query).strip()
    if not cleaned:
        raise RagError("The question is empty. Type a question, for example: What did Uzbekistan say?")
    if not any(ch.isalnum() for ch in cleaned):
        raise RagError("The question has no letters or digits. Type a question in words.")
    return cleaned
