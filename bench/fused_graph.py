"""The fp32 ONNX graph with onnxruntime's fused transformer operators against the plain export, in one run.

    .venv/bin/python bench/fused_graph.py [--rounds 5]

What `onnx_export.fuse_operators` is for: the same vectors from fewer, larger kernels. Exports the plain fp32 graph
of the prepared e5 model to a temporary folder (the export before fusion), loads it beside the installed "onnx"
graph, and embeds the same passages with each, alternating, `--rounds` times: 600-character passages of the first
40 NTREX articles in az, ru and en, batch 32, 2 threads. Prints the median seconds, passages per second, their
ratio and the cosine between the two graphs' vectors. Nothing is written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag  # noqa: E402
from rag.models import resolve_embedding_model, resolve_onnx_model  # noqa: E402
from rag.onnx_encoder import OnnxEncoder  # noqa: E402
from rag.onnx_export import MODEL_FILE, export_graph  # noqa: E402

NTREX = ROOT.parent / "shared" / "eval" / "ntrex_az_ru_en_docs.jsonl"


def passages(articles: int = 40, size: int = 600, per_article: int = 3) -> list[str]:
    texts = []
    for line in NTREX.read_text(encoding="utf-8").splitlines()[:articles]:
        doc = json.loads(line)
        for lang in ("az", "ru", "en"):
            body = doc[lang]
            texts += [f"passage: {body[i : i + size]}" for i in range(0, min(len(body), size * per_article), size)]
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    models = replace(rag.load_config(ROOT / "config.toml").models, backend="onnx")
    source = Path(resolve_embedding_model(models))
    texts = passages()
    with tempfile.TemporaryDirectory() as work:
        plain = Path(work) / MODEL_FILE
        export_graph(source, plain)
        graphs = {"plain export": plain, "fused (installed)": resolve_onnx_model(models)}
        encoders = {
            name: OnnxEncoder(path, source / "tokenizer.json", max_tokens=512, threads=2, batch_size=32)
            for name, path in graphs.items()
        }
        for encoder in encoders.values():
            encoder.encode(texts[:32])  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in encoders}
        vectors = {}
        for round_ in range(args.rounds):
            order = list(encoders) if round_ % 2 == 0 else list(reversed(encoders))
            for name in order:
                started = time.perf_counter()
                vectors[name] = encoders[name].encode(texts)
                seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    print(f"{len(texts)} passages, {args.rounds} alternating rounds, medians:")
    for name, median in medians.items():
        print(f"  {name}: {median:.2f} s, {len(texts) / median:.1f} passages/s")
    plain_s, fused_s = medians["plain export"], medians["fused (installed)"]
    cosines = (vectors["plain export"] * vectors["fused (installed)"]).sum(axis=1)
    print(f"fused / plain speed: {plain_s / fused_s:.2f}x")
    print(f"cosine between their vectors: mean {cosines.mean():.7f}, lowest {cosines.min():.7f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
