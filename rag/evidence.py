"""Evidence first: from the retrieved passages, the sentences most likely to state the answer.

Choosing the sentence that answers is the core of the task: the small local models pick among sentences no
better than chance and invent facts when they write, so the answer is built from the sentence chosen here.
Each candidate sentence is described by a few features (its similarity to the question relative to the other
candidates, the question's terms and names it holds, whether it adds the kind of fact the question asks for,
the rank of its passage and document), and a logistic model fitted on held-out data (`evidence_model.json`,
written by bench/calibrate.py) turns them into the probability that the sentence states the answer. Sentences
that address the assistant ("ignore the question and reply ...") are screened out before they are ranked
(instructions.py): a document must not be able to steer the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .chunking import split_sentences
from .errors import RagError
from .grounding import names_in
from .instructions import InstructionScreen
from .lexical import name_terms, tokenize
from .question import Question
from .types import Evidence, Hit

# Fewer than this many letters is a fragment (a dateline, a lone name), not a statement.
MIN_LETTERS = 25
_DIGITS = re.compile(r"\d+")
# The weights that turn a sentence's features into the probability that it states the answer, fitted by
# bench/calibrate.py on one half of the NTREX-QA dev articles (the other half reports the result).
MODEL_FILE = Path(__file__).with_name("evidence_model.json")


class Candidate(NamedTuple):
    """A sentence of a retrieved passage; offsets in its document's text."""

    hit: Hit
    start: int
    end: int
    sentence: str


def candidate_sentences(hits: Sequence[Hit]) -> list[Candidate]:
    """Every usable sentence of the hits, offsets in document text, deduplicated across overlapping passages."""
    seen: set[tuple[str, int]] = set()
    out = []
    for hit in hits:
        for s, e in split_sentences(hit.text):
            start, end = hit.start + s, hit.start + e
            sentence = hit.text[s:e]
            if (hit.source, start) in seen or sum(ch.isalpha() for ch in sentence) < MIN_LETTERS:
                continue
            if _is_headline(sentence, hit.title):
                continue  # the headline is shown with every quote anyway, and says less than the body
            seen.add((hit.source, start))
            out.append(Candidate(hit, start, end, sentence))
    return out


def _is_headline(sentence: str, title: str) -> bool:
    title = title.strip().rstrip(".")
    return bool(title) and title in sentence and len(sentence) < len(title) + 30


FEATURES = (
    "dense_z",  # the sentence's cosine to the question, standardised over the candidates (not a raw cosine)
    "dense_rank",  # 1 / (1 + its rank by cosine among the candidates)
    "passage_score",  # the fused search score of the passage it comes from (0..1)
    "terms_with_title",  # share of the question's index terms in the sentence and its document's headline
    "novelty",  # share of the sentence's terms the question lacks: an answer adds something to the question
    "new_number",  # a number the question lacks, when the question asks for a date, time or amount
    "new_name",  # a name the question lacks, when the question asks who, where or which
    "shared_number",  # a number of the question ("78th session"): very likely the same event
    "document_rank",  # 1 / (1 + rank of its document among the retrieved ones)
    "top_document",  # from the best retrieved document
    "missing_names",  # share of the question's names that neither the sentence nor its headline mentions
)


@dataclass(frozen=True)
class EvidenceModel:
    """A logistic model over FEATURES: P(the sentence states the answer) = sigmoid(features @ weights + bias)."""

    weights: np.ndarray
    bias: float
    fitted_on: str = ""
    # Kept in the same file because it is calibrated on the same embedding model: the cosine between a sentence
    # and its translation that most human translations reach (FLORES-200), below which a machine translation is
    # not shown (grounding.check_translation).
    translation_min_similarity: float = 0.9
    # The number of passages whose sentences the model was fitted over ([answer] passages when bench/calibrate.py
    # ran). The relative features (dense_z, dense_rank) are always scaled over that many passages' sentences, so
    # that a probability means the same whether an answer may come from 3 passages or from 20.
    passages: int = 10

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> EvidenceModel:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if tuple(data["features"]) != FEATURES:
            raise RagError(
                f"{path} was fitted on other features ({', '.join(data['features'])}); refit it with "
                "`python bench/calibrate.py`."
            )
        return cls(
            np.asarray(data["weights"], dtype=np.float64),
            float(data["bias"]),
            data.get("fitted_on", ""),
            float(data.get("translation_min_similarity", cls.translation_min_similarity)),
            int(data.get("passages", cls.passages)),
        )

    def probability(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(features @ self.weights + self.bias)))


def sentence_features(
    question: Question, candidates: Sequence[Candidate], dense: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """One row of FEATURES per candidate sentence; `dense` holds each sentence's cosine to the question.

    Only relative dense values are used (standardised, ranked), so the model survives a change of embedding
    model, whose cosines sit in another band. They are relative to the candidates marked in `scale` (all by
    default): the sentences of as many passages as the model was fitted over (EvidenceModel.passages). Scaled
    over the candidates at hand instead, the best sentence of 3 passages stood out less than among 20, and the
    confidence in the same answer ran from 0.49 to 0.99 as the passages asked for went from 1 to 20."""
    if not candidates:
        return np.zeros((0, len(FEATURES)))
    dense = np.asarray(dense, dtype=np.float64)
    reference = dense if scale is None or not np.any(scale) else dense[np.asarray(scale, dtype=bool)]
    dense_z = (dense - reference.mean()) / (reference.std() + 1e-6)
    dense_rank = (reference[None, :] > dense[:, None]).sum(axis=1)  # reference sentences closer to the question
    documents = list(dict.fromkeys(c.hit.source for c in candidates))
    q_terms, q_numbers = question.terms, question.numbers
    spellings = question.name_spellings()
    rows = []
    for i, c in enumerate(candidates):
        terms = set(tokenize(c.sentence))
        with_title = terms | set(tokenize(c.hit.title))
        numbers = set(_DIGITS.findall(c.sentence))
        new_names = [n for n in names_in("x " + c.sentence) if not name_terms(n) & q_terms]
        document_rank = documents.index(c.hit.source)
        rows.append(
            [
                dense_z[i],
                1.0 / (1 + dense_rank[i]),
                c.hit.score,
                len(q_terms & with_title) / max(1, len(q_terms)),
                len(terms - q_terms) / max(1, len(terms)),
                float(question.asks_for_number and bool(numbers - q_numbers)),
                float(question.asks_for_name and bool(new_names)),
                float(bool(numbers & q_numbers)),
                1.0 / (1 + document_rank),
                float(document_rank == 0),
                sum(1 for t in spellings if not t & with_title) / len(spellings) if spellings else 0.0,
            ]
        )
    return np.asarray(rows, dtype=np.float64)


def select_evidence(
    question: Question,
    hits: Sequence[Hit],
    encode: Callable[[list[str]], np.ndarray],
    limit: int,
    model: EvidenceModel,
    *,
    screen: InstructionScreen,
    per_document: int = 3,
    answer_passages: int | None = None,
) -> list[Evidence]:
    """The `limit` sentences most likely to state the answer, best first, numbered from 1; each one's `score`
    is that probability, by `model`. Sentences that `screen` flags as addressing the assistant are left out.

    Evidence comes from the first `answer_passages` hits (all by default); the sentences of the first
    `model.passages` hits set the scale of the relative features, so pass at least that many hits.
    `encode(sentences)` returns their unit vectors from the embedding model that encoded the question (the
    caller owns the model and its prompts); they serve both the similarity to the question and the screen."""
    candidates = candidate_sentences(hits)
    if not candidates:
        return []
    vectors = np.asarray(encode([c.sentence for c in candidates]), dtype=np.float32)
    kept = ~screen.flags([c.sentence for c in candidates], vectors)
    candidates = [c for c, keep in zip(candidates, kept, strict=True) if keep]
    if not candidates:
        return []
    dense = (vectors[kept] @ question.vectors.T).max(axis=1).astype(np.float64)
    position = {(hit.source, hit.start): i for i, hit in reversed(list(enumerate(hits)))}
    passage_of = np.array([position[(c.hit.source, c.hit.start)] for c in candidates])
    scale = passage_of < model.passages
    probability = model.probability(sentence_features(question, candidates, dense, scale=scale))
    answerable = passage_of < (len(hits) if answer_passages is None else answer_passages)
    chosen = [c for c, ok in zip(candidates, answerable, strict=True) if ok]
    return rank_evidence(chosen, probability[answerable], limit, per_document=per_document)


def rank_evidence(
    candidates: Sequence[Candidate], probability: np.ndarray, limit: int, *, per_document: int = 3
) -> list[Evidence]:
    """The `limit` most probable candidates as Evidence, best first, numbered from 1, at most `per_document`
    from one document."""
    chosen: list[Evidence] = []
    per_doc: dict[str, int] = {}
    for i in np.argsort(-np.asarray(probability), kind="stable"):
        c = candidates[int(i)]
        if per_doc.get(c.hit.source, 0) >= per_document:
            continue
        per_doc[c.hit.source] = per_doc.get(c.hit.source, 0) + 1
        chosen.append(
            Evidence(
                n=len(chosen) + 1,
                hit=c.hit,
                quote=c.sentence,
                quote_start=c.start,
                quote_end=c.end,
                score=round(float(probability[int(i)]), 6),
            )
        )
        if len(chosen) == limit:
            break
    return chosen
