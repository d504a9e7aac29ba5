"""Evaluation: the numbers every change to prompts, models or retrieval settings is judged by.

Two input formats:
- JSONL in the format of `../shared/eval/seeds_dev.jsonl` (`id`, `q`, `lang`, `gold`, `keys`): questions about
  the configured corpus;
- XQuAD / SQuAD 1.1 JSON: its paragraphs become the corpus (one .txt file each, written by `prepare_xquad`),
  optionally with the paragraphs of a parallel file (crossed evaluation: ru questions over en paragraphs).

`run_eval` asks every question twice, once through `search` (retrieval ranks) and once through `answer`
(citations, key facts, refusals, latency), and returns a report of plain JSON values: metrics per language and
overall, the run's metadata, and one row per question so that a person can read what went wrong.

Each row also carries the answer's calibrated `confidence`, whether it is `correct` and `readable` in the question's
language, and the `half` of the fixed split by article. Run with `[answer] min_confidence = 0`, the rows hold every
would-be answer, and the pure functions of "answer decisions" (`precision`, `coverage`, `risk_coverage`,
`choose_operating_point`) judge any confidence threshold after the fact, without asking again.

One module per job, in the order a run goes through them:

- files.py: reading evaluation files, with errors that name the file and the line;
- corpora.py: writing the corpora questions are asked about (XQuAD paragraphs, the NTREX-QA newsroom);
- items.py: question files -> `EvalItem` records, and the fixed split into halves by article;
- metrics.py: pure functions that judge one answer and summarise rows (no files, no assistant);
- runner.py: `run_eval`, which asks an assistant every question and builds the report;
- report.py: the report as a text table and as a JSON file.

Everything a caller needs is imported from here.
"""

from .corpora import default_corpus_dir, prepare_ntrex_qa
from .items import EvalItem, article_half, half_of, load_items, prepare_xquad
from .metrics import (
    CurvePoint,
    answer_sentences,
    best_net_threshold,
    choose_operating_point,
    coverage,
    decisions,
    given,
    in_gold,
    is_readable,
    missing_keys,
    precision,
    readable_share,
    retrieval_rank,
    risk_coverage,
    summarise,
    unanswerable_refused,
    unsupported_sentences,
)
from .report import format_report, write_report
from .runner import RETRIEVAL_K, run_eval

__all__ = [
    "RETRIEVAL_K",
    "CurvePoint",
    "EvalItem",
    "answer_sentences",
    "article_half",
    "half_of",
    "best_net_threshold",
    "choose_operating_point",
    "coverage",
    "decisions",
    "default_corpus_dir",
    "format_report",
    "given",
    "in_gold",
    "is_readable",
    "load_items",
    "missing_keys",
    "precision",
    "prepare_ntrex_qa",
    "prepare_xquad",
    "readable_share",
    "retrieval_rank",
    "risk_coverage",
    "run_eval",
    "summarise",
    "unanswerable_refused",
    "unsupported_sentences",
    "write_report",
]
