"""rag.evaluation.metrics on hand-made rows and answers: the metrics that test_evaluation.py does not reach through
a run (the net-benefit threshold, doc-id gold names, marker ranges, rank cut-offs, percentiles), no assistant."""

from __future__ import annotations

import doctest
from types import SimpleNamespace

from rag.evaluation import best_net_threshold, in_gold, metrics, summarise, unsupported_sentences


def row(
    *,
    answerable: bool = True,
    rank: int | None = None,
    refused: bool = False,
    confidence: float | None = None,
    correct: bool = False,
    total: float = 1.0,
) -> dict:
    """A report row with every field summarise() reads; nothing cited, no keys."""
    return {
        "lang": "en", "gold": ["a.txt"] if answerable else [], "answerable": answerable, "retrieval_rank": rank,
        "refused": refused, "cited": [], "outside_gold": [], "cites_gold": False if answerable else None,
        "key_hit": None, "unsupported": [], "timings": {"total": total}, "confidence": confidence,
        "correct": correct, "readable": not refused,
    }  # fmt: skip


def test_best_net_threshold_weighs_wrong_answers_against_right_ones():
    rows = [
        row(confidence=0.9, correct=True),
        row(confidence=0.6),  # wrong
        row(confidence=0.75, correct=True),
        row(answerable=False, confidence=0.7),  # an answer to an unanswerable question: wrong
        row(refused=True, confidence=0.3),  # refusals are never candidates
    ]
    # right - 2 * wrong: t=0 and 0.6: 2 - 4 = -2; t=0.7: 2 - 2 = 0; t=0.75: 2 - 0 = 2; t=0.9: 1
    assert best_net_threshold(rows) == 0.75
    # with wrong answers free, every threshold up to 0.75 nets 2: the lowest wins
    assert best_net_threshold(rows, wrong_cost=0.0) == 0.0
    assert best_net_threshold([row(refused=True, confidence=0.5)]) is None  # nothing answered


def test_in_gold_accepts_a_doc_id_without_its_extension():
    assert in_gold("cnn.304521.txt", ["cnn.304521"])  # NTREX-QA gold names are file stems
    assert in_gold("news/cnn.304521.txt", ["cnn.304521"])
    assert not in_gold("cnn.3045210.txt", ["cnn.304521"])
    assert not in_gold("a.md", ["a.txt"])  # the stem matches a gold stem only when gold omits the extension


def test_a_marker_range_names_at_most_fifty_one_citations():
    answer = SimpleNamespace(
        refused=False,
        citations=[SimpleNamespace(n=60)],
        text="A typo [1-9999]. A range [58–62]. A list [59; 60].",
    )
    # [1-9999] is read as [1-51], which does not reach citation 60; the en-dash range and the list do
    assert unsupported_sentences(answer) == ["A typo [1-9999]."]


def test_summarise_counts_ranks_past_five_as_misses_and_interpolates_percentiles():
    rows = [
        row(rank=1, total=1.0),
        row(rank=2, total=2.0),
        row(rank=6, total=3.0),
        row(rank=None, total=4.0),
        row(answerable=False, refused=True, total=10.0),  # not in the rank metrics; rightly refused
    ]
    s = summarise(rows)
    assert (s["answerable"], s["unanswerable"]) == (4, 1)
    assert s["hit_at_1"] == 0.25 and s["hit_at_5"] == 0.5  # rank 6 is a miss at 5
    assert s["mrr"] == 0.4167  # (1 + 1/2 + 1/6 + 0) / 4
    assert (s["refused"], s["refusal_precision"], s["refusal_recall"]) == (1, 1.0, 1.0)
    # totals 1, 2, 3, 4, 10: p50 at position 2 -> 3; p95 at 3.8 -> 4 + 0.8 * 6; p90 at 3.6 -> 4 + 0.6 * 6
    assert s["total_p50"] == 3.0 and s["total_p95"] == 8.8 and s["latency_p90"] == 7.6
    assert s["first_token_p50"] is None  # no row measured it


def test_the_docstring_examples_hold():
    result = doctest.testmod(metrics)
    assert result.attempted > 0 and result.failed == 0
