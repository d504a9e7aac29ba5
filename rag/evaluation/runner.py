"""Running a question set through an assistant: each question is asked twice, once through `search` (retrieval
ranks) and once through `answer` (citations, key facts, refusals, latency), and judged with metrics.py. The report
is plain JSON values: the run's metadata, metrics overall and per language, and one row per question.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RagError
from .items import EvalItem, article_half
from .metrics import (
    distinct,
    in_gold,
    is_readable,
    missing_keys,
    retrieval_rank,
    rounded,
    summarise,
    unsupported_sentences,
)

RETRIEVAL_K = 5  # hit@5 needs five documents' worth of passages


def run_eval(
    assistant: Any,
    items: list[EvalItem],
    *,
    model: str | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    file: str | Path | None = None,
) -> dict:
    """Ask every item (the first `limit`) and return the report: `meta`, `overall`, `by_lang`, `rows`."""
    if limit is not None and limit < 1:
        raise RagError(f"limit must be at least 1, got {limit}.")
    chosen = items[:limit] if limit is not None else list(items)
    started = time.perf_counter()
    rows = []
    for done, item in enumerate(chosen, 1):
        rows.append(_evaluate(assistant, item, model))
        if progress:
            progress(done, len(chosen))
    languages = sorted({row["lang"] for row in rows})
    return {
        "meta": _meta(assistant, rows, model, file, limit, time.perf_counter() - started),
        "overall": summarise(rows),
        "by_lang": {lang: summarise([r for r in rows if r["lang"] == lang]) for lang in languages},
        "rows": rows,
    }


def _evaluate(assistant: Any, item: EvalItem, model: str | None) -> dict:
    retrieved = distinct(hit.source for hit in assistant.search(item.question, k=RETRIEVAL_K))
    answer = assistant.answer(item.question, model=model)
    answerable = bool(item.gold)
    cited = [c.source for c in answer.citations]
    outside = [s for s in cited if not in_gold(s, item.gold)]
    missed = missing_keys(answer.text, item.keys)
    key_hit = None if not (answerable and item.keys) else not answer.refused and not missed
    cites_gold = not answer.refused and any(in_gold(s, item.gold) for s in cited)
    return {
        "id": item.id,
        "lang": item.lang,
        "question": item.question,
        "gold": list(item.gold),
        "answerable": answerable,
        "retrieved": retrieved,
        "retrieval_rank": retrieval_rank(retrieved, item.gold) if answerable else None,
        "answer": answer.text,
        "refused": bool(answer.refused),
        "mode": answer.mode,
        "model": answer.model,
        "cited": cited,
        "cites_gold": cites_gold if answerable else None,
        "outside_gold": outside,
        "key_hit": key_hit,
        "missing_keys": missed if answerable else [],
        "unsupported": unsupported_sentences(answer),
        "timings": {k: rounded(v) for k, v in dict(answer.timings).items()},
        "confidence": None if answer.confidence is None else rounded(float(answer.confidence)),
        "correct": answerable and not answer.refused and not missed and cites_gold,
        "readable": not answer.refused and is_readable(answer.text, item.lang),
        # Whether a refusal would put the fact before the reader anyway: a closest sentence of a gold article
        # holds every key (bench/answers.py counts it over the answerable questions refused at its threshold).
        "closest_holds_fact": answerable
        and bool(item.keys)
        and any(in_gold(e.hit.source, item.gold) and not missing_keys(e.quote, item.keys) for e in answer.closest),
        "half": article_half(item),
        "citations": [
            {
                "n": c.n,
                "source": c.source,
                "lang": c.lang,
                "quote": c.quote,
                "translation": c.translation,
            }
            for c in answer.citations
        ],
    }


def _meta(assistant: Any, rows: list[dict], model: str | None, file: Any, limit: int | None, seconds: float) -> dict:
    names = distinct(r["model"] for r in rows if r["model"])
    config = getattr(assistant, "config", None)
    return {
        "file": str(file) if file is not None else None,
        "model": ", ".join(names) or model or "",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "questions": len(rows),
        "limit": limit,
        "retrieval_k": RETRIEVAL_K,
        "seconds": round(seconds, 2),
        "corpus": str(config.corpus.path) if config is not None else None,
        "config": _config_summary(config),
    }


def _config_summary(config: Any) -> dict:
    summary = {}
    for section in ("retrieval", "answer", "generation"):
        value = getattr(config, section, None)
        if dataclasses.is_dataclass(value):
            summary[section] = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return summary


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
