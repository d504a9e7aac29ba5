"""Answer precision and coverage at the configured confidence threshold, and the risk-coverage curve behind it.

    .venv/bin/python bench/answers.py [--sets seeds ntrex] [--models quality] [--limit N]
    .venv/bin/python bench/answers.py --from-json      # re-render from bench/out/answers-<set>-<model>.json

Question sets: "seeds" (../shared/eval/seeds_dev.jsonl over the configured corpus), "ntrex" (NTREX-QA: the
mixed-language newsroom written by rag.evaluation.prepare_ntrex_qa into a cache folder, with its own index) and
"heldout" (bench/questions/seeds_heldout.jsonl over the configured corpus: questions of the seeds' kinds written for
the benchmarks and never used to fit anything, so all of its rows count as report half) and "newsrooms" (each
answerable NTREX-QA question over a corpus of five articles of its story: its own and the four nearest to it, see
bench/question_sets.py; its fit half takes no part in the default threshold, its questions being NTREX-QA's). Every
question is asked once per chat model with `[answer] min_confidence = 0`, so that each row holds the would-be
answer and its confidence; the configured min_confidence (or --min-confidence) is then applied to the rows after
the fact. Writes the rows to bench/out/answers-<set>-<model>.json, the curve to bench/risk_coverage.png and the
ANSWERS block of bench/RESULTS.md (see bench/results_file.py). Metrics are reported per set, per half of the fixed
split by article (rag.evaluation.article_half: thresholds are picked on "fit" and judged on "report") and per
question language.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import question_sets  # noqa: E402
from results_file import mode_counts, publish  # noqa: E402

import rag  # noqa: E402
from rag import evaluation  # noqa: E402
from rag.errors import RagError  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
QUESTIONS = {
    "seeds": EVAL / "seeds_dev.jsonl",
    "ntrex": EVAL / "ntrex_qa_dev.jsonl",
    "heldout": ROOT / "bench" / "questions" / "seeds_heldout.jsonl",
    "newsrooms": EVAL / "ntrex_qa_dev.jsonl",  # its answerable questions, each over five articles of one story
}
SETS = tuple(QUESTIONS)
# Sets no threshold or weight is ever fitted on: every row is judged as report half, none takes part in a pick.
UNSEEN = frozenset({"heldout"})
# Sets whose fit half takes no part in the default threshold: the newsrooms ask NTREX-QA's questions again.
REPEATS = frozenset({"newsrooms"})
HALVES = ("fit", "report")
TARGET_PRECISION = 0.9  # the precision a threshold picked on the fit half must reach
NTREX_CACHE = Path(tempfile.gettempdir()) / "rag-eval" / "ntrex-qa"  # corpus/ and index/, reused between runs
OUT = ROOT / "bench" / "out"
ANSWER_CHARS = 140
HEADLINE = [  # label, decisions() key (or two keys), kind
    ("answers given", "answered", "int"),
    ("precision (correct / given)", "precision", "pct"),
    ("coverage (answerable answered)", "coverage", "pct"),
    ("unanswerable refused", "unanswerable_refused", "pct"),
    ("readable (in the question's language)", "readable", "pct"),
    ("answerable refused, the fact among the closest matches", "refusals_showing_fact", "pct"),
    ("latency p50 / p90", ("latency_p50", "latency_p90"), "secs"),
    ("of it, search and evidence p50 / p90", ("retrieval_p50", "retrieval_p90"), "secs"),
    ("translating, answers quoting another language, p50 / p90", ("translation_p50", "translation_p90"), "secs"),
]


# -- running ----------------------------------------------------------------------------------------------------
def question_parts(name: str, cfg: rag.Config, embedder) -> list[tuple[rag.Config, list[evaluation.EvalItem]]]:
    """The questions of a set, with the configuration (corpus and index) to answer them with: one part per
    corpus ("newsrooms" has one small corpus per answering article)."""
    items, _ = evaluation.load_items(QUESTIONS[name])
    if name in ("seeds", "heldout"):
        return [(cfg, items)]
    # The indexes are caches: one built with another embedding model or chunking is rebuilt, not an error.
    if name == "newsrooms":
        corpus, articles = question_sets.ntrex_articles()
        answerable = [item for item in items if item.gold]
        english = question_sets.english_vectors(corpus, articles, embedder)
        parts = question_sets.write_newsrooms(NTREX_CACHE / "newsrooms", answerable, corpus, articles, english)
        return [
            (
                cfg.with_overrides(
                    corpus={"path": str(folder)},
                    index={"path": str(folder.parent / "index"), "on_mismatch": "rebuild"},
                ),
                its,
            )
            for folder, its in parts
        ]
    corpus = NTREX_CACHE / "corpus"
    evaluation.prepare_ntrex_qa(EVAL / "ntrex_qa_corpus.json", EVAL / "ntrex_az_ru_en_docs.jsonl", corpus)
    index = {"path": str(NTREX_CACHE / "index"), "on_mismatch": "rebuild"}
    return [(cfg.with_overrides(corpus={"path": str(corpus)}, index=index), items)]


def question_set(name: str, cfg: rag.Config) -> tuple[rag.Config, list[evaluation.EvalItem]]:
    """The configuration and questions of a set asked over one corpus (every set but "newsrooms")."""
    if name == "newsrooms":
        raise ValueError("the newsrooms set spans many corpora: use question_parts")
    ((set_cfg, items),) = question_parts(name, cfg, embedder=None)
    return set_cfg, items


def run(sets: list[str], models: list[str], limit: int | None, command: str) -> list[dict]:
    """Ask every set with every model (min_confidence 0); write and return the reports, set by set."""
    cfg = rag.load_config(ROOT / "config.toml").with_overrides(answer={"min_confidence": 0.0})
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores; load average at start "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (latencies are pessimistic when it exceeds the cores)"
    )
    reports = []
    embedder = rag.Assistant(cfg).embedder  # the embedding model is loaded once for every set
    generators: dict[str, object] = {}  # and each chat model once
    for name in sets:
        parts = question_parts(name, cfg, embedder)
        for model in models:
            print(f"{name}: answering with {model} ...", file=sys.stderr)
            if model not in generators:
                generators[model] = rag.Assistant(cfg, embedder=embedder).generator(model)
                # Load the model (and llama.cpp's buffers) outside the timings, as a running app would have.
                list(generators[model].chat([{"role": "user", "content": "Hello"}], max_tokens=2))
            part_reports = []
            remaining = limit
            for part_cfg, items in parts:
                if remaining is not None and remaining < 1:
                    break
                part_cfg = part_cfg.with_overrides(generation={"model": model})
                assistant = rag.Assistant(part_cfg, embedder=embedder, generator=generators[model])
                assistant.build_index()
                part_reports.append(
                    evaluation.run_eval(
                        assistant,
                        items,
                        model=model,
                        limit=remaining,
                        file=QUESTIONS[name],
                        progress=_progress(name, model),
                    )
                )
                remaining = None if remaining is None else remaining - len(part_reports[-1]["rows"])
            report = merged(part_reports)
            report["meta"]["bench"] = {"set": name, "model": model, "command": command, "machine": machine}
            evaluation.write_report(report, OUT / f"answers-{name}-{model}.json")
            reports.append(report)
    return reports


def merged(reports: list[dict]) -> dict:
    """One report from the reports of a set's parts: their rows together, summarised again."""
    if len(reports) == 1:
        return reports[0]
    rows = [row for report in reports for row in report["rows"]]
    meta = dict(reports[0]["meta"], questions=len(rows), corpus=f"{len(reports)} corpora")
    meta["seconds"] = round(sum(report["meta"]["seconds"] for report in reports), 2)
    languages = sorted({row["lang"] for row in rows})
    return {
        "meta": meta,
        "overall": evaluation.summarise(rows),
        "by_lang": {lang: evaluation.summarise([r for r in rows if r["lang"] == lang]) for lang in languages},
        "rows": rows,
    }


def _progress(name: str, model: str):
    def show(done: int, total: int) -> None:
        print(f"\r  {name} / {model}: {done} / {total}", end="\n" if done == total else "", file=sys.stderr)

    return show


def load_reports(paths: list[Path]) -> list[dict]:
    reports = []
    for path in paths:
        if not path.is_file():
            raise RagError(f"{path} not found: run bench/answers.py without --from-json first, or name the files.")
        report = json.loads(path.read_text(encoding="utf-8"))
        bench = report["meta"].setdefault("bench", {})
        # A report of `rag eval` has no bench section: it is named after its file.
        set_name, _, model = path.stem.removeprefix("answers-").partition("-")
        bench.setdefault("set", set_name)
        bench.setdefault("model", model or report["meta"].get("model") or "?")
        reports.append(report)
    return reports


# -- judging ----------------------------------------------------------------------------------------------------
class Column(NamedTuple):
    set: str  # with the model in brackets when there are several
    half: str  # "fit", "report" or "all"
    report: dict
    rows: list[dict]

    @property
    def label(self) -> str:
        return f"{self.set} {self.half}"


def columns(reports: list[dict]) -> list[Column]:
    """Every set's halves, then the whole set."""
    several = len({r["meta"]["bench"]["model"] for r in reports}) > 1
    found = []
    for report in reports:
        bench = report["meta"]["bench"]
        name = f"{bench['set']} ({bench['model']})" if several else bench["set"]
        found += [Column(name, half, report, _half(report, half)) for half in HALVES if _half(report, half)]
        found.append(Column(name, "all", report, report["rows"]))
    return found


def _half(report: dict, half: str) -> list[dict]:
    """The rows of a half; a set in UNSEEN has no fit half, all its rows are judged as report half."""
    if report["meta"]["bench"]["set"] in UNSEEN:
        return report["rows"] if half == "report" else []
    return [r for r in report["rows"] if r.get("half") == half]


def pick(report: dict) -> evaluation.CurvePoint | None:
    """The threshold chosen on the fit half for TARGET_PRECISION."""
    return evaluation.choose_operating_point(evaluation.risk_coverage(_half(report, "fit")), TARGET_PRECISION)


def at_threshold(rows: list[dict], threshold: float) -> list[dict]:
    """The rows as `[answer] min_confidence = threshold` would have left them: answers below it become refusals."""
    return [r if evaluation.given(r, threshold) or r["refused"] else {**r, "mode": "refused"} for r in rows]


# -- output -----------------------------------------------------------------------------------------------------
def _cell(metrics: dict, key, kind: str) -> str:
    if kind == "secs":
        a, b = (metrics.get(k) for k in key)
        return "n/a" if a is None else f"{a:.2f} s / {b:.2f} s"
    value = metrics.get(key)
    if value is None:
        return "n/a"
    return f"{value:.0%}" if kind == "pct" else str(value)


def _point(metrics: dict) -> str:
    return ", ".join(
        f"{name} {_cell(metrics, key, 'pct')}"
        for name, key in (
            ("precision", "precision"),
            ("coverage", "coverage"),
            ("unanswerable refused", "unanswerable_refused"),
        )
    )


def _questions(rows: list[dict]) -> str:
    return f"{sum(1 for r in rows if r['answerable'])} / {sum(1 for r in rows if not r['answerable'])}"


def render(reports: list[dict], threshold: float, command: str) -> str:
    first = reports[0]["meta"]
    bench = first["bench"]
    ran = first.get("date", "?")
    seconds = sum(r["meta"].get("seconds") or 0 for r in reports)
    lines = ["## Answers at the confidence threshold (`bench/answers.py`)", ""]
    if bench.get("command") and command != bench["command"]:
        lines.append(f"- Command: `{bench['command']}`; re-rendered from its rows with `{command}`")
    else:
        lines.append(f"- Command: `{command}`")
    lines.append(
        f"- Run {ran}; answering took {seconds / 60:.1f} min; chat model "
        + ", ".join(dict.fromkeys(f"{r['meta']['bench']['model']} ({r['meta']['model']})" for r in reports))
    )
    if bench.get("machine"):
        lines.append(f"- Machine: {bench['machine']}")
    lines += [
        f"- Asked with `[answer] min_confidence = 0`; the figures below apply min_confidence = {threshold:.2f} to the "
        "rows afterwards (an answer below it counts as refused). Halves: the fixed split by article "
        "(`rag.evaluation.article_half`).",
        "",
    ]
    cols = columns(reports)
    metrics = [evaluation.decisions(c.rows, threshold) for c in cols]
    lines += ["| metric | " + " | ".join(c.label for c in cols) + " |", "|---|" + "---|" * len(cols)]
    lines.append("| questions (answerable / not) | " + " | ".join(_questions(c.rows) for c in cols) + " |")
    for label, key, kind in HEADLINE:
        lines.append(f"| {label} | " + " | ".join(_cell(m, key, kind) for m in metrics) + " |")

    lines += [
        "",
        f"Per question language (min_confidence {threshold:.2f}):",
        "",
        "| set | half | language | questions (answerable / not) | "
        + " | ".join(label for label, _, _ in HEADLINE[1:])
        + " |",
        "|---|---|---|---|" + "---|" * len(HEADLINE[1:]),
    ]
    for c in cols:
        if c.half == "all":
            continue
        for lang in sorted({r["lang"] for r in c.rows}):
            group = [r for r in c.rows if r["lang"] == lang]
            m = evaluation.decisions(group, threshold)
            lines.append(
                f"| {c.set} | {c.half} | {lang} | {_questions(group)} | "
                + " | ".join(_cell(m, key, kind) for _, key, kind in HEADLINE[1:])
                + " |"
            )

    lines += [
        "",
        f"Thresholds picked on the fit half: highest coverage at precision >= {TARGET_PRECISION:.0%}; and most right"
        " answers minus twice the wrong ones (the rule for the default):",
        "",
    ]
    for report in reports:
        name = f"{report['meta']['bench']['set']} ({report['meta']['bench']['model']})"
        chosen = pick(report)
        if report["meta"]["bench"]["set"] in UNSEEN:
            lines.append(f"- {name}: never fitted on; every question counts as report half")
            continue
        if chosen is None:
            lines.append(f"- {name}: no answers on the fit half, no threshold")
            continue
        met = "" if chosen.precision >= TARGET_PRECISION else f"; no threshold reaches {TARGET_PRECISION:.0%}"
        fit = evaluation.decisions(_half(report, "fit"), chosen.threshold)
        held = evaluation.decisions(_half(report, "report"), chosen.threshold)
        lines.append(
            f"- {name}: min_confidence {chosen.threshold:.2f}{met} (configured {threshold:.2f}). "
            f"Fit half: {_point(fit)}. Report half at it: {_point(held)}."
        )
        net = evaluation.best_net_threshold(_half(report, "fit"))
        if net is not None:
            fit = evaluation.decisions(_half(report, "fit"), net)
            held = evaluation.decisions(_half(report, "report"), net)
            lines.append(
                f"- {name}, right answers minus twice the wrong ones, most on the fit half: "
                f"min_confidence {net:.2f}. Fit half: {_point(fit)}. Report half at it: {_point(held)}."
            )

    picked_from = [report for report in reports if report["meta"]["bench"]["set"] not in REPEATS]
    every_fit = [r for report in picked_from for r in _half(report, "fit")]
    net = evaluation.best_net_threshold(every_fit)
    if net is not None and len(picked_from) > 1:
        verdict = "the default's value" if abs(net - threshold) < 0.005 else f"the default is {threshold:.2f}"
        lines.append(
            f"- All sets' fit halves together (but {', '.join(sorted(REPEATS))}, whose questions are NTREX-QA's), "
            f"right answers minus twice the wrong ones, most at min_confidence {net:.2f}: {verdict}."
        )
    lines += ["", f"Answer modes at min_confidence {threshold:.2f} (as asked, with min_confidence 0):", ""]
    for report in reports:
        rows = report["rows"]
        lines.append(
            f"- {report['meta']['bench']['set']} ({report['meta']['bench']['model']}): "
            f"{mode_counts(at_threshold(rows, threshold))} ({mode_counts(rows)})"
        )

    shown = next((r for r in reports if r["meta"]["bench"]["set"] == "ntrex"), reports[0])
    lines += [
        "",
        f"Per question, {shown['meta']['bench']['set']} report half ({shown['meta']['bench']['model']}); "
        f"the answer as asked with min_confidence 0, given when its confidence reaches {threshold:.2f}:",
        "",
        "| id | lang | mode | given | correct | confidence | answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in _half(shown, "report"):
        text = row["answer"].replace("|", "\\|").replace("\n", " ")
        confidence = "n/a" if row.get("confidence") is None else f"{row['confidence']:.2f}"
        lines.append(
            f"| {row['id']} | {row['lang']} | {row['mode']} | {'yes' if evaluation.given(row, threshold) else 'no'} | "
            f"{'yes' if row.get('correct') else 'no'} | {confidence} | {text[:ANSWER_CHARS]} |"
        )
    lines += [
        "",
        "Correct: answerable, answered, every key fact in the answer text, and a gold article cited. Readable: the "
        "answer text without its [n] markers is detected as the question's language (or is under 4 words). Latency: "
        "total seconds per question, refusals included. The curve is in `bench/risk_coverage.png`.",
    ]
    return "\n".join(lines) + "\n"


def plot(reports: list[dict], threshold: float, path: Path) -> None:
    """Precision against coverage, one line per set / half, with min_confidence ("o") and the threshold picked on
    the fit half ("x") marked on each."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RagError(
            "The risk-coverage plot needs matplotlib: "
            ".venv/bin/pip install -r requirements-bench.txt -c constraints.txt"
        ) from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    for c in columns(reports):
        if c.half == "all":
            continue
        points = [p for p in evaluation.risk_coverage(c.rows) if p.precision is not None and p.coverage is not None]
        if not points:
            continue
        chosen = pick(c.report)
        held = evaluation.decisions(c.rows, chosen.threshold) if chosen is not None else None
        label = c.label
        if held is not None:
            label += f"; fit pick {chosen.threshold:.2f}: " + (
                "no answers"
                if held["precision"] is None
                else f"precision {held['precision']:.0%}, coverage {_cell(held, 'coverage', 'pct')}"
            )
        (line,) = ax.plot([p.coverage for p in points], [p.precision for p in points], label=label)
        colour = line.get_color()
        here = evaluation.decisions(c.rows, threshold)
        if here["precision"] is not None:
            ax.plot([here["coverage"]], [here["precision"]], "o", color=colour, markersize=8)
        if held is not None and held["precision"] is not None:
            at = (held["coverage"], held["precision"])
            ax.plot([at[0]], [at[1]], "x", color=colour, markersize=10)
            ax.annotate(
                f"{chosen.threshold:.2f}", at, textcoords="offset points", xytext=(5, 5), fontsize=8, color=colour
            )
    ax.axhline(TARGET_PRECISION, color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlim=(-0.02, 1.03),
        ylim=(-0.02, 1.03),
        xlabel="coverage (answerable questions answered)",
        ylabel="precision (correct / answers given)",
        title=f"Risk-coverage: o = min_confidence {threshold:.2f}, x = threshold picked on the fit half "
        f"(precision >= {TARGET_PRECISION:.0%})",
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no answers given", ha="center", transform=ax.transAxes)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--models", nargs="+", default=["quality"], help="chat models (default: quality)")
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions of each set")
    parser.add_argument(
        "--from-json",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="re-render from saved rows, asking nothing (default files: bench/out/answers-<set>-<model>.json)",
    )
    parser.add_argument("--min-confidence", type=float, default=None, help="default: [answer] min_confidence")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--png", type=Path, default=ROOT / "bench" / "risk_coverage.png")
    args = parser.parse_args()
    command = " ".join(["python bench/answers.py", *sys.argv[1:]])
    threshold = args.min_confidence
    if threshold is None:
        threshold = rag.load_config(ROOT / "config.toml").answer.min_confidence
    try:
        if args.from_json is None:
            reports = run(args.sets, args.models, args.limit, command)
        else:
            files = args.from_json or [OUT / f"answers-{s}-{m}.json" for s in args.sets for m in args.models]
            reports = load_reports(files)
        plot(reports, threshold, args.png)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    publish("ANSWERS", render(reports, threshold, command).splitlines(), args.results)
    print(f"wrote {args.results} and {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
