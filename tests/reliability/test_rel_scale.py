"""How the build keeps memory bounded on a large corpus, as properties that need no timing or memory figures.

bench/scale.py measures the effect (10,000 files and a 100 MB file); these tests pin down the mechanisms:
passage texts are made for the embedder a batch at a time, never for the whole corpus at once, and BM25 is
built from a one-pass stream of passages. Both give exactly the index the whole-corpus way gives.
"""

from __future__ import annotations

import random

import numpy as np
from relfakes import FakeEmbedder, write_corpus

import rag
from rag import indexer
from rag.lexical import LexicalIndex


class RecordingEmbedder(FakeEmbedder):
    """Remembers how many passage texts each call received."""

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def encode_passages(self, texts, progress=None):
        self.batches.append(len(texts))
        return super().encode_passages(texts, progress)


def _build(corpus, index_dir, embedder) -> rag.Assistant:
    cfg = rag.load_config({"corpus": {"path": str(corpus)}, "index": {"path": str(index_dir)}})
    assistant = rag.Assistant(cfg, embedder=embedder)
    assistant.build_index()
    return assistant


def _snapshot(assistant: rag.Assistant) -> tuple:
    data = assistant.index()
    table = np.stack([data.passage_doc, data.passage_start, data.passage_end], axis=1)
    return [d.source for d in data.documents], table, data.vectors.vectors(), data.centroids


def test_passages_reach_the_embedder_a_batch_at_a_time(tmp_path, monkeypatch):
    """With the batch set to 7 passages, a 30-file corpus reaches the embedder in calls of at most 7 texts
    (so the passage texts of the whole corpus never exist at once), and the index, then an incremental
    update of it, equal those built with one call for everything."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus, random.Random(7), files=30)
    whole = _build(corpus, tmp_path / "whole", FakeEmbedder())
    monkeypatch.setattr(indexer, "EMBED_BATCH", 7)
    embedder = RecordingEmbedder()
    batched = _build(corpus, tmp_path / "batched", embedder)

    total = whole.index().size
    assert total > 7 * 5, "the corpus must need many batches for the test to mean anything"
    # Besides the passages, the build embeds each acronym's long form once (aliases.learn), in one call.
    long_forms = len(batched.index().aliases.known)
    assert max(embedder.batches) <= 7 and sum(embedder.batches) == total + long_forms
    sources, table, vectors, centroids = _snapshot(batched)
    w_sources, w_table, w_vectors, w_centroids = _snapshot(whole)
    assert sources == w_sources and np.array_equal(table, w_table) and np.array_equal(vectors, w_vectors)
    assert centroids.keys() == w_centroids.keys()
    assert all(np.allclose(centroids[lang], w_centroids[lang], atol=1e-6) for lang in centroids)

    # An incremental build embeds only the changed file, in batches too, and keeps the others' vectors in place.
    changed = sorted(corpus.rglob("*.txt"))[3]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nBir əlavə cümlə.", encoding="utf-8")
    embedder.batches.clear()
    summary = batched.build_index()
    assert summary.changed == [changed.relative_to(corpus).as_posix()]
    new_long_forms = len(batched.index().aliases.known.keys() - whole.index().aliases.known.keys())
    assert sum(embedder.batches) == summary.embedded_passages + new_long_forms and max(embedder.batches) <= 7
    whole.build_index()
    sources, table, vectors, _ = _snapshot(batched)
    w_sources, w_table, w_vectors, _ = _snapshot(whole)
    assert sources == w_sources and np.array_equal(table, w_table) and np.array_equal(vectors, w_vectors)


def test_bm25_is_built_from_a_one_pass_stream_of_passages(tmp_path):
    """LexicalIndex.build reads passages from a generator (the indexer slices them from the documents one by
    one) and gives the same scores as from a list, also after a save and load."""
    texts = [
        "Özbəkistan Azərbaycanın ərazi bütövlüyünü dəstəkləyir.",
        "Байрамов встретился с министром Кыргызстана.",
        "Blinken called President Aliyev on 26 September.",
        "",
        "и в на",  # only stopwords: a passage without terms
        "Xələfov və Usmanov siyasi məsləhətləşmələr keçirib.",
    ]
    consumed = []

    def stream():
        for text in texts:
            consumed.append(text)
            yield text

    streamed = LexicalIndex.build(stream())
    listed = LexicalIndex.build(texts)
    assert consumed == texts and streamed.size == listed.size == len(texts)
    streamed.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex", len(texts))
    for query in ["Özbəkistan ərazi bütövlüyü", "Bayramov Kyrgyzstan", "Blinken Aliyev", "Xalafov", "nothing here"]:
        expected = listed.scores(query)
        assert np.array_equal(streamed.scores(query), expected) and np.array_equal(loaded.scores(query), expected)
    assert listed.scores("Özbəkistan")[0] > 0 and listed.scores("Özbəkistan")[1:].max() == 0
