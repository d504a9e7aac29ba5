"""Language means shrunk towards a prior (retrieval.language_means): a language with few documents gets a mean
that is mostly the prior's, so centring removes its language, not its documents' subject."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag import retrieval
from rag.errors import RagError
from rag.retrieval import language_means, language_offsets

OFFSETS = {"az": np.array([1.0, 0.0, 0.0]), "en": np.array([-1.0, 0.0, 0.0])}


def test_a_language_with_few_documents_takes_mostly_the_prior():
    corpus = {"az": np.array([1.0, 1.0, 0.0]), "en": np.array([-1.0, 0.0, 1.0])}
    # 30 az passages, 10 en; neutral mean = (30 * (0, 1, 0) + 10 * (0, 0, 1)) / 40 = (0, 0.75, 0.25)
    means = language_means(corpus, {"az": 30, "en": 10}, {"az": 9, "en": 1}, OFFSETS, prior_documents=3)
    neutral = np.array([0.0, 0.75, 0.25])
    assert means["az"] == pytest.approx(0.75 * corpus["az"] + 0.25 * (neutral + OFFSETS["az"]))
    assert means["en"] == pytest.approx(0.25 * corpus["en"] + 0.75 * (neutral + OFFSETS["en"]))


def test_one_language_corpus_keeps_its_own_mean():
    corpus = {"ru": np.array([0.2, 0.3, 0.5])}
    means = language_means(corpus, {"ru": 7}, {"ru": 1}, {"ru": np.array([0.1, -0.1, 0.0])}, prior_documents=3)
    assert means["ru"] == pytest.approx(corpus["ru"])


def test_no_prior_weight_or_no_offset_keeps_the_corpus_means():
    corpus = {"az": np.array([1.0, 1.0, 0.0]), "tr": np.array([0.0, 1.0, 1.0])}
    unchanged = language_means(corpus, {"az": 3, "tr": 3}, {"az": 1, "tr": 1}, OFFSETS, prior_documents=0)
    assert all(unchanged[lang] is corpus[lang] for lang in corpus)
    # Turkish has no offset: it keeps its own mean and takes no part in the neutral mean.
    means = language_means(corpus, {"az": 3, "tr": 3}, {"az": 1, "tr": 1}, OFFSETS, prior_documents=3)
    assert means["tr"] is corpus["tr"]
    assert means["az"] == pytest.approx(corpus["az"])  # az alone among the offset languages: its own mean


def test_offsets_apply_to_their_model_only(tmp_path, monkeypatch):
    shipped = json.loads(retrieval.LANGUAGE_OFFSETS_FILE.read_text(encoding="utf-8"))
    assert set(shipped["offsets"]) == {"az", "ru", "en"}
    found = language_offsets(shipped["model_fingerprint"] + "+onnx-int8.v2")  # int8 passages: the same model
    assert set(found) == {"az", "ru", "en"} and found["az"].shape == (384,)
    assert language_offsets("sha256:another-model") == {}


def test_a_missing_offsets_file_says_to_reinstall(tmp_path, monkeypatch):
    monkeypatch.setattr(retrieval, "LANGUAGE_OFFSETS_FILE", tmp_path / "language_offsets.json")
    language_offsets.cache_clear()
    try:
        with pytest.raises(RagError, match="reinstall"):
            language_offsets("sha256:whatever")
    finally:
        language_offsets.cache_clear()
