"""Index engines side by side: FAISS (files, in process) and Milvus Lite, on the same index and questions.

    .venv/bin/python bench/engines.py                        # Reuters (about 41k passages), NTREX-QA, seeds
    .venv/bin/python bench/engines.py --reuters-limit 2000   # a quick run

Each corpus is indexed once with the FAISS engine (kept in --work, so a second run skips the embedding);
the Milvus generation is then written from the same vectors and the same BM25 index, so the two differ only
in the engine. For each engine, in one run:
- writing a generation (store.write_generation: FAISS files, or a Milvus collection with its indexes);
- hybrid search latency through Assistant.search (k=5) on 200 Reuters headlines, the engines alternating
  question by question so that machine noise falls on both alike;
- dense recall@10 against exact search (numpy over all vectors), for FLAT and for an HNSW collection;
- on the NTREX-QA dev and seeds dev questions: whether the top-5 sources are equal, and hit@1 / hit@5.
Writes the ENGINES block of bench/RESULTS.md and bench/out/engines.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from question_sets import EVAL, answerable, bench_config
from results_file import publish
from retrieval import (
    REUTERS,
    git_state,
    machine_info,
    md_table,
    percentiles_ms,
    read_jsonl,
    reuters_queries,
    timed,
    write_reuters_corpus,
)

import rag
from rag import store
from rag.embeddings import Embedder
from rag.engine import FaissChannels
from rag.evaluation import load_items, prepare_ntrex_qa
from rag.filters import Filters
from rag.indexer import engine_settings
from rag.lexical import LexicalIndex
from rag.milvus_engine import MilvusChannels, default_collection, resolve_uri
from rag.vectorstore import VectorIndex

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
LATENCY_QUERIES = 200
RECALL_QUERIES = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def faiss_index(corpus: Path, index: Path, embedder: Embedder) -> rag.Config:
    cfg = bench_config(corpus, index)
    summary = rag.Assistant(cfg, embedder=embedder).build_index()
    log(f"{corpus.name}: FAISS index of {summary.passages} passages ({summary.embedded_passages} embedded now)")
    return cfg


def twin(faiss_cfg: rag.Config, folder: Path, engine: str, *, approximate: bool) -> tuple[rag.Config, float]:
    """A generation of the same vectors and BM25 index in another engine (or a fresh FAISS one); the seconds
    store.write_generation took."""
    data = store.load(Path(faiss_cfg.index.path))
    assert data is not None
    cfg = rag.load_config(
        {"corpus": {"path": str(faiss_cfg.corpus.path)}, "index": {"path": str(folder), "engine": engine}}
    )
    vectors = data.vectors.vectors()
    lexical = LexicalIndex.load(data.folder / "lexical", data.size)
    table = np.stack([data.passage_doc, data.passage_start, data.passage_end], axis=1).astype(np.int64)
    started = time.perf_counter()
    if engine == "milvus":
        channels = MilvusChannels(
            resolve_uri(cfg.index.milvus_uri, folder),
            "",
            default_collection(folder),
            vectors,
            lexical,
            data.documents,
            table,
            approximate=approximate,
            hnsw_m=cfg.index.hnsw_m,
        )
    else:
        dense = VectorIndex.build(vectors, vectors.shape[1], approximate=approximate, hnsw_m=cfg.index.hnsw_m)
        channels = FaissChannels(dense, lexical)
    keep = ("settings", "created", "documents", "passages", "dim", "languages", "files", "aliases")
    manifest = {key: data.manifest[key] for key in keep if key in data.manifest}
    manifest["settings"] = {k: v for k, v in manifest["settings"].items() if k != "engine"} | engine_settings(cfg)
    manifest["index_type"] = channels.index_type
    store.write_generation(
        folder, manifest, data.documents, table, channels, data.centroids, keep=1, aliases=data.aliases
    )
    return cfg, time.perf_counter() - started


def latency(assistants: dict[str, rag.Assistant], queries: list[str]) -> dict:
    for assistant in assistants.values():
        for q in queries[:3]:
            assistant.search(q, k=5)  # warm-up: loading the index, the first Milvus calls
    times: dict[str, list[float]] = {name: [] for name in assistants}
    order = list(assistants)
    for i, q in enumerate(queries):
        for name in order if i % 2 == 0 else reversed(order):
            times[name].append(timed(lambda a=assistants[name], q=q: a.search(q, k=5))[1])
    return {name: percentiles_ms(ts) for name, ts in times.items()}


def dense_recall(assistants: dict[str, rag.Assistant], embedder: Embedder, queries: list[str]) -> dict:
    """Dense top-10 of each engine against the exact top-10 (numpy over every stored vector)."""
    first = next(iter(assistants.values())).index()
    everything = first.vectors.vectors()
    query_vectors = embedder.encode_queries(queries)
    exact = [set(np.argsort(-(everything @ v), kind="stable")[:10].tolist()) for v in query_vectors]
    out = {}
    for name, assistant in assistants.items():
        engine = assistant.index().engine
        found, times = [], []
        for v, gold in zip(query_vectors, exact, strict=True):
            (_, rows), seconds = timed(
                lambda v=v, engine=engine: engine.dense_search(v, 10, lang=None, filters=Filters())
            )
            found.append(len(gold & set(rows.tolist())) / 10)
            times.append(seconds)
        out[name] = {"recall@10": round(float(np.mean(found)), 4), "dense_ms": percentiles_ms(times)}
    return out


def agreement(faiss: rag.Assistant, milvus: rag.Assistant, items) -> dict:
    equal, hits = 0, {"faiss": [0, 0], "milvus": [0, 0]}
    differing = []
    for item in items:
        tops = {}
        for name, assistant in (("faiss", faiss), ("milvus", milvus)):
            sources = [h.source.removesuffix(".txt") for h in assistant.search(item.question, k=5)]
            tops[name] = sources
            gold = {g.removesuffix(".txt") for g in item.gold}
            hits[name][0] += bool(sources[:1]) and sources[0] in gold
            hits[name][1] += any(s in gold for s in sources)
        if tops["faiss"] == tops["milvus"]:
            equal += 1
        else:
            differing.append({"question": item.question, "faiss": tops["faiss"], "milvus": tops["milvus"]})
    n = len(items)
    return {
        "questions": n,
        "top5_sources_equal": equal,
        "hit@1": {k: v[0] for k, v in hits.items()},
        "hit@5": {k: v[1] for k, v in hits.items()},
        "differing": differing,
    }


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def reuters(work: Path, embedder: Embedder, limit: int | None) -> dict:
    corpus, index = work / "reuters" / "corpus", work / "reuters" / "index"
    records = [r for r in read_jsonl(REUTERS) if r["text"].strip()]
    records = records[:limit] if limit else records
    if not corpus.exists():
        write_reuters_corpus(limit, corpus)
    cfg = faiss_index(corpus, index, embedder)
    passages = store.read_manifest(index)["passages"]
    log("Reuters: writing the FAISS, Milvus FLAT and Milvus HNSW generations from the same vectors ...")
    faiss_cfg, faiss_write = twin(cfg, work / "reuters" / "faiss-twin", "faiss", approximate=False)
    flat_cfg, flat_write = twin(cfg, work / "reuters" / "milvus-flat", "milvus", approximate=False)
    hnsw_cfg, hnsw_write = twin(cfg, work / "reuters" / "milvus-hnsw", "milvus", approximate=True)
    assistants = {
        "faiss": rag.Assistant(faiss_cfg, embedder=embedder),
        "milvus (FLAT)": rag.Assistant(flat_cfg, embedder=embedder),
        "milvus (HNSW)": rag.Assistant(hnsw_cfg, embedder=embedder),
    }
    queries = [q["q"] for q in reuters_queries(records, LATENCY_QUERIES)]
    log("Reuters: search latency ...")
    search = latency(assistants, queries)
    log("Reuters: dense recall@10 against exact search ...")
    recall = dense_recall(assistants, embedder, queries[:RECALL_QUERIES])
    return {
        "passages": passages,
        "write_seconds": {
            "faiss": round(faiss_write, 2),
            "milvus (FLAT)": round(flat_write, 2),
            "milvus (HNSW)": round(hnsw_write, 2),
        },
        "search_ms": search,
        "dense": recall,
        "milvus_db_mb": {
            name: round(disk_bytes(work / "reuters" / name / "milvus.db") / 2**20, 1)
            for name in ("milvus-flat", "milvus-hnsw")
        },
        "faiss_folder_mb": round(disk_bytes(work / "reuters" / "faiss-twin") / 2**20, 1),
    }


def question_sets(work: Path, embedder: Embedder) -> dict:
    out = {}
    ntrex_corpus = work / "ntrex-qa" / "corpus"
    if not ntrex_corpus.exists():
        prepare_ntrex_qa(EVAL / "ntrex_qa_corpus.json", EVAL / "ntrex_az_ru_en_docs.jsonl", ntrex_corpus)
    for name, corpus, questions in (
        ("NTREX-QA dev", ntrex_corpus, EVAL / "ntrex_qa_dev.jsonl"),
        ("seeds dev", REPO / "seeds", EVAL / "seeds_dev.jsonl"),
    ):
        slug = name.split()[0].lower()
        cfg = faiss_index(corpus, work / slug / "index", embedder)
        milvus_cfg, _ = twin(cfg, work / slug / "milvus", "milvus", approximate=False)
        items = answerable(load_items(questions)[0])
        out[name] = agreement(
            rag.Assistant(cfg, embedder=embedder), rag.Assistant(milvus_cfg, embedder=embedder), items
        )
        log(f"{name}: top-5 sources equal for {out[name]['top5_sources_equal']} of {out[name]['questions']}")
    return out


def render(r: dict) -> list[str]:
    reuters_part = r["reuters"]
    engines = list(reuters_part["search_ms"])
    lines = [
        "## Index engines: FAISS and Milvus Lite (bench/engines.py)",
        "",
        f"- Command: `{r['command']}`; {r['date']}; code {r['git']}; {r['machine']['cores']} cores; "
        f"{r['seconds'] / 60:.1f} min.",
        f"- Reuters: {reuters_part['passages']} passages, the same vectors and BM25 index in every engine "
        "(the embedding, identical for all, is not part of these times). Latency: Assistant.search, k = 5, "
        f"{LATENCY_QUERIES} headlines, engines alternating per question.",
        "",
    ]
    rows = []
    base = reuters_part["search_ms"]["faiss"]["p50"]
    for name in engines:
        ms, dense = reuters_part["search_ms"][name], reuters_part["dense"][name]
        rows.append(
            [
                name,
                reuters_part["write_seconds"][name],
                ms["p50"],
                ms["p95"],
                f"{ms['p50'] / base:.2f}x",
                dense["recall@10"],
                dense["dense_ms"]["p50"],
            ]
        )
    lines += md_table(
        [
            "engine",
            "write generation (s)",
            "search p50 (ms)",
            "search p95 (ms)",
            "p50 vs FAISS",
            "dense recall@10",
            "dense top-10 p50 (ms)",
        ],
        rows,
    )
    rows = []
    for name, a in r["questions"].items():
        rows.append(
            [
                name,
                f"{a['top5_sources_equal']} / {a['questions']}",
                f"{a['hit@1']['faiss']} / {a['hit@1']['milvus']}",
                f"{a['hit@5']['faiss']} / {a['hit@5']['milvus']}",
            ]
        )
    lines += md_table(["question set", "top-5 sources equal", "hit@1 FAISS / Milvus", "hit@5 FAISS / Milvus"], rows)
    for name, a in r["questions"].items():
        for d in a["differing"][:5]:
            lines.append(f"- {name}, differs: {d['question'][:80]!r}: FAISS {d['faiss']}, Milvus {d['milvus']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-bench-engines"), help="corpora and indexes")
    parser.add_argument("--reuters-limit", type=int, default=None, help="only the first N Reuters articles")
    args = parser.parse_args()
    started = time.perf_counter()
    cfg = rag.load_config()
    embedder = Embedder(cfg.models)
    args.work.mkdir(parents=True, exist_ok=True)
    result = {
        "command": shlex.join([".venv/bin/python", "bench/engines.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "git": git_state(),
        "machine": machine_info(),
        "questions": question_sets(args.work, embedder),
        "reuters": reuters(args.work, embedder, args.reuters_limit),
    }
    result["seconds"] = time.perf_counter() - started
    OUT.mkdir(exist_ok=True)
    (OUT / "engines.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    publish("ENGINES", render(result), REPO / "bench" / "RESULTS.md")
    log(f"done in {result['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
