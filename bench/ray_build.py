"""Embedding on a local Ray (rag/distributed.py) against the in-process encoder, on the same cores and texts.

    .venv/bin/python bench/ray_build.py                 # NTREX-QA passages x4 (2,128), about 4 minutes on 2 cores
    .venv/bin/python bench/ray_build.py --copies 1 --workers 2

The texts are the passages of the NTREX-QA newsroom (107 articles in az, ru and en, chunked and given their
headline as the indexer does), repeated --copies times so the run is long next to Ray's fixed costs. First the
in-process `Embedder.encode_passages` (all cores, after a warm-up call), then the same texts through
`run_embedding` on a local Ray with --workers actors (each with its share of the cores). Reports passages per
second for both and their ratio, Ray's start-up (`ray.init`) apart, the actors' start-up (worker processes and
model loads) apart from their steady encoding, each actor's throughput, whether the vectors are bit-identical,
the peak memory of each side, and the same comparison for reading and chunking the 107 files. Prints a
Markdown table as the RAY block of bench/RESULTS.md and writes bench/out/ray_build.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from results_file import publish  # bench/ is on sys.path when this file runs as a script

import rag
from rag.chunking import chunk_spans
from rag.distributed import ray_session, read_and_chunk, run_embedding
from rag.documents import load_document
from rag.embeddings import Embedder
from rag.evaluation import prepare_ntrex_qa
from rag.indexer import embedding_text

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
OUT = REPO / "bench" / "out"
MAX_BYTES = 50 * 1024 * 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class PeakRss:
    """Peak resident memory, sampled every 0.1 s: of this process, or (`children`) of the processes it started
    (Ray's GCS, raylet, agents and workers) summed. Pages shared between processes count in each."""

    def __init__(self, children: bool) -> None:
        import psutil  # a bench extra (requirements-bench.txt)

        self._process, self._children = psutil.Process(), children
        self.peak_mb = self._sample_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample_mb(self) -> float:
        processes = self._process.children(recursive=True) if self._children else [self._process]
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except Exception:  # a worker that exited between listing and reading (psutil.NoSuchProcess)
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mb = max(self.peak_mb, self._sample_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mb)


def ntrex_files(folder: Path) -> list[tuple[str, str]]:
    names = prepare_ntrex_qa(EVAL / "ntrex_qa_corpus.json", EVAL / "ntrex_az_ru_en_docs.jsonl", folder)
    return [(str(folder / name), name) for name in sorted(names)]


def passages(files: list[tuple[str, str]], root: Path, size: int, overlap: int) -> list[str]:
    texts = []
    for path, _ in files:
        doc = load_document(Path(path), root, MAX_BYTES)
        texts += [embedding_text(doc, doc.text[s:e]) for s, e in chunk_spans(doc.text, size, overlap)]
    return texts


def measure(copies: int, workers: int) -> dict:
    cfg = rag.load_config({})
    with tempfile.TemporaryDirectory(prefix="rag-ray-bench-") as work:
        root = Path(work)
        files = ntrex_files(root)
        began = time.perf_counter()
        one_copy = passages(files, root, cfg.chunking.size, cfg.chunking.overlap)
        read_in_process = time.perf_counter() - began
        texts = one_copy * copies
        result: dict = {"files": len(files), "passages": len(texts), "copies": copies, "workers": workers}
        result["read"] = {"in_process_s": round(read_in_process, 2)}

        log(f"in-process: {len(texts)} passages")
        memory = PeakRss(children=False)
        began = time.perf_counter()
        embedder = Embedder(cfg.models)
        load = time.perf_counter() - began
        embedder.encode_passages(["warm-up"])  # the first call pays one-off allocations
        cpu, began = time.process_time(), time.perf_counter()
        expected = embedder.encode_passages(texts)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        result["in_process"] = {
            "model_load_s": round(load, 2),
            "seconds": round(seconds, 2),
            "per_s": round(len(texts) / seconds, 1),
            "cpu_per_wall": round(cpu / seconds, 2),
            "peak_rss_mb": memory.stop(),
        }
        del embedder
        gc.collect()
        log(f"in-process: {result['in_process']['per_s']} passages/s")

        memory = PeakRss(children=True)
        began = time.perf_counter()
        with ray_session(None, workers):
            started = time.perf_counter() - began
            log(f"ray: started in {started:.1f} s")
            began = time.perf_counter()
            read = read_and_chunk(files, str(root), MAX_BYTES, cfg.chunking.size, cfg.chunking.overlap, workers=workers)
            result["read"]["ray_s"] = round(time.perf_counter() - began, 2)
            assert sum(len(r.spans) for r in read) == len(one_copy), "Ray chunked the corpus differently"
            run = run_embedding(cfg.models, texts, workers=workers)
        result["ray_peak_rss_mb"] = memory.stop()
    slowest = max(run.busy_seconds_by_worker.values())
    result["ray"] = {
        "start_s": round(started, 2),
        "seconds": round(run.seconds, 2),
        "per_s": round(len(texts) / run.seconds, 1),
        "actor_start_s": round(run.seconds - slowest, 2),  # worker processes, imports and model loads, mostly
        "steady_per_s": round(len(texts) / slowest, 1),
        "with_start_per_s": round(len(texts) / (run.seconds + started), 1),
        "workers": [
            {"worker": w, "passages": n, "busy_s": round(run.busy_seconds_by_worker[w], 2)}
            for w, n in sorted(run.rows_by_worker.items())
        ],
    }
    result["bit_identical"] = bool(np.array_equal(run.vectors, expected))
    result["max_abs_diff"] = float(np.abs(run.vectors - expected).max())
    return result


def render(r: dict, command: str, machine: str) -> list[str]:
    local, ray, n = r["in_process"], r["ray"], r["passages"]
    loaded = round(n / (local["seconds"] + local["model_load_s"]), 1)  # like Ray's run: model load included

    def versus(ray_per_s: float, local_per_s: float) -> str:
        return f"{ray_per_s} (time {local_per_s / ray_per_s:.2f}x in-process)"

    workers = "; ".join(f"{w['passages']}, {w['busy_s']}, {w['passages'] / w['busy_s']:.1f}" for w in ray["workers"])
    ratio = loaded / ray["per_s"]
    return [
        f"## Ray Data embedding, local, {r['workers']} workers (`bench/ray_build.py`)",
        "",
        f"- Command: `{command}`; {machine}",
        f"- Texts: the {n // r['copies']} passages of the NTREX-QA newsroom ({r['files']} articles) x{r['copies']}; "
        f"vectors bit-identical to in-process: {'yes' if r['bit_identical'] else 'no'} "
        f"(max abs diff {r['max_abs_diff']:.1e}).",
        "",
        "| | in-process | Ray local |",
        "|---|---|---|",
        f"| passages/s, encoding only (Ray: once every actor is up) | {local['per_s']} "
        f"| {versus(ray['steady_per_s'], local['per_s'])} |",
        f"| passages/s, model load(s) included (Ray: actors started) | {loaded} | {versus(ray['per_s'], loaded)} |",
        f"| passages/s, `ray.init` included too | {loaded} | {versus(ray['with_start_per_s'], loaded)} |",
        f"| start-up, s | model load {local['model_load_s']} | `ray.init` {ray['start_s']}; "
        f"actors (processes, imports, model loads) {ray['actor_start_s']} |",
        f"| per worker: passages, busy s, passages/s | one process, CPU/wall {local['cpu_per_wall']} | {workers} |",
        f"| peak RSS, MB | {local['peak_rss_mb']} (the process) | {r['ray_peak_rss_mb']} (Ray's processes, "
        "the driver not counted) |",
        f"| reading and chunking the {r['files']} files, s | {r['read']['in_process_s']} | {r['read']['ray_s']} |",
        "",
        f"- Target, Ray local within 1.3x of in-process (model loads included, `ray.init` not): "
        f"{'met' if ratio <= 1.3 else 'missed'} ({ratio:.2f}x).",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="times the NTREX-QA passages are repeated")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors")
    parser.add_argument("--json", type=Path, default=OUT / "ray_build.json")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python bench/ray_build.py", *sys.argv[1:]])
    machine = (
        f"run {datetime.now(UTC).isoformat(timespec='seconds')}; {platform.machine()}, {os.cpu_count()} cores, "
        "load average at start " + "/".join(f"{x:.1f}" for x in os.getloadavg())
    )
    result = measure(args.copies, args.workers)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": command, "machine": machine, **result}, indent=2) + "\n")
    publish("RAY", render(result, command, machine), REPO / "bench" / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
