"""The report of a run, for people and for files: a text table of the metrics (one column per language, then
overall) followed by the questions that went wrong, and the whole report as UTF-8 JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RagError
from .metrics import distinct
from .runner import RETRIEVAL_K

_MISSES_SHOWN = 20  # more would bury the table; the JSON rows hold every question

_TABLE = (
    ("questions", "questions", "count"),
    ("answerable", "answerable", "count"),
    ("unanswerable", "unanswerable", "count"),
    ("hit_at_1", "retrieval hit@1", "share"),
    ("hit_at_5", "retrieval hit@5", "share"),
    ("mrr", "retrieval MRR", "ratio"),
    ("cites_gold", "answers citing gold", "share"),
    ("citations_outside_gold", "citations outside gold", "share"),
    ("single_source_outside_gold", "1-source qs citing outside", "count"),
    ("key_accuracy", "key-fact accuracy", "share"),
    ("refused", "refused", "count"),
    ("refusal_precision", "refusal precision", "share"),
    ("refusal_recall", "refusal recall", "share"),
    ("precision", "answer precision", "share"),
    ("coverage", "answerable answered", "share"),
    ("readable", "answers readable", "share"),
    ("refusals_showing_fact", "refused, fact in closest", "share"),
    ("unsupported_sentences", "uncited sentences", "count"),
    ("first_token_p50", "first token p50", "seconds"),
    ("first_token_p95", "first token p95", "seconds"),
    ("total_p50", "total p50", "seconds"),
    ("total_p95", "total p95", "seconds"),
)


def format_report(report: dict) -> str:
    """The metrics as a table (one column per language, then overall), and the questions that went wrong."""
    meta = report["meta"]
    columns = [*report["by_lang"], "overall"]
    groups = [*report["by_lang"].values(), report["overall"]]
    label_width = max(len(label) for _, label, _ in _TABLE)
    lines = [
        f"Evaluation of {meta.get('file') or 'questions'}: model {meta.get('model') or 'unknown'}, {meta.get('date')}",
        f"corpus {meta.get('corpus')}, retrieval k={meta.get('retrieval_k')}, {meta.get('seconds')} s",
        "",
        "metric".ljust(label_width) + "".join(c.rjust(10) for c in columns),
    ]
    for key, label, kind in _TABLE:
        lines.append(label.ljust(label_width) + "".join(_cell(g.get(key), kind).rjust(10) for g in groups))
    misses = [line for row in report["rows"] if (line := _miss(row))]
    if misses:
        lines += ["", f"What went wrong ({len(misses)} questions):"]
        lines += misses[:_MISSES_SHOWN]
        if len(misses) > _MISSES_SHOWN:
            lines.append(f"... and {len(misses) - _MISSES_SHOWN} more: see the rows of the JSON report.")
    return "\n".join(lines) + "\n"


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "share":
        return f"{value * 100:.1f}%"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "seconds":
        return f"{value:.2f}s"
    return str(value)


def _miss(row: dict) -> str:
    problems = []
    if row["answerable"]:
        if row["retrieval_rank"] is None:
            problems.append(f"gold not in top {RETRIEVAL_K}")
        if row["refused"]:
            problems.append("refused")
        elif not row["cites_gold"]:
            problems.append("no gold citation")
        if row["outside_gold"]:
            problems.append(f"cites {', '.join(distinct(row['outside_gold']))}")
        if row["key_hit"] is False and not row["refused"]:
            problems.append("missing " + "; ".join("/".join(k) for k in row["missing_keys"]))
    elif not row["refused"]:
        problems.append("answered an unanswerable question")
    if not row["refused"] and row.get("readable") is False:
        problems.append(f"answer not in {row['lang']}")
    if row["unsupported"]:
        problems.append(f"{len(row['unsupported'])} uncited sentence(s)")
    if not problems:
        return ""
    question = row["question"] if len(row["question"]) <= 70 else row["question"][:67] + "..."
    return f"- {row['id']} [{row['lang']}] {'; '.join(problems)}: {question}"


def write_report(report: dict, path: Path) -> None:
    """The report as UTF-8 JSON (non-ASCII kept readable)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise RagError(f"Cannot write the evaluation report to {path}: {exc.strerror or exc}.") from exc
