"""Answer quality and latency on the dev questions, per chat model, written into bench/RESULTS.md.

    .venv/bin/python bench/answers.py [--models quality fast] [--file ../shared/eval/seeds_dev.jsonl]

Runs `rag eval` (rag.evaluation.run_eval) once per model in one process, with the embedding model loaded once,
and replaces the ANSWERS block of bench/RESULTS.md (see bench/results_file.py). Raw reports go to
bench/out/answers-<model>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import mode_counts, write_block  # noqa: E402

import rag  # noqa: E402
from rag import evaluation  # noqa: E402

TARGETS = {  # model -> (first token p50, total p50) in seconds, from the issue
    "quality": (3.0, 12.0),
    "fast": (1.5, 6.0),
}
ROWS = [
    ("retrieval hit@1", "hit_at_1", "pct"),
    ("answers citing a gold source", "cites_gold", "pct"),
    ("citations outside the gold sources", "citations_outside_gold", "pct"),
    ("single-source questions citing outside gold", "single_source_outside_gold", "int"),
    ("key-fact accuracy", "key_accuracy", "pct"),
    ("refusal precision", "refusal_precision", "pct"),
    ("refusal recall", "refusal_recall", "pct"),
    ("answer sentences without a citation", "unsupported_sentences", "int"),
    ("time to first token p50 / p95", ("first_token_p50", "first_token_p95"), "secs"),
    ("total p50 / p95", ("total_p50", "total_p95"), "secs"),
]


def _cell(metrics: dict, key, kind: str) -> str:
    if kind == "secs":
        a, b = (metrics.get(k) for k in key)
        return "n/a" if a is None else f"{a:.2f} s / {b:.2f} s"
    value = metrics.get(key)
    if value is None:
        return "n/a"
    return f"{value:.0%}" if kind == "pct" else str(value)


def render(reports: dict[str, dict], command: str, seconds: float) -> str:
    models = list(reports)
    lines = [
        "## Answers (`rag eval` on the dev questions)",
        "",
        f"- Command: `{command}`; run time {seconds / 60:.1f} min; {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores; load average at start "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (latencies are pessimistic when it exceeds the cores)",
        "",
        "| metric | " + " | ".join(f"{m} ({reports[m]['meta']['model']})" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for label, key, kind in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(reports[m]["overall"], key, kind) for m in models) + " |")
    lines.append("| answer modes | " + " | ".join(mode_counts(reports[m]["rows"]) for m in models) + " |")
    lines += ["", "Targets:"]
    for m in models:
        overall = reports[m]["overall"]
        if m in TARGETS:
            first, total = TARGETS[m]
            for name, value, limit in (
                ("first token p50", overall.get("first_token_p50"), first),
                ("total p50", overall.get("total_p50"), total),
            ):
                verdict = "n/a" if value is None else ("met" if value <= limit else f"missed by {value - limit:.2f} s")
                lines.append(f"- {m}: {name} <= {limit} s: {verdict}")
        key_acc = overall.get("key_accuracy")
        lines.append(
            f"- {m}: key facts >= 90%: "
            + ("n/a" if key_acc is None else "met" if key_acc >= 0.9 else f"missed ({key_acc:.0%})")
        )
    lines += ["", "Per question (" + models[0] + "):", "", "| id | mode | key hit | answer |", "|---|---|---|---|"]
    for row in reports[models[0]]["rows"]:
        text = row["answer"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['id']} | {row['mode']} | {row['key_hit']} | {text[:160]} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["quality", "fast"])
    parser.add_argument("--file", default=str(ROOT.parent / "shared" / "eval" / "seeds_dev.jsonl"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    cfg = rag.load_config(ROOT / "config.toml")
    assistant = rag.Assistant(cfg)
    assistant.build_index()
    items, _ = evaluation.load_items(Path(args.file))
    reports = {}
    for model in args.models:
        print(f"evaluating {model} ...", file=sys.stderr)
        # Load the model (and llama.cpp's buffers) outside the timings, as a running app would have.
        list(assistant.generator(model).chat([{"role": "user", "content": "Hello"}], max_tokens=2))
        reports[model] = evaluation.run_eval(assistant, items, model=model, file=args.file)
        evaluation.write_report(reports[model], ROOT / "bench" / "out" / f"answers-{model}.json")
    command = "python bench/answers.py " + " ".join(sys.argv[1:])
    write_block("ANSWERS", render(reports, command.strip(), time.perf_counter() - started), Path(args.results))
    print(f"wrote {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
