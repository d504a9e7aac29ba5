"""The small records that cross module boundaries, in the order data flows.

Document -> Passage (a span of the document's cleaned text) -> Hit (a scored passage returned by search).
Offsets are always character offsets into `Document.text`, so `document.text[p.start:p.end] == p.text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One source file after reading and cleaning."""

    doc_id: str  # stable: derived from the source path, so it survives edits to the file
    source: str  # path relative to the corpus root, with forward slashes
    title: str  # the headline (first meaningful line), or the file name when there is none
    date: str | None  # ISO date as precise as the document states it ("2023-06", "2021-09-24"), else None
    lang: str  # ISO 639-1 code: "az", "ru", "en", ...
    text: str  # cleaned, NFC-normalised text; all passage offsets point into it
    content_hash: str  # sha256 of the file's bytes


@dataclass(frozen=True)
class Passage:
    """A sentence-aligned span of one document."""

    doc_id: str
    source: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A passage returned by search, best first; `score` is the fused relevance (higher is better)."""

    source: str
    title: str
    date: str | None
    lang: str
    text: str
    start: int
    end: int
    score: float
    doc_id: str = ""
    dense_score: float | None = None  # cosine similarity of the dense channel, when it saw this passage
    lexical_score: float | None = None  # BM25 score of the lexical channel, when it saw this passage

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "title": self.title,
            "date": self.date,
            "lang": self.lang,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "doc_id": self.doc_id,
            "dense_score": self.dense_score,
            "lexical_score": self.lexical_score,
        }


@dataclass(frozen=True)
class SkippedFile:
    """A file the build could not index, and why (said so the user can fix it)."""

    source: str
    reason: str


@dataclass
class BuildSummary:
    """What an index build did."""

    documents: int = 0
    passages: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded_passages: int = 0
    rebuilt: bool = False  # True when the whole index was rebuilt (model or chunking changed, or --rebuild)
    seconds: float = 0.0

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)

    def to_dict(self) -> dict:
        return {
            "documents": self.documents,
            "passages": self.passages,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "embedded_passages": self.embedded_passages,
            "rebuilt": self.rebuilt,
            "seconds": round(self.seconds, 3),
        }
