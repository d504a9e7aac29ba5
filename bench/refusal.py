"""Answering and refusing beyond the dev set: XQuAD with some articles held out of the corpus.

    .venv/bin/python bench/refusal.py [--questions 40] [--langs en ru] [--model quality]

The dev file has two unanswerable questions; this measures refusal on many. The corpus is the English XQuAD
paragraphs minus every sixth article (8 of 48). A question about a kept article is answerable; a question about
a held-out one is not. Questions are asked in English and in Russian (the same ids), evenly sampled, `--questions`
of each kind per language. Writes the REFUSAL block of bench/RESULTS.md; the corpus and index go to a temporary
folder.

XQuAD questions were written with their paragraph in view ("What was the average household size?"), so a
question about a held-out article often has a fitting answer in a kept one. Refusal recall here is a lower bound
of what news questions, which name their subject, get.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import mode_counts, publish  # noqa: E402

import rag  # noqa: E402
from rag import evaluation  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
HOLD_OUT_EVERY = 6


def _article(file: str) -> str:
    return Path(file).stem.rsplit("_", 1)[0]  # files are <title-slug>_<paragraph>.txt


def _share(part: int, whole: int) -> str:
    return f"{part} / {whole} ({part / whole:.0%})" if whole else "n/a"


def _sample(items: list, n: int) -> list:
    return items[:: max(1, len(items) // n)][:n]


def questions(lang: str, corpus: Path, per_kind: int) -> tuple[list, list]:
    """(answerable, unanswerable) items; writes the English paragraphs to `corpus` and removes the held-out ones."""
    items, _ = evaluation.load_items(
        EVAL / f"xquad.{lang}.json", corpus_dir=corpus, paragraphs_from=EVAL / "xquad.en.json"
    )
    articles = sorted({_article(item.gold[0]) for item in items})
    held_out = set(articles[::HOLD_OUT_EVERY])
    for file in corpus.iterdir():
        if _article(file.name) in held_out:
            file.unlink()
    answerable = [item for item in items if _article(item.gold[0]) not in held_out]
    unanswerable = [dataclasses.replace(item, gold=[]) for item in items if _article(item.gold[0]) in held_out]
    return _sample(answerable, per_kind), _sample(unanswerable, per_kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40, help="answerable and unanswerable, each, per language")
    parser.add_argument("--langs", nargs="+", default=["en", "ru"], choices=["en", "ru"])
    parser.add_argument("--model", default=None, help="chat model (default: [generation] model)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    started = time.perf_counter()
    load = os.getloadavg()
    reports = {}
    embedder = None
    with tempfile.TemporaryDirectory(prefix="rag-refusal-") as work:
        for lang in args.langs:
            corpus = Path(work) / lang / "corpus"
            answerable, unanswerable = questions(lang, corpus, args.questions)
            cfg = rag.load_config(ROOT / "config.toml", corpus=corpus, index=Path(work) / lang / "index")
            assistant = rag.Assistant(cfg, embedder=embedder)
            embedder = assistant.embedder
            assistant.build_index()
            reports[lang] = evaluation.run_eval(assistant, answerable + unanswerable, model=args.model)
    minutes = (time.perf_counter() - started) / 60

    model = next(iter(reports.values()))["meta"]["model"]
    command = f"python bench/refusal.py --questions {args.questions} --langs {' '.join(args.langs)}"
    if args.model:
        command += f" --model {args.model}"
    lines = [
        "## Refusal beyond the dev set (`bench/refusal.py`)",
        "",
        f"- Command: `{command}`; run time {minutes:.1f} min; {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- Chat model: {model}; load average at start {' / '.join(f'{x:.1f}' for x in load)}",
        f"- Corpus: the English XQuAD paragraphs without every {HOLD_OUT_EVERY}th article; questions about the "
        f"held-out articles are unanswerable; {args.questions} of each kind per question language",
        "",
        "| question language | answerable: answered | precision (correct / given) | citing the gold paragraph | "
        "key accuracy | unanswerable: refused (refusal recall) | refusal precision | answerable refused, the fact "
        "among the closest matches | modes, answerable | modes, unanswerable |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lang, report in reports.items():
        rows = report["rows"]
        good = [r for r in rows if r["answerable"]]
        bad = [r for r in rows if not r["answerable"]]
        overall = report["overall"]
        answered = sum(not r["refused"] for r in good)
        refused = sum(r["refused"] for r in bad)
        given = [r for r in rows if not r["refused"]]
        correct = sum(1 for r in given if r["correct"])
        shown = [r for r in good if r["refused"]]
        lines.append(
            f"| {lang} (paragraphs en) | {answered} / {len(good)} | {_share(correct, len(given))} | "
            f"{overall['cites_gold']:.0%} | {overall['key_accuracy']:.0%} | {refused} / {len(bad)} "
            f"({overall['refusal_recall']:.0%}) | {overall['refusal_precision']:.0%} | "
            f"{_share(sum(1 for r in shown if r['closest_holds_fact']), len(shown))} | {mode_counts(good)} | "
            f"{mode_counts(bad)} |"
        )
    lines += [
        "",
        "Precision: answers given that carry the gold span and cite its paragraph / answers given (an answer to an "
        "unanswerable question is given and not correct). Citing the gold paragraph and key accuracy are shares of "
        "all answerable questions (a refusal counts as a miss). Refusal precision: the share of refusals that were "
        "right. The last figure counts the answerable questions refused whose closest matches (shown under the "
        "refusal) hold the gold span in a sentence of the gold paragraph.",
    ]
    publish("REFUSAL", lines, args.results)


if __name__ == "__main__":
    main()
