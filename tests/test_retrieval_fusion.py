"""Document-level fusion: a document's evidence may be split across passages (the name in one, the fact in
another), so its rank comes from its best dense and its best lexical score together."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import RetrievalConfig
from rag.retrieval import _document_scores


def test_a_document_fuses_its_best_dense_and_best_lexical_passages():
    docs = np.array([0, 0, 1])
    dense = np.array([0.9, 0.1, 0.8])  # document 0's first passage carries the meaning ...
    lexical = np.array([0.0, 1.0, 0.5])  # ... and its second passage the name
    scores = _document_scores(docs, dense, lexical, RetrievalConfig(dense_weight=0.8, lexical_weight=0.2))
    # Document 0: best dense (scaled to 1) and best lexical (1) together; document 1: lowest dense, half lexical.
    assert scores == pytest.approx([1.0, 1.0, 0.1])


def test_one_candidate_document_gets_full_dense_credit():
    scores = _document_scores(np.array([3, 3]), np.array([0.2, 0.4]), np.array([0.0, 0.0]), RetrievalConfig())
    assert scores == pytest.approx([0.8, 0.8])  # dense_weight of the default 0.8 / 0.2 split


def _sources(assistant, query):
    hits = assistant.search(query, k=6)
    return [hit.source for hit in hits]


@pytest.mark.parametrize("query", ["Bayramov Özbəkistan nazir", "OIC ambassadors Armenia", "Байрамов ООН"])
def test_documents_first_keeps_each_documents_passages_together(corpus, make_assistant, query):
    assistant = make_assistant(corpus, retrieval={"document_weight": 1.0, "max_per_document": 2})
    assistant.build_index()
    sources = _sources(assistant, query)
    assert len(sources) == 6
    # Each document appears as one run: once another document's passage came, it never comes back.
    runs = [s for i, s in enumerate(sources) if i == 0 or s != sources[i - 1]]
    assert len(runs) == len(set(runs)), sources


def test_passage_scores_alone_when_document_weight_is_zero(corpus, make_assistant):
    assistant = make_assistant(corpus, retrieval={"document_weight": 0.0, "max_per_document": 0})
    assistant.build_index()
    hits = assistant.search("Bayramov Özbəkistan nazir", k=8)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
