"""Retrieval benchmark: cross-lingual quality (NTREX), a LlamaIndex baseline, and scale (Reuters-21578).

    .venv/bin/python bench/retrieval.py                      # everything (30-45 min on 2 cores)
    .venv/bin/python bench/retrieval.py --reuters-limit 500  # a quick run
    .venv/bin/python bench/retrieval.py --from-json bench/out/retrieval.json   # only re-render RESULTS.md

Writes bench/RESULTS.md (tables, command, machine, targets) and bench/out/retrieval.json (raw figures).
Progress goes to stderr. bench/README.md explains every figure. This is a script, not a test: it reads the
evaluation data from ../shared/eval and never copies it into the repository.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import random
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import question_sets  # bench/ is on sys.path when this file runs as a script
from question_sets import bench_config
from results_file import blocks

import rag  # sets HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE before any Hugging Face library is imported
from rag import indexer, retrieval
from rag.chunking import make_passages
from rag.documents import load_document
from rag.embeddings import Embedder
from rag.language import detect_language
from rag.lexical import LexicalIndex
from rag.vectorstore import VectorIndex

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
NTREX = EVAL / "ntrex_az_ru_en_docs.jsonl"
REUTERS = EVAL / "reuters21578_en_news.jsonl"
SEEDS = REPO / "seeds"
OUT = REPO / "bench" / "out"

# (query language, corpus language), as eval/README.md asks.
DIRECTIONS = (("en", "az"), ("en", "ru"), ("ru", "az"), ("az", "ru"), ("az", "en"))
# Both channels go through the same fusion code; a zero weight removes one channel's contribution.
CHANNELS = {
    "dense": {"dense_weight": 1.0, "lexical_weight": 0.0},
    "lexical": {"dense_weight": 0.0, "lexical_weight": 1.0},
    "hybrid": {},  # the default configuration
}
RANK_DEPTH = 20  # documents ranked per query; MRR is therefore MRR@20 (123 candidates in all)
HNSW_EF = (32, 64, 128, 256)
LEXICAL_SHARE_SWEEP = (0.2, 0.3, 0.5)  # diagnostic: lexical weight w, dense weight 1 - w
TARGETS = {
    "overhead_pct": 10.0,
    "search_p50_ms": 50.0,
    "reindex_seeds_s": 2.0,
    "gold_first_share": 0.97,  # of answerable questions, per question set (issue 12)
    "title_r1_mean": 0.85,  # NTREX title -> article, hybrid, mean over the five directions
    "title_r1_min": 0.80,  # ... and in every direction
}

_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


# -- environment ---------------------------------------------------------------------------------------------


class NetworkGuard:
    """Refuses every non-local connection and DNS lookup, recording who tried.

    "Runs offline" is then a checked fact: a library that quietly downloads data (nltk, tiktoken, a model hub)
    fails loudly here instead of succeeding on a machine that happens to be online.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._saved: tuple = ()

    def __enter__(self) -> NetworkGuard:
        self._saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)
        connect, connect_ex, getaddrinfo = self._saved

        def refuse_connect(sock: socket.socket, address: object) -> None:
            if sock.family == socket.AF_UNIX:
                return connect(sock, address)
            self.attempts.append(f"connect {address!r}")
            raise OSError(errno.ENETUNREACH, f"bench: network access refused ({address!r})")

        def refuse_connect_ex(sock: socket.socket, address: object) -> int:
            if sock.family == socket.AF_UNIX:
                return connect_ex(sock, address)
            self.attempts.append(f"connect {address!r}")
            return errno.ENETUNREACH

        def refuse_lookup(host: object, *args: object, **kwargs: object) -> list:
            if host in (None, "localhost", "127.0.0.1", "::1"):
                return getaddrinfo(host, *args, **kwargs)
            self.attempts.append(f"lookup {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"bench: network access refused ({host!r})")

        socket.socket.connect = refuse_connect
        socket.socket.connect_ex = refuse_connect_ex
        socket.getaddrinfo = refuse_lookup
        return self

    def __exit__(self, *exc: object) -> None:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = self._saved


class PeakRss:
    """Peak resident memory of this process while the block runs, sampled every 0.1 s with psutil.

    ru_maxrss only knows the peak over the whole process life (which includes earlier sections), so it is
    reported beside this, not instead of it.
    """

    def __init__(self) -> None:
        self.before_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        try:
            import psutil
        except ImportError:  # psutil is a bench extra; without it only ru_maxrss is reported
            return self
        process = psutil.Process()
        self.before_mb = self.peak_mb = process.memory_info().rss / 2**20

        def sample() -> None:
            while not self._stop.wait(0.1):
                self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine_info() -> dict:
    import torch

    cpu, ram_gb = platform.processor() or "unknown", None
    with _suppress_os_error():
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    with _suppress_os_error():
        kib = next(
            int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")
        )
        ram_gb = round(kib / 2**20, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": ram_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }


def _suppress_os_error() -> suppress:
    return suppress(OSError, StopIteration, ValueError)  # /proc is Linux-only; elsewhere keep the fallback


def library_versions() -> dict[str, str]:
    names = (
        *("torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s", "numpy", "psutil"),
        *("llama-index-core", "llama-index-embeddings-huggingface", "llama-index-vector-stores-faiss"),
    )
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state() -> str:
    """The commit measured, read-only; 'uncommitted' when the tree has changes or no commit yet."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rag"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "no commit yet"
    return f"{head}{' + uncommitted changes in rag/' if dirty else ''}"


# -- small measuring helpers ---------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def timed_cpu(fn: Callable[[], object]) -> tuple[object, float, float]:
    """Wall seconds and the process's CPU seconds per wall second (all threads). On this 2-core machine a value
    well under 2 while the model encodes means other processes competed for the cores during the timing."""
    cpu_start = time.process_time()
    value, seconds = timed(fn)
    return value, seconds, (time.process_time() - cpu_start) / seconds


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentiles_ms(seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "mean": round(float(ms.mean()), 2),
        "n": len(ms),
    }


def rank_of(gold: str, ranked: Sequence[str]) -> int | None:
    """1-based rank of the gold document in a list of distinct documents, None when absent."""
    try:
        return ranked.index(gold) + 1
    except ValueError:
        return None


def rank_metrics(ranks: Sequence[int | None]) -> dict:
    n = len(ranks)
    return {
        "recall@1": round(sum(r == 1 for r in ranks) / n, 4),
        "recall@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 4),
        "queries": n,
    }


def distinct(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def ranked_documents(hits: Sequence[rag.Hit], doc_of_source: dict[str, str]) -> list[str]:
    # A document's rank is the rank of its best passage. Hits that only a zero-weight channel proposed carry
    # a fused score of 0: they were not ranked by the channel under test, so they are not counted.
    return distinct([doc_of_source[h.source] for h in hits if h.score > 0])


def token_overflow(embedder: Embedder, texts: Sequence[str]) -> int:
    """How many texts exceed the model's input length, i.e. are silently truncated when embedded."""
    limit = embedder.max_tokens
    return sum(length > limit for length in embedder.token_counts(texts))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- 1. NTREX with our pipeline ------------------------------------------------------------------------------


def write_ntrex_corpus(rows: list[dict], lang: str, folder: Path) -> dict[str, str]:
    """One file per article, its title line removed (the title is the query). Neutral names: nothing in a
    file name may hint at the article. Returns source -> doc_id."""
    folder.mkdir(parents=True)
    doc_of_source = {}
    for n, row in enumerate(rows):
        body = row[lang].split("\n", 1)[1]
        name = f"{n:03d}.txt"
        (folder / name).write_text(body, encoding="utf-8")
        doc_of_source[name] = row["doc_id"]
    return doc_of_source


def ntrex_ours(rows: list[dict], work: Path, embedder: Embedder) -> dict:
    results: dict = {"indexing": {}, "directions": {}}
    for target in distinct([t for _, t in DIRECTIONS]):
        corpus, index = work / "ntrex" / target / "corpus", work / "ntrex" / target / "index"
        doc_of_source = write_ntrex_corpus(rows, target, corpus)
        cfg = bench_config(corpus, index, k=RANK_DEPTH, max_per_document=1)
        results["retrieval_config"] = asdict(cfg.retrieval)
        assistant = rag.Assistant(cfg, embedder=embedder)
        summary, seconds, cpu = timed_cpu(assistant.build_index)
        data = assistant.index()
        texts = [
            embedder.document_prompt + indexer.embedding_text(data.documents[int(d)], data.passage_text(i))
            for i, d in enumerate(data.passage_doc)
        ]
        results["indexing"][target] = {
            "seconds": round(seconds, 2),
            "cpu_per_wall": round(cpu, 2),
            "documents": summary.documents,
            "passages": summary.passages,
            "skipped": [s.source for s in summary.skipped],
            "truncated_passages": token_overflow(embedder, texts),
        }
        log(f"NTREX ours: indexed {target}: {summary.documents} docs, {summary.passages} passages, {seconds:.1f} s")
        for source in [s for s, t in DIRECTIONS if t == target]:
            results["directions"][f"{source}->{target}"] = ntrex_direction(
                rows, (source, target), data, cfg, embedder, doc_of_source
            )
    return results


def ntrex_direction(
    rows: list[dict],
    direction: tuple[str, str],
    data: rag.store.IndexData,
    cfg: rag.Config,
    embedder: Embedder,
    doc_of_source: dict[str, str],
) -> dict:
    queries = [row[f"title_{direction[0]}"] for row in rows]
    vectors = embedder.encode_queries(queries)  # once per direction, shared by every channel setting
    langs = [detect_language(q) for q in queries]  # as Assistant.search does

    def metrics(settings: rag.config.RetrievalConfig) -> dict:
        ranks = []
        for row, q, v, lang in zip(rows, queries, vectors, langs, strict=True):
            hits = retrieval.search(data, v, q, RANK_DEPTH, settings, query_lang=lang)
            ranks.append(rank_of(row["doc_id"], ranked_documents(hits, doc_of_source)))
        return rank_metrics(ranks)

    figures = {channel: metrics(replace(cfg.retrieval, **weights)) for channel, weights in CHANNELS.items()}
    # Diagnostic, not a configuration anyone chose: how the fusion fares with a lighter lexical channel.
    figures["lexical_share_sweep"] = {
        str(w): metrics(replace(cfg.retrieval, dense_weight=1 - w, lexical_weight=w)) for w in LEXICAL_SHARE_SWEEP
    }
    log(f"NTREX ours {'->'.join(direction)}: " + ", ".join(f"{c} R@1 {figures[c]['recall@1']:.3f}" for c in CHANNELS))
    return figures


# -- 2. NTREX with LlamaIndex defaults -----------------------------------------------------------------------


def llamaindex_ntrex(rows: list[dict], work: Path, model_path: str, embedder: Embedder) -> dict:
    """LlamaIndex out of the box over the same files and the same local model folder; only the e5 prefixes
    (which the model needs) and the FAISS store are set. Documents are built from the file texts, without
    metadata, so no file path is embedded into the chunks (SimpleDirectoryReader would embed `file_path`)."""
    import faiss
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    embed_model, load_seconds = timed(
        lambda: HuggingFaceEmbedding(
            model_name=model_path, query_instruction="query: ", text_instruction="passage: ", device="cpu"
        )
    )
    splitter = SentenceSplitter()
    results: dict = {
        "settings": {
            "chunk_size_tokens": splitter.chunk_size,
            "chunk_overlap_tokens": splitter.chunk_overlap,
            "embed_batch_size": embed_model.embed_batch_size,
            "model_load_seconds": round(load_seconds, 2),
        },
        "indexing": {},
        "directions": {},
    }
    for target in distinct([t for _, t in DIRECTIONS]):
        corpus = work / "ntrex" / target / "corpus"
        doc_of_source = {f"{n:03d}.txt": row["doc_id"] for n, row in enumerate(rows)}

        def build(corpus: Path = corpus, doc_of_source: dict = doc_of_source) -> VectorStoreIndex:
            documents = [
                Document(text=(corpus / name).read_text(encoding="utf-8"), id_=doc_id)
                for name, doc_id in doc_of_source.items()
            ]
            store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(embedder.dim))
            return VectorStoreIndex.from_documents(
                documents,
                storage_context=StorageContext.from_defaults(vector_store=store),
                embed_model=embed_model,
                transformations=[SentenceSplitter()],
            )

        index, seconds, cpu = timed_cpu(build)
        nodes = list(index.docstore.docs.values())
        texts = ["passage: " + node.get_content(metadata_mode="embed") for node in nodes]
        results["indexing"][target] = {
            "seconds": round(seconds, 2),
            "cpu_per_wall": round(cpu, 2),
            "nodes": len(nodes),
            "truncated_passages": token_overflow(embedder, texts),
        }
        log(f"LlamaIndex: indexed {target}: {len(nodes)} nodes, {seconds:.1f} s")
        retriever = index.as_retriever(similarity_top_k=RANK_DEPTH)
        for source in [s for s, t in DIRECTIONS if t == target]:
            ranks = [
                rank_of(
                    row["doc_id"],
                    distinct([n.node.ref_doc_id for n in retriever.retrieve(row[f"title_{source}"])]),
                )
                for row in rows
            ]
            figures = results["directions"][f"{source}->{target}"] = rank_metrics(ranks)
            log(f"LlamaIndex {source}->{target}: R@1 {figures['recall@1']:.3f}")
    return results


# -- 3. Reuters scale ----------------------------------------------------------------------------------------


def write_reuters_corpus(limit: int | None, folder: Path) -> list[dict]:
    """Records with a body, each as "title\\n\\nbody" in <newid>.txt; written before any timing starts."""
    records = [r for r in read_jsonl(REUTERS) if r["text"].strip()]
    records = records[:limit] if limit else records
    folder.mkdir(parents=True)
    for r in records:
        (folder / f"{r['newid']}.txt").write_text(f"{r['title'].strip()}\n\n{r['text']}", encoding="utf-8")
    return records


class TimedEmbedder:
    """The real Embedder, plus the wall and CPU seconds spent inside encode_passages. A build's own embedding
    time is then told apart from everything else it does, within the same build: other processes slowing the
    machine down affect both parts alike, unlike a comparison with a separate, later encode run."""

    def __init__(self, inner: Embedder):
        self._inner = inner
        self.seconds = self.cpu_seconds = 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        done, started, step = 0, time.perf_counter(), 5000

        def report(n: int) -> None:
            # A long build shows no progress bar when stderr is a log file; this line shows it is alive.
            nonlocal done
            if (done + n) // step > done // step:
                rate = (done + n) / (time.perf_counter() - started)
                log(f"  embedded {done + n} of {len(texts)} passages ({rate:.1f}/s)")
            done += n
            if progress is not None:
                progress(n)

        vectors, seconds, cpu = timed_cpu(lambda: self._inner.encode_passages(texts, progress=report))
        self.seconds += seconds
        self.cpu_seconds += cpu * seconds
        return vectors


def reuters_build(cfg: rag.Config, embedder: Embedder) -> tuple[rag.Assistant, dict]:
    timed_embedder = TimedEmbedder(embedder)
    assistant = rag.Assistant(cfg, embedder=timed_embedder)
    with PeakRss() as memory:
        summary, seconds, cpu = timed_cpu(assistant.build_index)
    folder = rag.store.current_generation(Path(cfg.index.path))
    figures = {
        "documents": summary.documents,
        "passages": summary.passages,
        "embedded_passages": summary.embedded_passages,
        "skipped": len(summary.skipped),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu * seconds, 2),
        "cpu_per_wall": round(cpu, 2),
        "embedding_seconds": round(timed_embedder.seconds, 2),
        "embedding_cpu_seconds": round(timed_embedder.cpu_seconds, 2),
        "load_average_after": load_average(),
        "passages_per_s": round(summary.embedded_passages / seconds, 2),
        "index_bytes": folder_bytes(folder),
        "index_parts_bytes": {p.name: folder_bytes(p) if p.is_dir() else p.stat().st_size for p in folder.iterdir()},
        "rss_before_mb": round(memory.before_mb, 1),
        "rss_peak_mb": round(memory.peak_mb, 1),
        "ru_maxrss_mb": round(ru_maxrss_mb(), 1),
    }
    log(f"Reuters build: {summary.passages} passages in {seconds:.1f} s ({figures['passages_per_s']} passages/s)")
    return assistant, figures


def encode_baseline(assistant: rag.Assistant, sample: int | None = None) -> dict:
    """Plain model.encode over exactly the texts the pipeline embedded (read back from the index), in one call
    with the same batch size: the floor any indexing pipeline built on this model can reach. With `sample`, a
    uniform random sample of that many passages (seed 0) stands for all of them, and the comparison is per
    passage: it halves a full-corpus run, and a uniform sample has the same mix of passage lengths."""
    data, embedder, models = assistant.index(), assistant.embedder, assistant.config.models
    rows = np.arange(data.size)
    if sample and sample < data.size:
        rows = np.sort(np.random.default_rng(0).choice(data.size, size=sample, replace=False))
    texts = [indexer.embedding_text(data.documents[int(data.passage_doc[i])], data.passage_text(i)) for i in rows]
    log(f"Reuters encode baseline: encoding {len(texts)} passages in one call ...")
    # The configured backend's own encode call over all texts at once (sentence-transformers' model.encode for
    # "torch"), without the pipeline's slicing and progress reports.
    vectors, seconds, cpu = timed_cpu(lambda: embedder._encode(texts, query=False))
    # The same texts must give the same vectors; otherwise the two timings would not measure the same work.
    cosines = np.sum(np.asarray(vectors, dtype=np.float32) * data.vectors.vectors()[rows], axis=1)
    log(f"Reuters encode baseline: {len(texts)} passages in {seconds:.1f} s")
    return {
        "passages": len(texts),
        "sampled_from": int(data.size) if len(texts) < data.size else None,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu * seconds, 2),
        "cpu_per_wall": round(cpu, 2),
        "load_average_after": load_average(),
        "passages_per_s": round(len(texts) / seconds, 2),
        "batch_size": models.batch_size,
        "min_cosine_to_index": round(float(cosines.min()), 6),
        "truncated_passages": token_overflow(embedder, texts),
    }


def overhead_parts(cfg: rag.Config, data) -> dict:
    """The non-embedding steps of a build, timed on their own, to explain where any overhead goes."""
    root = Path(cfg.corpus.path)
    max_bytes = int(cfg.corpus.max_file_mb * 2**20)

    def read_and_chunk() -> int:
        count = 0
        for path in sorted(root.glob("*.txt")):
            doc = load_document(path, root, max_bytes)
            count += len(make_passages(doc, cfg.chunking.size, cfg.chunking.overlap))
        return count

    _, read_seconds = timed(read_and_chunk)
    texts = [data.passage_text(i) for i in range(data.size)]
    _, lexical_seconds = timed(lambda: LexicalIndex.build(texts))
    return {
        "read_and_chunk_seconds": round(read_seconds, 2),
        "lexical_build_seconds": round(lexical_seconds, 2),
    }


def reuters_queries(records: list[dict], n: int) -> list[dict]:
    """A fixed sample (seed 0) of article titles: the kind of short keyword query a user types."""
    sample = random.Random(0).sample(records, min(n, len(records)))
    return [{"q": r["title"].strip(), "doc": f"{r['newid']}.txt"} for r in sample]


def search_latency(assistant: rag.Assistant, queries: list[dict]) -> dict:
    for item in queries[:3]:  # warm-up: the first search loads the index from disk
        assistant.search(item["q"], k=5)
    totals, encodes, own_in_top5 = [], [], 0
    for item in queries:
        hits, seconds = timed(lambda item=item: assistant.search(item["q"], k=5))
        totals.append(seconds)
        own_in_top5 += any(h.source == item["doc"] for h in hits)
        encodes.append(timed(lambda item=item: assistant.embedder.encode_queries([item["q"]]))[1])
    figures = {
        "search_ms": percentiles_ms(totals),
        "query_encode_ms": percentiles_ms(encodes),
        "own_article_in_top5": round(own_in_top5 / len(queries), 4),
    }
    log(f"search latency p50 {figures['search_ms']['p50']} ms, p95 {figures['search_ms']['p95']} ms")
    return figures


def hnsw_vs_flat(assistant: rag.Assistant, queries: list[dict]) -> dict:
    data, cfg = assistant.index(), assistant.config
    vectors = data.vectors.vectors()
    flat = VectorIndex.build(vectors, data.vectors.dim, approximate=False)
    hnsw, build_seconds = timed(
        lambda: VectorIndex.build(vectors, data.vectors.dim, approximate=True, hnsw_m=cfg.index.hnsw_m)
    )
    query_vectors = assistant.embedder.encode_queries([item["q"] for item in queries])
    exact, flat_times = [], []
    for v in query_vectors:
        (_, rows), seconds = timed(lambda v=v: flat.search(v, 10))
        exact.append(set(rows.tolist()))
        flat_times.append(seconds)
    sweep = {}
    for ef in HNSW_EF:
        found, times = [], []
        for v, gold in zip(query_vectors, exact, strict=True):
            (_, rows), seconds = timed(lambda v=v, ef=ef: hnsw.search(v, 10, ef_search=ef))
            found.append(len(gold & set(rows.tolist())) / 10)
            times.append(seconds)
        sweep[str(ef)] = {"recall@10": round(float(np.mean(found)), 4), "latency_ms": percentiles_ms(times)}
    log(f"HNSW recall@10 at ef {cfg.index.hnsw_ef_search}: {sweep.get(str(cfg.index.hnsw_ef_search))}")
    return {
        "vectors": len(vectors),
        "hnsw_m": cfg.index.hnsw_m,
        "configured_ef_search": cfg.index.hnsw_ef_search,
        "hnsw_build_seconds": round(build_seconds, 2),
        "flat_latency_ms": percentiles_ms(flat_times),
        "hnsw": sweep,
    }


def reindex_unchanged_seeds(work: Path, embedder: Embedder) -> dict:
    """Re-running the indexer over an unchanged corpus, in-process and as the CLI command a user runs."""
    corpus, index = work / "seeds" / "corpus", work / "seeds" / "index"
    shutil.copytree(SEEDS, corpus)
    cfg = bench_config(corpus, index)
    rag.Assistant(cfg, embedder=embedder).build_index()  # the first, real build
    # A fresh Assistant without a model each time: an unchanged corpus must not need the model at all.
    in_process = [timed(rag.Assistant(cfg).build_index)[1] for _ in range(5)]
    command = [sys.executable, "-m", "rag", "index", "--corpus", str(corpus), "--index", str(index)]
    cli = [timed(lambda: run_cli(command, cwd=work))[1] for _ in range(5)]
    figures = {
        "files": len(list(corpus.iterdir())),
        "in_process_s": {
            "median": round(statistics.median(in_process), 4),
            "all": [round(s, 4) for s in in_process],
        },
        "cli_s": {"median": round(statistics.median(cli), 3), "all": [round(s, 3) for s in cli]},
    }
    log(
        f"re-index unchanged seeds: in-process {figures['in_process_s']['median']} s, "
        f"CLI {figures['cli_s']['median']} s"
    )
    return figures


def run_cli(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        # Most often the rag code changed under a long run, so the new process disagrees with the index.
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def reuters_section(
    work: Path, embedder: Embedder, limit: int | None, n_queries: int, baseline_sample: int | None = None
) -> dict:
    log(f"Reuters: writing the corpus ({'all records' if not limit else f'{limit} records'}) ...")
    corpus, index = work / "reuters" / "corpus", work / "reuters" / "index"
    records = write_reuters_corpus(limit, corpus)
    cfg = bench_config(corpus, index)
    assistant, build = reuters_build(cfg, embedder)
    baseline = encode_baseline(assistant, baseline_sample)
    # Per passage, so that a sampled baseline compares like with like (equal to the plain ratio without sampling).
    scale = build["embedded_passages"] / baseline["passages"]
    build["overhead_pct"] = round((build["seconds"] / (baseline["seconds"] * scale) - 1) * 100, 1)
    build["overhead_cpu_pct"] = round((build["cpu_seconds"] / (baseline["cpu_seconds"] * scale) - 1) * 100, 1)
    build["non_embedding_pct"] = round((build["seconds"] / build["embedding_seconds"] - 1) * 100, 1)
    parts = overhead_parts(cfg, assistant.index())
    queries = reuters_queries(records, n_queries)
    return {
        "records": len(records),
        "limit": limit,
        "build": build,
        "encode_baseline": baseline,
        "overhead_parts": parts,
        "latency": search_latency(assistant, queries),
        "hnsw": hnsw_vs_flat(assistant, queries),
    }


# -- RESULTS.md ----------------------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def verdict(value: float, target: float, unit: str) -> str:
    if value <= target:
        return f"met ({value:g} {unit} <= {target:g} {unit})"
    return f"**missed** by {value - target:.3g} {unit} ({value:g} {unit} > {target:g} {unit})"


def render_header(r: dict) -> list[str]:
    m = r["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    limits = r["limits"]
    partial = [f"Reuters limited to {limits['reuters_limit']} records"] if limits.get("reuters_limit") else []
    partial += [
        f"{name} skipped" for name in ("questions", "ntrex", "llamaindex", "reuters") if limits.get(f"skip_{name}")
    ]
    lines = [
        "# Retrieval benchmark results",
        "",
        "Written by `bench/retrieval.py` (`bench/README.md` explains each figure). Do not edit by hand.",
        "",
        f"- Command: `{r['command']}` (from the repository root)",
        f"- Date: {r['date']}; run time {r['seconds'] / 60:.1f} min; code: {r['git']}",
        f"- Machine: {m['cpu']}, {m['cores']} cores (torch uses {m['torch_threads']} threads), "
        f"{m['ram_gb']} GB RAM, {m['os']}, Python {m['python']}",
        f"- Libraries: {libs}",
        f"- Embedding model: {r['model']['name']} ({r['model']['fingerprint']}), backend "
        f"{r['model'].get('backend', 'torch')}, loaded once in "
        f"{r['model']['load_seconds']} s; batch size {r['model']['batch_size']}",
        f"- Network: every connection and DNS lookup was refused during the run; attempts seen: "
        f"{len(r['network_attempts'])}"
        + (f" ({'; '.join(r['network_attempts'][:5])})" if r["network_attempts"] else ""),
    ]
    loads = [r.get("load_average_at_start"), r.get("load_average_at_end")]
    lines.append(
        "- Load average (1/5/15 min) at start / end: "
        + " / ".join("-" if x is None else "/".join(f"{v:g}" for v in x) for x in loads)
        + ". CPU/wall below is the process's CPU seconds per wall second: near the core count when the run had "
        "the cores to itself, lower when other processes competed (their timings are then pessimistic)."
    )
    if partial:
        lines.append(f"- **Partial run**: {', '.join(partial)}.")
    return lines + [""]


def render_targets(r: dict) -> list[str]:
    lines = ["## Targets", ""]
    if "reuters" in r:
        overhead, p50 = r["reuters"]["build"]["overhead_pct"], r["reuters"]["latency"]["search_ms"]["p50"]
        lines.append(
            f"- Indexing overhead over plain `model.encode` (wall time): "
            f"{verdict(overhead, TARGETS['overhead_pct'], '%')}; in CPU time "
            f"{r['reuters']['build']['overhead_cpu_pct']:+.1f} %"
        )
        lines.append(f"- Search latency p50: {verdict(p50, TARGETS['search_p50_ms'], 'ms')}")
    if "questions" in r:
        share = TARGETS["gold_first_share"]
        for name, by_setting in r["questions"]["sets"].items():
            m = by_setting["default"]["all"]
            needed = int(np.ceil(share * m["questions"]))
            met = "met" if m["hit@1"] >= needed else f"**missed** by {needed - m['hit@1']}"
            top5 = "all" if m["hit@5"] == m["questions"] else f"**{m['questions'] - m['hit@5']} missing**"
            lines.append(
                f"- {name}: answering article first for {m['hit@1']}/{m['questions']} (target {share:.0%}, "
                f"{needed}): {met}; in the top 5: {top5}"
            )
    if "ntrex" in r:
        r1 = [f["hybrid"]["recall@1"] for f in r["ntrex"]["directions"].values()]
        mean_met = "met" if statistics.mean(r1) >= TARGETS["title_r1_mean"] else "**missed**"
        min_met = "met" if min(r1) >= TARGETS["title_r1_min"] else "**missed**"
        lines.append(
            f"- NTREX title -> article R@1, hybrid: mean {statistics.mean(r1):.3f} (target "
            f"{TARGETS['title_r1_mean']}): {mean_met}; lowest direction {min(r1):.3f} (target "
            f"{TARGETS['title_r1_min']}): {min_met}"
        )
    if "seeds_reindex" in r:
        seeds, target = r["seeds_reindex"], TARGETS["reindex_seeds_s"]
        cli, in_process = seeds["cli_s"]["median"], seeds["in_process_s"]["median"]
        lines.append(f"- Re-index unchanged seeds, `python -m rag index` end to end: {verdict(cli, target, 's')}")
        lines.append(f"- Re-index unchanged seeds, `build_index()` in process: {verdict(in_process, target, 's')}")
    return lines + [""]


def render_ntrex(r: dict) -> list[str]:
    ours, theirs = r["ntrex"], r.get("llamaindex")
    lines = [
        "## 1. NTREX cross-lingual retrieval",
        "",
        "123 parallel articles; the corpus is the target-language articles without their title line, the "
        "query is the title in the source language, the gold is the same article. Document rank = rank of "
        f"its best passage; MRR is over the top {RANK_DEPTH} documents.",
        "",
    ]
    headers = ["direction"] + [f"{c} {m}" for c in CHANNELS for m in ("R@1", "R@5", "MRR")]
    rows = []
    for direction, channels in ours["directions"].items():
        rows.append([direction] + [f"{channels[c][m]:.3f}" for c in CHANNELS for m in ("recall@1", "recall@5", "mrr")])
    lines += md_table(headers, rows)
    lines += render_ntrex_means(ours, theirs) + render_lexical_sweep(ours)
    if theirs:
        lines += render_llamaindex(ours, theirs)
    return lines


def render_ntrex_means(ours: dict, theirs: dict | None) -> list[str]:
    systems = {f"ours, {c}": {d: f[c] for d, f in ours["directions"].items()} for c in CHANNELS}
    if theirs:
        systems["LlamaIndex defaults (dense)"] = theirs["directions"]
    rows = []
    for name, by_direction in systems.items():
        means = [statistics.mean(f[m] for f in by_direction.values()) for m in ("recall@1", "recall@5", "mrr")]
        rows.append([name] + [f"{x:.3f}" for x in means])
    return ["Mean over the five directions:", ""] + md_table(["system", "R@1", "R@5", "MRR"], rows)


def render_lexical_sweep(ours: dict) -> list[str]:
    default = ours["retrieval_config"]
    shares = list(next(iter(ours["directions"].values()))["lexical_share_sweep"])
    rows = []
    for direction, f in ours["directions"].items():
        settings = [f["dense"], f["hybrid"]] + [f["lexical_share_sweep"][w] for w in shares]
        rows.append([direction] + [f"{x['recall@1']:.3f} / {x['mrr']:.3f}" for x in settings])
    headers = [
        *("direction", "dense only (1 / 0)"),
        f"default ({default['dense_weight']:g} / {default['lexical_weight']:g})",
        *(f"{1 - float(w):g} / {float(w):g}" for w in shares),
    ]
    return [
        "Diagnostic: the fused score with other dense / lexical weights (R@1 / MRR); the default is the hybrid above:",
        "",
    ] + md_table(headers, rows)


def render_llamaindex(ours: dict, theirs: dict) -> list[str]:
    s = theirs["settings"]
    lines = [
        "## 2. Our pipeline (hybrid, default config) vs LlamaIndex defaults",
        "",
        f"LlamaIndex: SentenceSplitter defaults ({s['chunk_size_tokens']} tiktoken tokens, overlap "
        f"{s['chunk_overlap_tokens']}), HuggingFaceEmbedding on the same local model folder (e5 prefixes, "
        f"batch size {s['embed_batch_size']}), FaissVectorStore over IndexFlatIP, VectorStoreIndex, "
        f"as_retriever(similarity_top_k={RANK_DEPTH}). Ratios are ours / theirs for recall (above 1: ours "
        "better).",
        "",
    ]
    rows = []
    for direction, channels in ours["directions"].items():
        a, b = channels["hybrid"], theirs["directions"][direction]
        row = [direction]
        for m in ("recall@1", "recall@5", "mrr"):
            row += [f"{a[m]:.3f}", f"{b[m]:.3f}", ratio(a[m], b[m])]
        rows.append(row)
    headers = ["direction"] + [f"{m} {w}" for m in ("R@1", "R@5", "MRR") for w in ("ours", "LlamaIndex", "ratio")]
    lines += md_table(headers, rows)
    lines += [
        "Indexing time (index built from the files, model already loaded; ours also writes the index to "
        "disk, LlamaIndex keeps it in memory). Ratio: theirs / ours (above 1: ours faster). Truncated: "
        "chunks longer than the model's 512-token input, whose tail is never embedded.",
        "",
    ]
    rows = []
    for target, mine in ours["indexing"].items():
        other = theirs["indexing"][target]
        rows.append(
            [
                target,
                f"{mine['seconds']:.1f} s ({mine['cpu_per_wall']:.2f})",
                mine["passages"],
                mine["truncated_passages"],
                f"{other['seconds']:.1f} s ({other['cpu_per_wall']:.2f})",
                other["nodes"],
                other["truncated_passages"],
                ratio(other["seconds"], mine["seconds"]),
            ]
        )
    headers = [
        *("corpus", "ours (CPU/wall)", "passages", "truncated"),
        *("LlamaIndex (CPU/wall)", "nodes", "truncated", "time ratio"),
    ]
    return lines + md_table(headers, rows)


def render_reuters(r: dict) -> list[str]:
    x = r["reuters"]
    build, base, parts, lat = x["build"], x["encode_baseline"], x["overhead_parts"], x["latency"]
    index_mb = build["index_bytes"] / 1e6
    parts_text = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(build["index_parts_bytes"].items()))
    lines = [
        "## 3. Scale: Reuters-21578",
        "",
        f'{x["records"]} articles with a body, one file each ("title\\n\\nbody").',
        "",
    ]
    rows = [
        ["documents / passages", f"{build['documents']} / {build['passages']}"],
        [
            "`build_index()` from scratch",
            f"{build['seconds']:.1f} s, {build['passages_per_s']:.1f} passages/s (CPU/wall {build['cpu_per_wall']})",
        ],
        [
            "plain `model.encode`, same texts and batch size"
            + (f" (a uniform sample of {base['passages']} of them)" if base.get("sampled_from") else ""),
            f"{base['seconds']:.1f} s, {base['passages_per_s']:.1f} passages/s "
            f"(CPU/wall {base['cpu_per_wall']}; min cosine to the index's vectors {base['min_cosine_to_index']:.4f})",
        ],
        [
            "pipeline overhead over plain `model.encode`",
            f"{build['overhead_pct']:+.1f} % wall time, {build['overhead_cpu_pct']:+.1f} % CPU time",
        ],
        [
            "inside the build: embedding calls vs the rest",
            f"{build['embedding_seconds']:.1f} s embedding; the rest adds {build['non_embedding_pct']:+.1f} %",
        ],
        [
            "of which, timed separately",
            f"reading + cleaning + chunking {parts['read_and_chunk_seconds']:.1f} s, "
            f"BM25 build {parts['lexical_build_seconds']:.1f} s",
        ],
        ["passages over 512 tokens (truncated)", base["truncated_passages"]],
        ["index size on disk", f"{index_mb:.1f} MB ({parts_text})"],
        [
            "memory during the build (RSS, psutil, sampled every 0.1 s)",
            f"{build['rss_before_mb']:.0f} MB before, {build['rss_peak_mb']:.0f} MB peak",
        ],
        ["process peak RSS so far (`ru_maxrss`)", f"{build['ru_maxrss_mb']:.0f} MB"],
        [
            f"`Assistant.search` latency, {lat['search_ms']['n']} title queries, k=5",
            f"p50 {lat['search_ms']['p50']} ms, p95 {lat['search_ms']['p95']} ms, mean {lat['search_ms']['mean']} ms",
        ],
        [
            "of which query embedding alone",
            f"p50 {lat['query_encode_ms']['p50']} ms, p95 {lat['query_encode_ms']['p95']} ms",
        ],
        ["title query finds its own article in the top 5", f"{lat['own_article_in_top5']:.3f}"],
    ]
    return lines + md_table(["figure", "value"], rows)


def render_hnsw(r: dict) -> list[str]:
    h = r["reuters"]["hnsw"]
    lines = [
        "## 4. Approximate (HNSW) vs exact vector search",
        "",
        f"{h['vectors']} Reuters passage vectors; HNSW M={h['hnsw_m']} built in "
        f"{h['hnsw_build_seconds']:.1f} s; recall@10 = share of the exact top 10 that HNSW also returns, "
        f"over the same title queries. Exact (flat) search: p50 {h['flat_latency_ms']['p50']} ms, "
        f"p95 {h['flat_latency_ms']['p95']} ms.",
        "",
    ]
    rows = [
        [
            ef + (" (configured)" if int(ef) == h["configured_ef_search"] else ""),
            f"{f['recall@10']:.4f}",
            f["latency_ms"]["p50"],
            f["latency_ms"]["p95"],
        ]
        for ef, f in h["hnsw"].items()
    ]
    return lines + md_table(["efSearch", "recall@10", "p50 ms", "p95 ms"], rows)


def render_seeds(r: dict) -> list[str]:
    s = r["seeds_reindex"]
    return [
        "## Re-indexing an unchanged corpus",
        "",
        f"The {s['files']} seed articles, indexed once, then indexed again 5 times with nothing changed "
        f"(median): `build_index()` in a fresh Assistant {s['in_process_s']['median'] * 1000:.1f} ms; the "
        f"CLI command `python -m rag index` (new process: start-up, imports, stat of every file) "
        f"{s['cli_s']['median']:.2f} s.",
        "",
    ]


def render(results: dict) -> str:
    lines = render_header(results) + render_targets(results)
    if "questions" in results:
        lines += question_sets.render(results["questions"], md_table)
    if "ntrex" in results:
        lines += render_ntrex(results)
    if "reuters" in results:
        lines += render_reuters(results) + render_hnsw(results)
    if "seeds_reindex" in results:
        lines += render_seeds(results)
    return "\n".join(lines).rstrip() + "\n"


# -- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reuters-limit", type=int, metavar="N", help="index only the first N Reuters articles")
    p.add_argument(
        "--baseline-sample",
        type=int,
        metavar="N",
        help="time plain model.encode on a uniform sample of N Reuters passages instead of all (per-passage ratio)",
    )
    p.add_argument("--skip-reuters", action="store_true", help="skip the Reuters scale and HNSW sections")
    p.add_argument("--skip-llamaindex", action="store_true", help="skip the LlamaIndex comparison")
    p.add_argument("--skip-ntrex", action="store_true", help="skip NTREX (and so LlamaIndex, which uses its files)")
    p.add_argument("--skip-questions", action="store_true", help="skip the question sets (seeds, NTREX-QA)")
    p.add_argument("--queries", type=int, default=200, help="Reuters title queries for latency and HNSW (200)")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md", help="markdown report to write")
    p.add_argument("--json", type=Path, default=OUT / "retrieval.json", help="raw figures to write")
    p.add_argument("--from-json", type=Path, metavar="FILE", help="only render --results from a previous JSON")
    return p.parse_args(argv)


def command_line() -> str:
    python = Path(sys.executable)
    # The venv's python is a symlink: show it as the repository-relative path people type.
    shown = os.path.relpath(python, REPO) if python.is_relative_to(REPO) else str(python)
    return shlex.join([shown, *sys.argv])


def run(args: argparse.Namespace, save: Callable[[dict], None]) -> dict:
    """All sections in one process; `save` is called after each, so a late failure keeps the earlier figures."""
    results: dict = {
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": machine_info(),
        "load_average_at_start": load_average(),
        "limits": {
            "reuters_limit": args.reuters_limit,
            "skip_reuters": args.skip_reuters,
            "skip_llamaindex": args.skip_llamaindex or args.skip_ntrex,
            "skip_ntrex": args.skip_ntrex,
            "skip_questions": args.skip_questions,
        },
    }
    with NetworkGuard() as guard, tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        cfg = bench_config(work, work / "unused")
        model_path = rag.models.resolve_embedding_model(cfg.models)
        embedder, load_seconds = timed(lambda: Embedder(cfg.models))
        results["model"] = {
            "name": cfg.models.embedding,
            "path": model_path,
            "fingerprint": embedder.fingerprint,
            "backend": embedder.backend,
            "load_seconds": round(load_seconds, 2),
            "batch_size": cfg.models.batch_size,
        }
        log(f"model loaded in {load_seconds:.1f} s from {model_path}")
        rows = read_jsonl(NTREX)
        sections: list[tuple[str, Callable[[], dict]]] = []
        if not args.skip_questions:
            sections.append(("questions", lambda: question_sets.run(work, embedder, log)))
        if not args.skip_ntrex:
            sections.append(("ntrex", lambda: ntrex_ours(rows, work, embedder)))
        if not (args.skip_llamaindex or args.skip_ntrex):
            sections.append(("llamaindex", lambda: llamaindex_ntrex(rows, work, model_path, embedder)))
        sections.append(("seeds_reindex", lambda: reindex_unchanged_seeds(work, embedder)))
        if not args.skip_reuters:
            limit, queries, sample = args.reuters_limit, args.queries, args.baseline_sample
            sections.append(("reuters", lambda: reuters_section(work, embedder, limit, queries, sample)))
        for name, section in sections:
            results[name] = section()
            results["network_attempts"] = list(guard.attempts)
            results["seconds"] = round(time.perf_counter() - _STARTED, 1)
            save(results)
    results["load_average_at_end"] = load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        args.json.parent.mkdir(parents=True, exist_ok=True)

        def save(partial: dict) -> None:
            args.json.write_text(json.dumps(partial, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

        results = run(args, save)
        save(results)
        log(f"wrote {args.json}")
    # Blocks written by the other bench scripts (answers, app start-up) are kept as they are.
    kept = blocks(args.results.read_text(encoding="utf-8")) if args.results.exists() else []
    args.results.write_text(render(results) + "".join(f"\n{block}\n" for block in kept), encoding="utf-8")
    log(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
