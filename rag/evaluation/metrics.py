"""Judging answers and summarising runs: pure functions over answers and report rows, with no files and no
assistant, so that every metric can be checked on hand-made inputs and any confidence threshold judged after the fact.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ..chunking import split_sentences
from ..citations import LEADING_MARKERS, MARKER, cited_numbers
from ..language import detect_language
from ..text import fold_dotted_i

# "claim.[1] Next" carries no space for the sentence splitter to break on, so one is put in first.
_MARKER_AFTER_END = re.compile(r"([.!?…])(\[\d)")


# -- judging one answer ---------------------------------------------------------------------------------------
def in_gold(source: str, gold: Sequence[str]) -> bool:
    """Whether a corpus-relative source is one of the gold files (a gold name may omit the folders, and its
    extension: NTREX-QA names articles by doc id, the file stem)."""
    stem = source.rsplit(".", 1)[0] if "." in source.rsplit("/", 1)[-1] else source
    return any(name == g or name.endswith("/" + g) for g in gold for name in (source, stem))


def retrieval_rank(sources: Sequence[str], gold: Sequence[str]) -> int | None:
    """1-based rank of the first gold document among the distinct documents in `sources`, None when absent."""
    for rank, source in enumerate(distinct(sources), 1):
        if in_gold(source, gold):
            return rank
    return None


def _fold(text: str) -> str:
    # Casefolding alone leaves Azerbaijani İ as i + combining dot and ı apart from i; both are case variants.
    folded = fold_dotted_i(unicodedata.normalize("NFKC", text)).casefold()
    return " ".join(folded.split())


def missing_keys(text: str, keys: Sequence[Sequence[str]]) -> list[list[str]]:
    """The key lists none of whose alternatives occurs in `text` (case-insensitive; citation markers ignored,
    so that a key "2" is not found in "[2]")."""
    haystack = _fold(MARKER.sub(" ", text))
    return [list(alternatives) for alternatives in keys if not any(_fold(a) in haystack for a in alternatives)]


def unsupported_sentences(answer: Any) -> list[str]:
    """Sentences of the answer text that carry no [n] marker pointing to one of its citations.
    A refusal is one fixed sentence with nothing to cite, so it has none."""
    if answer.refused:
        return []
    cited = {c.n for c in answer.citations}
    return [s for s in answer_sentences(answer.text) if not (cited_numbers(s) & cited)]


def answer_sentences(text: str) -> list[str]:
    """The sentences of an answer, each with the markers that follow its full stop ("claim. [1] Next.")."""
    text = _MARKER_AFTER_END.sub(r"\1 \2", text)
    sentences: list[str] = []
    for start, end in split_sentences(text):
        piece = text[start:end]
        lead = LEADING_MARKERS.match(piece)
        if lead and sentences:
            sentences[-1] = f"{sentences[-1]} {lead.group().strip()}"
            piece = piece[lead.end() :].strip()
        if re.search(r"[^\W_]", MARKER.sub("", piece)):
            sentences.append(piece)
    return sentences


# -- summarising a run ----------------------------------------------------------------------------------------
def summarise(rows: Sequence[dict]) -> dict:
    """The metrics over some rows; a share whose denominator is 0 is None."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    ranks = [r["retrieval_rank"] for r in answerable]
    citations = sum(len(r["cited"]) for r in answerable)
    outside = sum(len(r["outside_gold"]) for r in answerable)
    with_keys = [r for r in answerable if r["key_hit"] is not None]
    refused = [r for r in rows if r["refused"]]
    rightly_refused = sum(1 for r in refused if not r["answerable"])
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit_at_1": _share(sum(1 for r in ranks if r == 1), len(ranks)),
        "hit_at_5": _share(sum(1 for r in ranks if r is not None and r <= 5), len(ranks)),
        "mrr": _share(sum(1 / r for r in ranks if r is not None), len(ranks)),
        "cites_gold": _share(sum(1 for r in answerable if r["cites_gold"]), len(answerable)),
        "citations": citations,
        "citations_outside_gold": _share(outside, citations),
        "single_source_outside_gold": sum(1 for r in answerable if len(r["gold"]) == 1 and r["outside_gold"]),
        "key_questions": len(with_keys),
        "key_accuracy": _share(sum(1 for r in with_keys if r["key_hit"]), len(with_keys)),
        "refused": len(refused),
        "refusal_precision": _share(rightly_refused, len(refused)),
        "refusal_recall": _share(rightly_refused, len(unanswerable)),
        "unsupported_sentences": sum(len(r["unsupported"]) for r in rows),
        "first_token_p50": _percentile(_timings(rows, "first_token"), 50),
        "first_token_p95": _percentile(_timings(rows, "first_token"), 95),
        "total_p50": _percentile(_timings(rows, "total"), 50),
        "total_p95": _percentile(_timings(rows, "total"), 95),
        **decisions(rows),
    }


# -- answer decisions -------------------------------------------------------------------------------------------
# A row is "given" when the run answered it (not refused) and, at a confidence threshold t, its confidence is at
# least t: that is what `[answer] min_confidence = t` would have answered. A row without a confidence counts as
# confidence 0 (given only at t = 0). Thresholds are applied to the rows after the fact, so a run with
# min_confidence 0 can be judged at every threshold.
class CurvePoint(NamedTuple):
    """One threshold of a risk-coverage curve; a share whose denominator is 0 is None."""

    threshold: float
    coverage: float | None
    precision: float | None
    unanswerable_refused: float | None


def given(row: dict, threshold: float | None = None) -> bool:
    """Whether the row's answer is given: answered in the run and, with a threshold, confident enough."""
    if row["refused"]:
        return False
    return threshold is None or (row.get("confidence") or 0.0) >= threshold


def precision(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Correct answers / answers given; an answer to an unanswerable question is given and not correct."""
    answers = [r for r in rows if given(r, threshold)]
    return _share(sum(1 for r in answers if r.get("correct")), len(answers))


def coverage(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Answerable questions answered (right or wrong) / answerable questions."""
    answerable = [r for r in rows if r["answerable"]]
    return _share(sum(1 for r in answerable if given(r, threshold)), len(answerable))


def unanswerable_refused(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Unanswerable questions refused / unanswerable questions."""
    unanswerable = [r for r in rows if not r["answerable"]]
    return _share(sum(1 for r in unanswerable if not given(r, threshold)), len(unanswerable))


def readable_share(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Answers given in the question's language (see `is_readable`) / answers given."""
    answers = [r for r in rows if given(r, threshold)]
    return _share(sum(1 for r in answers if r.get("readable")), len(answers))


def refusals_showing_fact(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Answerable questions refused whose closest matches (shown under the refusal) hold the asked fact /
    answerable questions refused."""
    refused = [r for r in rows if r["answerable"] and not given(r, threshold)]
    return _share(sum(1 for r in refused if r.get("closest_holds_fact")), len(refused))


def is_readable(text: str, lang: str) -> bool:
    """Whether a reader of `lang` can read the answer: its text without [n] markers is detected as `lang`, or it
    is under 4 words (too short to detect, and mostly names or numbers). A quote left in the document's language
    makes a longer answer unreadable, which is the point."""
    stripped = MARKER.sub(" ", text)
    if len(re.findall(r"[^\W_]+", stripped)) < 4:
        return True
    return detect_language(stripped) == lang


def decisions(rows: Sequence[dict], threshold: float | None = None) -> dict:
    """The answer metrics at a threshold (None: as the run decided). Latency is over every question, answered
    or refused, as the run measured it; of it, search and evidence selection (timings["retrieval"]) over every
    question, and the rest (the translations) over the answers that quote a sentence in another language."""
    answers = [r for r in rows if given(r, threshold)]
    totals = _timings(rows, "total")
    searching = _timings(rows, "retrieval")
    translating = [
        r["timings"]["total"] - r["timings"]["retrieval"]
        for r in rows
        if not r["refused"] and _quotes_another_language(r) and _timings([r], "retrieval")
    ]
    return {
        "answered": len(answers),
        "correct": sum(1 for r in answers if r.get("correct")),
        "precision": precision(rows, threshold),
        "coverage": coverage(rows, threshold),
        "unanswerable_refused": unanswerable_refused(rows, threshold),
        "readable": readable_share(rows, threshold),
        "refusals_showing_fact": refusals_showing_fact(rows, threshold),
        "latency_p50": _percentile(totals, 50),
        "latency_p90": _percentile(totals, 90),
        "retrieval_p50": _percentile(searching, 50),
        "retrieval_p90": _percentile(searching, 90),
        # After the evidence, an answer that quotes another language waits for the chat model's translations.
        "translation_p50": _percentile(translating, 50),
        "translation_p90": _percentile(translating, 90),
    }


def _quotes_another_language(row: dict) -> bool:
    return any(c.get("lang") != row["lang"] for c in row.get("citations", []))


def risk_coverage(rows: Sequence[dict]) -> list[CurvePoint]:
    """Coverage, precision and unanswerable refused at every threshold that changes what is given: 0 and each
    distinct confidence of an answered row, lowest threshold (highest coverage) first.

    >>> rows = [{"answerable": True, "refused": False, "confidence": 0.9, "correct": True},
    ...         {"answerable": True, "refused": False, "confidence": 0.4, "correct": False}]
    >>> [tuple(p) for p in risk_coverage(rows)]
    [(0.0, 1.0, 0.5, None), (0.4, 1.0, 0.5, None), (0.9, 0.5, 1.0, None)]
    """
    if not rows:
        return []
    confidences = {r["confidence"] for r in rows if not r["refused"] and r.get("confidence") is not None}
    return [
        CurvePoint(t, coverage(rows, t), precision(rows, t), unanswerable_refused(rows, t))
        for t in sorted({0.0} | confidences)
    ]


def choose_operating_point(curve: Sequence[CurvePoint], min_precision: float) -> CurvePoint | None:
    """The point with the highest coverage whose precision reaches `min_precision` (ties: higher precision, then
    more unanswerable questions refused, then the lower threshold); when none reaches it, the point with the
    highest precision (ties: higher coverage). None when no point has a precision."""
    scored = [p for p in curve if p.precision is not None]
    if not scored:
        return None
    good = [p for p in scored if p.precision >= min_precision]
    if good:
        return max(good, key=lambda p: (p.coverage or 0.0, p.precision, p.unanswerable_refused or 0.0, -p.threshold))
    return max(scored, key=lambda p: (p.precision, p.coverage or 0.0, -p.threshold))


def best_net_threshold(rows: Sequence[dict], wrong_cost: float = 2.0) -> float | None:
    """The threshold at which right answers minus `wrong_cost` times wrong ones is highest (a refusal costs
    nothing), the lowest such threshold; None when nothing was answered. With the default cost, an answer is
    worth giving when it is at least twice as likely right as wrong: the rule the default `[answer]
    min_confidence` is chosen by, on the fit half."""
    if not any(given(r) for r in rows):
        return None
    candidates = sorted({0.0} | {r["confidence"] for r in rows if not r["refused"] and r.get("confidence") is not None})

    def net(threshold: float) -> float:
        answers = [r for r in rows if given(r, threshold)]
        right = sum(1 for r in answers if r.get("correct"))
        return right - wrong_cost * (len(answers) - right)

    return max(candidates, key=lambda t: (net(t), -t))


def _share(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _timings(rows: Sequence[dict], key: str) -> list[float]:
    return [r["timings"][key] for r in rows if isinstance(r["timings"].get(key), (int, float))]


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks, as numpy.percentile does by default."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return rounded(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def rounded(value: Any) -> Any:
    """A float to the 4 places every figure of a report is given with; anything else as it is."""
    return round(value, 4) if isinstance(value, float) else value


def distinct(values: Iterable[str]) -> list[str]:
    """The values once each, in the order first seen."""
    return list(dict.fromkeys(values))
