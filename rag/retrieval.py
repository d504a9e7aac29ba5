"""Hybrid retrieval: dense (meaning, across languages) + BM25 (names and numbers), fused by relative score.

Each channel proposes candidates; on their union the dense score is scaled to 0..1 (min to max) and the BM25
score is divided by the best BM25 score, then the two are mixed with the configured weights. Measured on the
seeds and NTREX (bench/RESULTS.md), this beats reciprocal rank fusion, which gives a passage matched by both
channels a decisive lead even when its lexical match is weak: in a cross-lingual corpus the lexical channel
matches mostly passages in the question's own language, and RRF then ranks language over meaning. The fused
list is diversified so that one long article cannot fill the whole top k.

Documents, not only passages: a question's facts are often split over an article (the name in the lead, the
number three paragraphs on), and when every article is about the same story no single passage stands out. So
each candidate passage's rank mixes its own fused score with its document's: the document's best dense score
(scaled over the candidate documents) fused with its best lexical score, whichever passages they come from
(`document_weight`). On the NTREX-QA dev questions this ranks the answering article first for 101 of 108
instead of 97 (bench/RESULTS.md, fitted on one half, reported on the other).

Language bias: a multilingual embedding scores a passage in the question's own language higher than an
equally relevant passage in another language, so an English question about an Azerbaijani article tends to
retrieve a merely related English one. With language centering on, the mean vector of each language
(computed over the corpus at build time) is subtracted from both sides, and the score becomes
(p - mean[lang(p)]) . (q - mean[lang(q)]): what is left is meaning, not language identity (Libovický et al.,
"On the language neutrality of pre-trained multilingual representations", 2020). Because the passage-side
mean differs per language, the dense channel searches each language separately and merges.

A language mean estimated from a handful of documents is mostly those documents' topic, not their language:
with one English article in the corpus, subtracting "the English mean" subtracts that article's subject, and
a question about it no longer finds it. So each language's mean is shrunk towards a prior, the corpus's
language-neutral mean plus the language's offset as measured once on parallel text (FLORES-200; shipped in
language_offsets.json for the catalogue's embedding model), with the weight n / (n + `language_prior_documents`)
on the corpus's own mean for a language with n documents (`language_means`). On five-article newsrooms of one
story each (the NTREX-QA questions, bench/RESULTS.md) this ranks the answering article first for 102 of 108
instead of 85; on the 107-article newsroom nothing changes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np

from .config import RetrievalConfig
from .documents import ESCAPE_SEQUENCE
from .errors import RagError
from .filters import Filters, document_mask  # noqa: F401  (part of this module's API)
from .instructions import CHAT_MARKUP
from .store import IndexData
from .types import Hit

# Per embedding model, the offset of each language's mean passage vector from the mean over the languages, on
# parallel text: written by bench/language_offsets.py.
LANGUAGE_OFFSETS_FILE = Path(__file__).with_name("language_offsets.json")


def search(
    data: IndexData,
    query_vector: np.ndarray,
    query: str,
    k: int,
    settings: RetrievalConfig,
    filters: Filters | None = None,
    query_lang: str | None = None,
    variant_vectors: dict[str, np.ndarray] | None = None,
    lexical_terms: list[str] | None = None,
) -> list[Hit]:
    """Fused dense + lexical search. `variant_vectors` holds, per passage language, the vector of the question
    written that language's way (its acronyms, see aliases.py): such passages score by the better of the two.
    `lexical_terms` are extra words for the lexical channel (the other languages' acronyms)."""
    if data.size == 0:
        return []
    filters = filters or Filters()
    engine = data.engine
    candidates = max(settings.candidates, k)
    query_vector = np.asarray(query_vector, dtype=np.float32)
    centering = settings.language_centering and bool(data.centroids)
    centered_query = _centered_query(data, query_vector, query_lang) if centering else query_vector
    centered_variants = {
        lang: _centered_query(data, np.asarray(vector, dtype=np.float32), query_lang) if centering else vector
        for lang, vector in (variant_vectors or {}).items()
    }

    if centering:
        _, dense_rows = _centered_dense(data, centered_query, candidates, filters, centered_variants)
    else:
        _, dense_rows = engine.dense_search(query_vector, candidates, lang=None, filters=filters)
        for lang, vector in centered_variants.items():
            if lang in data.rows_by_lang:
                found = engine.dense_search(vector, candidates, lang=lang, filters=filters)[1]
                dense_rows = np.union1d(dense_rows, found)
    lexical_query = " ".join([query, *(lexical_terms or [])])
    lexical_rows, best_lexical = _lexical_candidates(data, lexical_query, candidates, filters, per_language=centering)

    rows = np.union1d(dense_rows, lexical_rows).astype(np.int64)
    if len(rows) == 0:
        return []
    raw_lexical = engine.lexical_scores_at(lexical_query, rows).astype(np.float64)
    row_langs = [data.documents[int(data.passage_doc[r])].lang for r in rows]
    lexical = _scaled_lexical(raw_lexical, row_langs, best_lexical)
    vectors = engine.vectors_at(rows.tolist())
    dense = _dense_scores(data, vectors, row_langs, centered_query, centering)
    for lang, vector in centered_variants.items():
        in_lang = np.array([row_lang == lang for row_lang in row_langs], dtype=bool)
        if in_lang.any():
            variant = _dense_scores(data, vectors[in_lang], [lang] * int(in_lang.sum()), vector, centering)
            dense[in_lang] = np.maximum(dense[in_lang], variant)
    score = _fuse(dense, lexical, settings)
    if settings.document_weight > 0:
        document = _document_scores(data.passage_doc[rows], dense, lexical, settings)
        score = settings.document_weight * document + (1 - settings.document_weight) * score
    order = np.lexsort((rows, -score))
    chosen = _diversify([int(rows[i]) for i in order], data, k, settings.max_per_document)
    position = {int(r): i for i, r in enumerate(rows)}
    cosines = vectors @ query_vector  # the plain cosine: comparable across questions, unlike the fused score
    return [
        _hit(
            data,
            row,
            float(score[position[row]]),
            float(cosines[position[row]]),
            float(raw_lexical[position[row]]) if raw_lexical[position[row]] > 0 else None,
        )
        for row in chosen
    ]


def _fuse(dense: np.ndarray, lexical: np.ndarray, settings: RetrievalConfig) -> np.ndarray:
    """The weighted mix of dense scores (scaled 0..1, min to max) and lexical scores (already 0..1)."""
    total = settings.dense_weight + settings.lexical_weight
    return (settings.dense_weight * min_max(dense) + settings.lexical_weight * lexical) / (total or 1.0)


def min_max(values: np.ndarray) -> np.ndarray:
    """`values` scaled to 0..1, the lowest to 0 and the highest to 1; all ones when they are all equal."""
    spread = float(values.max() - values.min())
    return (values - values.min()) / spread if spread > 0 else np.ones_like(values)


def _document_scores(docs: np.ndarray, dense: np.ndarray, lexical: np.ndarray, settings: RetrievalConfig) -> np.ndarray:
    """Per candidate passage, the fused score of its document: the best dense score among the document's
    candidate passages (scaled over the candidate documents) mixed with its best lexical score."""
    unique, inverse = np.unique(docs, return_inverse=True)
    best_dense = np.full(len(unique), -np.inf)
    best_lexical = np.zeros(len(unique))
    np.maximum.at(best_dense, inverse, dense)
    np.maximum.at(best_lexical, inverse, lexical)
    return _fuse(best_dense, best_lexical, settings)[inverse]


def _dense_scores(
    data: IndexData, vectors: np.ndarray, row_langs: list[str], query: np.ndarray, centering: bool
) -> np.ndarray:
    scores = vectors @ query
    if centering:
        scores -= np.array([data.centroids[lang] for lang in row_langs]).reshape(len(row_langs), -1) @ query
    return scores


def language_means(
    corpus_means: Mapping[str, np.ndarray],
    passages: Mapping[str, int],
    documents: Mapping[str, int],
    offsets: Mapping[str, np.ndarray],
    prior_documents: float,
) -> dict[str, np.ndarray]:
    """The mean vector to subtract per language: the corpus's own mean of its passages in that language, shrunk
    towards the prior (the corpus's language-neutral mean plus the language's `offsets` entry) with the weight
    n / (n + prior_documents) on the corpus mean, n being the language's document count. The neutral mean is
    the mean of all passages with their language's offset taken away. A language without an offset keeps its
    corpus mean, and so does every language when `prior_documents` is 0. A corpus in one language is unchanged:
    its neutral mean plus its offset is its own mean."""
    known = [lang for lang in corpus_means if lang in offsets and passages.get(lang, 0) > 0]
    if prior_documents <= 0 or not known:
        return dict(corpus_means)
    total = sum(passages[lang] for lang in known)
    neutral = sum(passages[lang] * (corpus_means[lang] - offsets[lang]) for lang in known) / total
    means = dict(corpus_means)
    for lang in known:
        weight = documents.get(lang, 0) / (documents.get(lang, 0) + prior_documents)
        means[lang] = (weight * corpus_means[lang] + (1 - weight) * (neutral + offsets[lang])).astype(np.float32)
    return means


@cache
def language_offsets(model_fingerprint: str) -> dict[str, np.ndarray]:
    """The shipped language offsets for the embedding model with this fingerprint (its backend suffix ignored:
    int8 passages are close enough to fp32 ones for a mean); {} for any other model."""
    try:
        shipped = json.loads(LANGUAGE_OFFSETS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RagError(
            f"Cannot read {LANGUAGE_OFFSETS_FILE} ({exc}): it is part of the package; reinstall it (make setup)."
        ) from exc
    if shipped.get("model_fingerprint") != model_fingerprint.split("+")[0]:
        return {}
    return {lang: np.asarray(vector, dtype=np.float32) for lang, vector in shipped["offsets"].items()}


def _centered_query(data: IndexData, query_vector: np.ndarray, query_lang: str | None) -> np.ndarray:
    return query_vector - data.centroids[query_lang] if query_lang in data.centroids else query_vector


def _lexical_candidates(
    data: IndexData, query: str, n: int, filters: Filters, *, per_language: bool
) -> tuple[np.ndarray, dict[str | None, float]]:
    """The lexical channel's top-n rows, ranked by BM25 scaled to 0..1 by the best score, within each
    language when `per_language`; and those best scores, by language (None: one scale for all).

    Words of the question's own language match only passages in that language, so one global scale would
    reward language, not relevance: per language, the best lexical match in Azerbaijani weighs as much as the
    best one in English."""
    groups = list(data.rows_by_lang) if per_language and len(data.rows_by_lang) > 1 else [None]
    best: dict[str | None, float] = {}
    found_rows, found_scaled = [], []
    for lang in groups:
        scores, rows = data.engine.lexical_search(query, n, lang=lang, filters=filters)
        if len(rows):
            best[lang] = float(scores.max())
            found_rows.append(rows)
            found_scaled.append(scores / best[lang])
    if not found_rows:
        return np.zeros(0, dtype=np.int64), best
    rows, scaled = np.concatenate(found_rows), np.concatenate(found_scaled)
    return rows[np.lexsort((rows, -scaled))[:n]], best


def _scaled_lexical(raw: np.ndarray, row_langs: list[str], best: dict[str | None, float]) -> np.ndarray:
    """Raw BM25 scores of candidate rows on the scale `_lexical_candidates` ranked them by."""
    if None in best:
        return raw / best[None]
    scale = np.array([best.get(lang, 0.0) for lang in row_langs])
    return np.divide(raw, scale, out=np.zeros_like(raw), where=scale > 0)


def _centered_dense(
    data: IndexData,
    centered_query: np.ndarray,
    n: int,
    filters: Filters,
    variants: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense top-n by (p - mean[lang(p)]) . (q - mean[lang(q)]), searched per passage language and merged;
    a language with a variant of the question is searched with both (duplicates are merged later)."""
    scores, rows = [], []
    for lang in data.rows_by_lang:
        for query in [centered_query, *([variants[lang]] if variants and lang in variants else [])]:
            found_scores, found_rows = data.engine.dense_search(query, n, lang=lang, filters=filters)
            scores.append(found_scores - float(data.centroids[lang] @ query))
            rows.append(found_rows)
    if not rows:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    all_scores, all_rows = np.concatenate(scores), np.concatenate(rows)
    order = np.lexsort((all_rows, -all_scores))[:n]
    return all_scores[order], all_rows[order]


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


# Longest question `answer` accepts by default ([answer] max_question_chars). A real question is one to three
# sentences; 1,000 characters is about 230 tokens of the embedding model (which reads 512, so all of it counts)
# and leaves room in the chat model's 2,048-token context for the question twice, the evidence and the answer.
# A longer text is refused rather than cut: the part cut off could be the question itself (an article pasted
# with the question after it). Search takes longer texts (to find passages like a pasted paragraph); its dense
# channel reads their start.
MAX_QUESTION_CHARS = 1000

_WHITESPACE = re.compile(r"\s+")


def visible_text(text: str) -> str:
    """`text` as NFC with nothing invisible or unprintable left, line breaks kept.

    Terminal escape sequences are removed. Invisible format characters (zero-width spaces and joiners, bidi
    overrides such as U+202E, soft hyphens, byte order marks) are removed too, since they sit inside words: a
    name with a zero-width space in it is still the name. Any other control, separator, surrogate or unassigned
    character becomes a space. None of them means anything to search or to the model, and left raw they can
    reverse or recolour whatever a terminal or a page shows after them."""
    text = ESCAPE_SEQUENCE.sub(" ", unicodedata.normalize("NFC", text))
    out = []
    for ch in text:
        if ch.isprintable() or ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) != "Cf":
            out.append(" ")
    return "".join(out)


def clean_question(text: str) -> str:
    """`text` on one line, with nothing invisible in it (see `visible_text`) and no chat-template markup, which
    the chat model would read as the start of a new turn (instructions.CHAT_MARKUP)."""
    return _WHITESPACE.sub(" ", CHAT_MARKUP.sub(" ", visible_text(text))).strip()


def validate_query(query: object, max_chars: int | None = None) -> str:
    """The question cleaned by `clean_question`, or a RagError saying what to change: not text, empty, no
    letters or digits, longer than `max_chars`."""
    if not isinstance(query, str):
        raise RagError(f"The question must be text, got {type(query).__name__}.")
    cleaned = clean_question(query)
    if not cleaned:
        raise RagError("The question is empty. Type a question, for example: What did Uzbekistan say?")
    if not any(ch.isalnum() for ch in cleaned):
        raise RagError("The question has no letters or digits. Type a question in words.")
    if max_chars is not None and len(cleaned) > max_chars:
        raise RagError(
            f"The question is {len(cleaned):,} characters long; questions are limited to {max_chars:,}. "
            "Ask only the question itself (to ask about a long text, add it to the corpus folder and index it)."
        )
    return cleaned
