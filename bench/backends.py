"""Embedding backends side by side: speed, memory and retrieval quality of "torch", "onnx" and "onnx-int8".

    .venv/bin/python bench/backends.py                       # all three, about 10 minutes on 2 cores
    .venv/bin/python bench/backends.py --backends torch onnx-int8

Each backend runs in its own child process (so its peak memory is its own), one after the other, on the same
texts: a Reuters sample (the first 1,000 articles with a body, chunked as the indexer does) and the NTREX
articles in az, ru and en. For each it reports passages per second and CPU per wall second while embedding,
the time to load the model, peak RSS, the time to embed one question, NTREX title -> article recall@1 / MRR
in the five directions, hit@1 on the NTREX-QA dev questions, and how many of those searches put the gold first
with one backend and not with torch. Writes the BACKENDS block of
bench/RESULTS.md and bench/out/backends.json. The ONNX graphs must be prepared first
(`python -m rag models` with `[models] backend` set, or this script prepares them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import question_sets  # bench/ is on sys.path when this file runs as a script
from question_sets import QuestionSet, bench_config, metrics
from results_file import publish
from retrieval import DIRECTIONS, write_ntrex_corpus

import rag
from rag.chunking import chunk_spans
from rag.embeddings import Embedder
from rag.evaluation import EvalItem
from rag.models import prepare_models

REPO = Path(__file__).resolve().parents[1]
EVAL = question_sets.EVAL
OUT = REPO / "bench" / "out"
BACKENDS = ("torch", "onnx", "onnx-int8")
REUTERS_ARTICLES = 1000
LATENCY_QUESTIONS = 60


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_encode(embedder: Embedder, texts: list[str]) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    embedder.encode_passages(texts)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {
        "passages": len(texts),
        "seconds": round(wall, 2),
        "per_s": round(len(texts) / wall, 1),
        "cpu_per_wall": round(cpu / wall, 2),
    }


def reuters_sample() -> list[str]:
    """The passages of the first REUTERS_ARTICLES Reuters articles with a body, chunked as the indexer does."""
    cfg = rag.load_config({})
    texts: list[str] = []
    articles = 0
    with open(EVAL / "reuters21578_en_news.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if not row["text"].strip():
                continue
            body = f"{row['title'].strip()}\n\n{row['text']}"
            texts += [body[s:e] for s, e in chunk_spans(body, cfg.chunking.size, cfg.chunking.overlap)]
            articles += 1
            if articles == REUTERS_ARTICLES:
                break
    return texts


class PeakRss:
    """Peak resident memory of this process, sampled every 0.1 s (psutil, a bench extra). Not ru_maxrss: Linux
    carries it over exec from the parent, which has loaded the PyTorch model to prepare the ONNX graphs."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak_mb = self._process.memory_info().rss / 2**20
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def one_backend(backend: str, work: Path) -> dict:
    """Everything measured for one backend, in this (child) process."""
    memory = PeakRss()
    cfg = rag.load_config({})
    models = replace(cfg.models, backend=backend)
    started = time.perf_counter()
    embedder = Embedder(models)
    result: dict = {"backend": backend, "load_seconds": round(time.perf_counter() - started, 2)}
    embedder.encode_passages(["passage: warm-up"])  # first call pays one-off allocation in both runtimes
    result["reuters"] = timed_encode(embedder, reuters_sample())
    log(f"{backend}: Reuters sample {result['reuters']['per_s']} passages/s")

    rows = [json.loads(line) for line in (EVAL / "ntrex_az_ru_en_docs.jsonl").read_text(encoding="utf-8").splitlines()]
    result["ntrex_build"], result["directions"], result["first_right"] = {}, {}, {}
    for target in ("az", "ru", "en"):
        corpus, index = work / backend / f"ntrex-{target}", work / backend / f"ntrex-{target}-index"
        doc_of_source = write_ntrex_corpus(rows, target, corpus)
        target_cfg = bench_config(corpus, index)
        target_cfg = replace(target_cfg, models=models)
        assistant = rag.Assistant(target_cfg, embedder=embedder)
        wall, cpu = time.perf_counter(), cpu_seconds()
        summary = assistant.build_index()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        result["ntrex_build"][target] = {
            "passages": summary.passages,
            "seconds": round(wall, 2),
            "per_s": round(summary.passages / wall, 1),
            "cpu_per_wall": round(cpu / wall, 2),
        }
        for source in [s for s, t in DIRECTIONS if t == target]:
            items = [
                EvalItem(id=row["doc_id"], lang=source, question=row[f"title_{source}"], gold=[name], keys=[])
                for name, row in zip(doc_of_source, rows, strict=True)
            ]
            ranks = QuestionSet(f"{source}->{target}", items, target_cfg, embedder).ranks({})
            result["first_right"][f"{source}->{target}"] = first_right(ranks)
            m = metrics(ranks)
            result["directions"][f"{source}->{target}"] = {
                "recall@1": round(m["hit@1"] / m["questions"], 4),
                "mrr": m["mrr"],
            }
    log(f"{backend}: NTREX R@1 " + ", ".join(f"{d} {f['recall@1']:.3f}" for d, f in result["directions"].items()))

    ntrex_corpus, ntrex_index = work / backend / "ntrex-qa", work / backend / "ntrex-qa-index"
    rag.evaluation.prepare_ntrex_qa(EVAL / "ntrex_qa_corpus.json", EVAL / "ntrex_az_ru_en_docs.jsonl", ntrex_corpus)
    qa_cfg = replace(bench_config(ntrex_corpus, ntrex_index), models=models)
    rag.Assistant(qa_cfg, embedder=embedder).build_index()
    items = question_sets.answerable(rag.evaluation.load_items(EVAL / "ntrex_qa_dev.jsonl")[0])
    ranks = QuestionSet("NTREX-QA dev", items, qa_cfg, embedder).ranks({})
    result["first_right"]["NTREX-QA dev"] = first_right(ranks)
    result["ntrex_qa"] = metrics(ranks)
    log(f"{backend}: NTREX-QA hit@1 {result['ntrex_qa']['hit@1']}/{result['ntrex_qa']['questions']}")

    latencies = []
    for item in items[:LATENCY_QUESTIONS]:
        started = time.perf_counter()
        embedder.encode_queries([item.question])
        latencies.append(time.perf_counter() - started)
    result["query_ms_p50"] = round(statistics.median(latencies) * 1000, 1)
    result["peak_rss_mb"] = round(memory.stop(), 1)
    return result


def first_right(ranks: list[int | None]) -> str:
    """Which searches put the gold first, one character each ("1" or "0"), to compare backends search by search."""
    return "".join("1" if rank == 1 else "0" for rank in ranks)


def changed_first_places(figures: dict, reference: dict) -> str:
    """How many searches put the gold first with one backend and not with the other: net hit counts hide flips
    that cancel out, and this counts them."""
    pairs = [(a, b) for key in reference for a, b in zip(figures[key], reference[key], strict=True)]
    return f"{sum(a != b for a, b in pairs)} of {len(pairs)}"


def render(results: dict) -> list[str]:
    by = {r["backend"]: r for r in results["backends"]}
    base = by.get("torch")
    lines = [
        "## Embedding backends (`bench/backends.py`)",
        "",
        f"- Command: `{results['command']}`; run {results['date']}; {results['machine']}",
        "- Each backend in its own process, one after the other, on the same texts. Speed is passages per second "
        "while embedding (CPU/wall in brackets: about the core count when the run had the machine to itself).",
        "",
        "| | " + " | ".join(by) + " |",
        "|---|" + "---|" * len(by),
    ]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in by.values()) + " |")

    def speed(figures: dict, ref: dict | None) -> str:
        ratio = f", {figures['per_s'] / ref['per_s']:.2f}x torch" if ref else ""
        return f"{figures['per_s']} ({figures['cpu_per_wall']}){ratio}"

    row(
        f"Reuters sample ({by[next(iter(by))]['reuters']['passages']} passages), passages/s",
        lambda r: speed(r["reuters"], base["reuters"] if base else None),
    )
    for target in ("az", "ru", "en"):
        row(
            f"NTREX {target} index build, passages/s",
            lambda r, t=target: speed(r["ntrex_build"][t], base["ntrex_build"][t] if base else None),
        )
    row("model load, s", lambda r: f"{r['load_seconds']}")
    row("one question embedded, p50 ms", lambda r: f"{r['query_ms_p50']}")
    row("peak RSS of the process, MB", lambda r: f"{r['peak_rss_mb']:.0f}")
    for direction in DIRECTIONS:
        d = f"{direction[0]}->{direction[1]}"
        row(
            f"NTREX title {d} R@1 / MRR",
            lambda r, d=d: f"{r['directions'][d]['recall@1']:.3f} / {r['directions'][d]['mrr']:.3f}",
        )
    row(
        "NTREX title R@1, mean of five",
        lambda r: f"{statistics.mean(f['recall@1'] for f in r['directions'].values()):.3f}",
    )
    row("NTREX-QA dev hit@1", lambda r: f"{r['ntrex_qa']['hit@1']}/{r['ntrex_qa']['questions']}")
    if base and all("first_right" in r for r in by.values()):
        row(
            "searches whose first result turns right or wrong vs torch (titles and NTREX-QA)",
            lambda r: changed_first_places(r["first_right"], base["first_right"]),
        )
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--one", choices=BACKENDS, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=OUT / "backends.json")
    parser.add_argument("--from-json", action="store_true", help="only re-render the block from --json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_backend(args.one, args.work)))
        return 0
    if args.from_json:
        results = json.loads(args.json.read_text(encoding="utf-8"))
    else:
        cache = rag.load_config({}).models.cache
        for backend in args.backends:
            if backend != "torch":
                prepare_models(cache, ["embedding"], backend=backend, log=log)
        results = {
            "command": " ".join(["python bench/backends.py", *sys.argv[1:]]),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average at start "
            + "/".join(f"{x:.1f}" for x in os.getloadavg()),
            "backends": [],
        }
        with tempfile.TemporaryDirectory(prefix="rag-backends-") as work:
            for backend in args.backends:
                log(f"{backend}: starting")
                done = subprocess.run(
                    [sys.executable, __file__, "--one", backend, "--work", work],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                )
                sys.stderr.write(done.stderr[-3000:] if done.returncode else "")
                if done.returncode:
                    raise SystemExit(f"{backend} failed ({done.returncode})")
                results["backends"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    publish("BACKENDS", render(results), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
