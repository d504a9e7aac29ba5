"""The small records that cross module boundaries, in the order data flows.

Document -> Passage (a span of the document's cleaned text) -> Hit (a scored passage returned by search).
Offsets are always character offsets into `Document.text`, so `document.text[p.start:p.end] == p.text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .prompts import MACHINE_TRANSLATION, NO_TRANSLATION, RELATED_LABEL


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
    other_file_types: dict[str, int] = field(default_factory=dict)  # files not read: extension -> count
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
            "other_file_types": self.other_file_types,
            "embedded_passages": self.embedded_passages,
            "rebuilt": self.rebuilt,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class AddedDocument:
    """A file put into the corpus folder and indexed (Assistant.add_document / add_documents)."""

    source: str  # its name in the corpus folder, as search results and citations show it
    original: str  # the name it was given as
    renamed: bool  # a document of its (sanitised) name existed already, so it got a "-2", "-3", ... suffix
    passages: int  # passages the index holds for it
    message: str  # one line for the person who added it: "Saved 'a b.txt' as 'a_b.txt'."

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "original": self.original,
            "renamed": self.renamed,
            "passages": self.passages,
            "message": self.message,
        }


@dataclass(frozen=True)
class RejectedFile:
    """A file that was not added or removed; `reason` is a whole sentence that names it and says why."""

    name: str  # as it was given
    reason: str


@dataclass(frozen=True)
class CorpusUpdate:
    """Files added to or removed from the corpus folder, those refused, and the one index update that followed
    (None when nothing was added or removed, so the index was left alone)."""

    added: tuple[AddedDocument, ...] = ()
    removed: tuple[str, ...] = ()
    rejected: tuple[RejectedFile, ...] = ()
    summary: BuildSummary | None = None

    def to_dict(self) -> dict:
        return {
            "added": [doc.to_dict() for doc in self.added],
            "removed": list(self.removed),
            "rejected": [{"name": r.name, "reason": r.reason} for r in self.rejected],
            "index": self.summary.to_dict() if self.summary is not None else None,
        }


@dataclass(frozen=True)
class Evidence:
    """One sentence offered to the model as support, numbered as the model sees it ([n])."""

    n: int
    hit: Hit  # the passage it comes from
    quote: str  # the sentence, verbatim
    quote_start: int  # offsets of the sentence in the document's cleaned text
    quote_end: int
    score: float  # how strongly it bears on the question (higher is better)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "quote": self.quote,
            "quote_start": self.quote_start,
            "quote_end": self.quote_end,
            "score": self.score,
            "passage": self.hit.to_dict(),
        }


@dataclass(frozen=True)
class Citation:
    """A cited passage, numbered as in the answer text, with the sentence(s) that support the claim."""

    n: int
    source: str
    title: str
    lang: str
    date: str | None
    text: str  # the cited passage
    start: int  # offsets of the passage in the document's cleaned text
    end: int
    quote: str  # the supporting sentence(s), verbatim: text[quote_start - start : quote_end - start]
    quote_start: int
    quote_end: int
    score: float  # how strongly the quote supports the claim (0..1)
    # The quote machine-translated into the answer's language, checked against the quote before it is shown;
    # None when the quote is already in that language, no translation passed the check, or the chat model is not
    # asked for this pair of languages (models.translates).
    translation: str | None = None

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass(frozen=True)
class Answer:
    """A grounded answer: every sentence of `text` carries [n] markers pointing into `citations`."""

    question: str  # as asked
    text: str
    lang: str  # the question's language, which is also the answer's
    refused: bool  # True when the documents do not hold the answer (then citations is empty)
    citations: list[Citation] = field(default_factory=list)
    related: list[Hit] = field(default_factory=list)  # when refused: the closest passages, offered only as such
    # The evidence sentences most likely to state the answer, best first (at most CLOSEST), whatever was decided.
    # After a refusal they are shown as the closest matches, each in its passage (one of `related`), never as
    # support: on the dev sets about two in three refused answerable questions have the asked fact among them.
    closest: list[Evidence] = field(default_factory=list)
    standalone_question: str = ""  # the question after rewriting a follow-up with the conversation history
    mode: str = "generated"  # "generated" (the model's verified words), "extractive" (quotes) or "refused"
    model: str = ""
    timings: dict = field(default_factory=dict)  # seconds: retrieval, first_token, total
    # Calibrated probability that the best answer the evidence allowed is correct, computed for refusals too
    # (the answer is given when it reaches [answer] min_confidence); None when no evidence was found at all.
    confidence: float | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "text": self.text,
            "lang": self.lang,
            "refused": self.refused,
            "mode": self.mode,
            "model": self.model,
            "citations": [c.to_dict() for c in self.citations],
            "related": [h.to_dict() for h in self.related],
            "closest": [e.to_dict() for e in self.closest],
            "timings": self.timings,
            "confidence": self.confidence,
        }

    def to_markdown(self) -> str:
        """The answer with its sources, for copying."""
        lines = [self.text, ""]
        for c in self.citations:
            date = f", {c.date}" if c.date else ""
            lines.append(f'[{c.n}] {c.title} ({c.source}{date}): "{c.quote}"')
            if c.translation:
                lines.append(f"    {MACHINE_TRANSLATION.get(self.lang, MACHINE_TRANSLATION['en'])}: {c.translation}")
            elif c.lang != self.lang:
                lines.append(f"    ({NO_TRANSLATION.get(self.lang, NO_TRANSLATION['en'])})")
        if self.refused and (self.closest or self.related):
            lines.append(RELATED_LABEL.get(self.lang, RELATED_LABEL["en"]))
            if self.closest:
                lines.extend(f'- {e.hit.title} ({e.hit.source}): "{e.quote}"' for e in self.closest)
            else:
                lines.extend(f"- {h.title} ({h.source})" for h in self.related)
        return "\n".join(lines).strip() + "\n"


@dataclass(frozen=True)
class StreamEvent:
    """What `Assistant.stream()` yields, in this order: "rewrite" (the standalone question, for a follow-up),
    "queued" (text: position in the model queue, while waiting), "token" (generated text as it comes),
    and last "answer" (the verified Answer, which may differ from the streamed tokens after verification)."""

    kind: str
    text: str = ""
    answer: Answer | None = None
