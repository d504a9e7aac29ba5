"""Index build at scale: 10,000 small files and one 100 MB file in one corpus, built in a child process.

    .venv/bin/python bench/scale.py                      # both runs below, then the SCALE block of RESULTS.md
    .venv/bin/python bench/scale.py --embedder hash      # full size, hash stand-in embedder (a few minutes)
    .venv/bin/python bench/scale.py --embedder model     # the real e5 model on 2 % of the corpus (--scale 0.02)

The corpus is generated in a temporary folder (never in the repository) from the NTREX articles in
../shared/eval/ntrex_az_ru_en_docs.jsonl and the seeds: small files of 1-3 KB, each a run of sentences of one
article in one language under its headline, and one plain-text file of about 100 MB holding many articles in
az, ru and en one after the other. `--scale` shrinks both (0.1: 1,000 files and a 10 MB file).

The build is the real one (`rag.Assistant.build_index()` with the default configuration) in a child process,
so its memory is its own. The embedder is either:

- `hash`: a stand-in defined here that hashes byte trigrams of each passage into a 384-dim unit vector (the
  size of e5-small's), thousands of passages a second. It measures the pipeline's own time and memory at full
  size: reading, cleaning, chunking, BM25, FAISS, writing. With the real model 200,000 passages would take
  hours on 2 cores (about 20 passages/s), and that time is the model's, not the pipeline's.
- `model`: the real multilingual-e5-small, on a fraction of the corpus (`--scale`, default 0.02 for it).

Measured in the child: wall time of `build_index()` and of each step, peak resident memory of each step (the
kernel's high-water mark, VmHWM, reset between steps through /proc/self/clear_refs) and of the whole build,
passages, documents, index size on disk, the FAISS index type; then the index is loaded as a search would load
it, and searched once. Raw figures go to bench/out/scale-<embedder>.json; the SCALE block of bench/RESULTS.md
is rendered from the JSON files present, so a run of one embedder keeps the other's last figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import write_block  # noqa: E402

NTREX = ROOT.parent / "shared" / "eval" / "ntrex_az_ru_en_docs.jsonl"
SEEDS = ROOT / "seeds"
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "RESULTS.md"
SEED = 20261124
FILES_PER_FOLDER = 500
MB = 1024 * 1024
EMBEDDERS = ("hash", "model")
# The real model embeds about 20 passages/s on 2 cores: 2 % of the corpus is some 4,500 passages, a few minutes.
DEFAULT_SCALE = {"hash": 1.0, "model": 0.02}


# -- the corpus ----------------------------------------------------------------------------------------------


def load_articles() -> list[tuple[str, list[str]]]:
    """(language, lines) of every NTREX article in az, ru and en, and of every seed; the first line is the title."""
    if not NTREX.is_file():
        raise SystemExit(f"{NTREX} is missing: the corpus is generated from it (see ../shared/eval/README.md).")
    articles = []
    with NTREX.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            for lang in ("az", "ru", "en"):
                lines = [s.strip() for s in record[lang].split("\n") if s.strip()]
                articles.append((lang, lines))
    for path in sorted(SEEDS.glob("*.txt")):
        lines = [s.strip() for s in path.read_text(encoding="utf-8").split("\n") if s.strip()]
        articles.append(("seed", lines))
    return articles


def paragraphs(sentences: list[str], rng: random.Random) -> str:
    """Sentences grouped into paragraphs of 1-3, separated by blank lines, as news files are."""
    out, k = [], 0
    while k < len(sentences):
        n = rng.randint(1, 3)
        out.append(" ".join(sentences[k : k + n]))
        k += n
    return "\n\n".join(out)


def small_file_text(articles: list[tuple[str, list[str]]], rng: random.Random) -> str:
    """A headline and a run of sentences of one article (continued from others of its language) of 1-3 KB."""
    target = rng.randint(1000, 3000)
    lang, lines = rng.choice(articles)
    title, body = lines[0], lines[1:]
    start = rng.randrange(len(body)) if body else 0
    sentences, size = [], len(title.encode()) + 2
    while size < target:
        if start >= len(body):
            lines = rng.choice([a for a in articles if a[0] == lang] or articles)[1]
            body, start = lines[1:], 0
            continue
        sentences.append(body[start])
        size += len(body[start].encode()) + 1
        start += 1
    return f"{title}\n\n{paragraphs(sentences, rng)}\n"


def write_corpus(folder: Path, files: int, big_mb: float) -> dict:
    """`files` small files in sub-folders of 500, and big/archive.txt of `big_mb` MB; returns what was written."""
    articles = load_articles()
    rng = random.Random(SEED)
    small_bytes = 0
    for i in range(files):
        path = folder / "small" / f"{i // FILES_PER_FOLDER:02d}" / f"{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = small_file_text(articles, rng).encode("utf-8")
        path.write_bytes(data)
        small_bytes += len(data)
    big = folder / "big" / "archive.txt"
    big.parent.mkdir(parents=True, exist_ok=True)
    target = int(big_mb * MB)
    written, number = 0, 0
    with big.open("w", encoding="utf-8") as fh:  # streamed: the generator never holds the 100 MB
        fh.write("News archive, all languages\n\n")
        while written < target:
            number += 1
            _, lines = rng.choice(articles)
            body = lines[1:]
            rng.shuffle(body)  # so the archive does not repeat the same passages over and over
            piece = f"{lines[0]} ({number})\n\n{paragraphs(body, rng)}\n\n"
            fh.write(piece)
            written += len(piece.encode("utf-8"))
    return {
        "small_files": files,
        "small_bytes": small_bytes,
        "big_file_bytes": big.stat().st_size,
        "big_file_articles": number,
    }


# -- the child: one build, measured ----------------------------------------------------------------------------


class HashEmbedder:
    """A deterministic stand-in for e5-small: byte trigrams of the text hashed into 384 dimensions, normalised.

    Similar texts get similar vectors, so search still finds a passage by its own words; it costs a few
    microseconds per passage, so a build with it measures everything but the model."""

    fingerprint = "bench-hash-trigrams-384-v1"
    dim = 384
    name = "hash"

    def _vectors(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint32)
            if len(data) < 3:
                data = np.frombuffer(f"{text}###".encode(), dtype=np.uint8).astype(np.uint32)
            grams = (data[:-2] * 65599 + data[1:-1]) * 65599 + data[2:]
            out[row] = np.bincount(grams % self.dim, minlength=self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode_queries(self, texts) -> np.ndarray:
        return self._vectors(list(texts))

    def encode_passages(self, texts, progress=None) -> np.ndarray:
        vectors = self._vectors(list(texts))
        if progress is not None:
            progress(len(texts))
        return vectors


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


class StepMeter:
    """Time and peak resident memory of each step of the build, by wrapping the functions that do them.

    The peak is the kernel's high-water mark (VmHWM), reset at every step boundary by writing 5 to
    /proc/self/clear_refs, so each step's peak is its own and nothing between two samples is missed."""

    def __init__(self):
        self.steps: list[dict] = []
        self.segment_peaks: list[int] = []
        self.resettable = self._reset()
        self.depth = 0

    def _reset(self) -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def boundary(self) -> int:
        """The peak since the last boundary (kB), starting a new segment."""
        peak = _status_kb("VmHWM")
        self.segment_peaks.append(peak)
        self._reset()
        return peak

    def wrap(self, owner, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)
        is_classmethod = isinstance(owner.__dict__.get(attribute), classmethod)
        function = original.__func__ if is_classmethod else original

        @functools.wraps(function)
        def measured(*args, **kwargs):
            if self.depth:  # a step inside a measured step belongs to it
                return function(*args, **kwargs)
            self.depth += 1
            self.boundary()
            rss_before = _status_kb("VmRSS")
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                peak = self.boundary()
                self.depth -= 1
                self.steps.append(
                    {
                        "step": label,
                        "seconds": round(seconds, 2),
                        "rss_before_mb": round(rss_before / 1024, 1),
                        "peak_mb": round(peak / 1024, 1),
                        "rss_after_mb": round(_status_kb("VmRSS") / 1024, 1),
                    }
                )

        setattr(owner, attribute, classmethod(measured) if is_classmethod else measured)


def instrument(meter: StepMeter) -> None:
    """Wrap each step of rag.indexer.build that exists in this version of the code."""
    from rag import indexer, store
    from rag.lexical import LexicalIndex
    from rag.vectorstore import VectorIndex

    for owner, attribute, label in (
        (indexer, "_plan", "list and stat files"),
        (indexer, "_read_changed", "read and clean files"),
        (indexer, "_assemble", "chunk and embed"),
        (VectorIndex, "build", "FAISS index"),
        (LexicalIndex, "build", "BM25 index"),
        (indexer, "language_centroids", "language centroids"),
        (store, "write_generation", "write the generation"),
    ):
        if hasattr(owner, attribute):
            meter.wrap(owner, attribute, label)


def child(corpus: Path, index: Path, embedder_kind: str, stats_path: Path) -> int:
    """Build the index of `corpus` once, measured; write the figures to `stats_path`."""
    import rag
    from rag import store

    started_process = time.perf_counter()
    config = rag.load_config({"corpus": {"path": str(corpus)}, "index": {"path": str(index)}})
    embedder = HashEmbedder() if embedder_kind == "hash" else None
    assistant = rag.Assistant(config, embedder=embedder)
    meter = StepMeter()
    instrument(meter)
    warnings: list[str] = []
    rss_start = _status_kb("VmRSS")
    meter.boundary()
    started = time.perf_counter()
    summary = assistant.build_index(warn=warnings.append)
    build_seconds = time.perf_counter() - started
    meter.boundary()
    build_peak_kb = max(meter.segment_peaks)

    folder = store.current_generation(index)
    parts = {p.name: p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    started = time.perf_counter()
    data = assistant.index()
    load_seconds = time.perf_counter() - started
    text_chars = sum(len(doc.text) for doc in data.documents)
    text_bytes = sum(sys.getsizeof(doc.text) for doc in data.documents)
    big_number = max(range(len(data.documents)), key=lambda k: len(data.documents[k].text))
    big = data.documents[big_number]
    big_rows = np.flatnonzero(data.passage_doc == big_number)
    probe = data.passage_text(int(big_rows[len(big_rows) // 2])) if len(big_rows) else big.title
    started = time.perf_counter()
    hits = assistant.search(probe, k=3)
    search_seconds = time.perf_counter() - started
    stats = {
        "embedder": embedder_kind,
        "config": {
            "max_file_mb": config.corpus.max_file_mb,
            "approximate_above": config.index.approximate_above,
            "chunking": [config.chunking.size, config.chunking.overlap],
            "batch_size": config.models.batch_size,
        },
        "summary": summary.to_dict() | {"added": len(summary.added), "skipped": [vars(s) for s in summary.skipped]},
        "warnings": warnings[:20],
        "build_seconds": round(build_seconds, 1),
        "rss_start_mb": round(rss_start / 1024, 1),
        "build_peak_mb": round(build_peak_kb / 1024, 1),
        "peak_exact": meter.resettable,
        "steps": meter.steps,
        "index_type": data.vectors.kind,
        "index_bytes": sum(parts.values()),
        "index_parts": parts,
        "passages": data.size,
        "documents": len(data.documents),
        "largest_document_chars": len(big.text),
        "text_chars": text_chars,
        "text_in_memory_mb": round(text_bytes / MB, 1),
        "vectors_mb": round(data.size * data.vectors.dim * 4 / MB, 1),
        "load_seconds": round(load_seconds, 2),
        "rss_after_load_mb": round(_status_kb("VmRSS") / 1024, 1),
        "search_seconds": round(search_seconds, 3),
        "search_found_passage": bool(hits) and hits[0].text == probe,
        "child_seconds": round(time.perf_counter() - started_process, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    stats_path.write_text(json.dumps(stats, indent=1), encoding="utf-8")
    return 0


# -- the parent ------------------------------------------------------------------------------------------------


def sample_rss(pid: int, peak: list[int], stop: threading.Event) -> None:
    """Highest VmRSS of the child seen every 0.2 s: a cross-check of the high-water marks it reports itself."""
    status = Path(f"/proc/{pid}/status")
    while not stop.wait(0.2):
        try:
            match = re.search(r"^VmRSS:\s+(\d+) kB", status.read_text(), re.M)
        except OSError:
            return
        if match:
            peak[0] = max(peak[0], int(match.group(1)))


def run_build(work: Path, embedder_kind: str, scale: float, files: int, big_mb: float) -> dict:
    corpus, index = work / "corpus", work / "index"
    n_files, size_mb = max(1, round(files * scale)), big_mb * scale
    print(f"[{embedder_kind}] writing {n_files} small files and a {size_mb:g} MB file in {corpus}", file=sys.stderr)
    started = time.perf_counter()
    written = write_corpus(corpus, n_files, size_mb)
    written["seconds"] = round(time.perf_counter() - started, 1)
    stats_path = work / "stats.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(corpus), str(index), embedder_kind]
    command.append(str(stats_path))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"[{embedder_kind}] building the index in a child process", file=sys.stderr)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    peak, stop = [0], threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(process.pid, peak, stop), daemon=True)
    sampler.start()
    code = process.wait()
    stop.set()
    if code != 0:
        raise SystemExit(f"the build child exited with {code}")
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    stats.update(
        corpus=written,
        scale=scale,
        sampled_peak_mb=round(peak[0] / 1024, 1),
        process_seconds=round(time.perf_counter() - started, 1),
    )
    return stats


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{cpu}, {os.cpu_count()} cores, {ram:.1f} GB RAM, Python {platform.python_version()}"


def mb(value: float) -> str:
    return f"{value:,.0f} MB"


def render_run(stats: dict) -> list[str]:
    corpus, summary = stats["corpus"], stats["summary"]
    label = (
        "hash stand-in embedder (the pipeline's own cost; no model)"
        if stats["embedder"] == "hash"
        else "real multilingual-e5-small (its loading is part of the chunk and embed step)"
    )
    passages_per_s = stats["passages"] / stats["build_seconds"] if stats["build_seconds"] else 0
    largest_parts = sorted(stats["index_parts"].items(), key=lambda item: -item[1])[:5]
    parts = ", ".join(f"{name} {size / MB:,.1f}" for name, size in largest_parts)
    found = "yes" if stats["search_found_passage"] else "no"
    lines = [
        f"### {label}, scale {stats['scale']:g}",
        "",
        f"- Command: `{stats['command']}`; {stats['date']}; load average (1 min) at start / end "
        f"{stats['load_start']} / {stats['load_end']} on {os.cpu_count()} cores",
        f"- Corpus: {corpus['small_files']:,} small files ({corpus['small_bytes'] / MB:.1f} MB) and one file of "
        f"{corpus['big_file_bytes'] / MB:.1f} MB ({corpus['big_file_articles']:,} articles); "
        f"{stats['documents']:,} documents indexed, {len(summary['skipped'])} skipped",
        f"- Build: **{stats['build_seconds']:,.1f} s** wall ({passages_per_s:,.0f} passages/s), "
        f"**{stats['passages']:,} passages**, FAISS index `{stats['index_type']}` "
        f"([index] approximate_above = {stats['config']['approximate_above']:,})",
        f"- Peak resident memory of the build: **{mb(stats['build_peak_mb'])}** "
        f"(the child process held {mb(stats['rss_start_mb'])} before it; sampled from outside every 0.2 s: "
        f"{mb(stats['sampled_peak_mb'])}; ru_maxrss {mb(stats['ru_maxrss_mb'])})",
        f"- Index on disk: {stats['index_bytes'] / MB:,.1f} MB ({parts} MB)",
        f"- Held by any process that uses this index: document texts {mb(stats['text_in_memory_mb'])} "
        f"({stats['text_chars'] / 1e6:,.1f} M characters, {stats['largest_document_chars'] / 1e6:,.1f} M of them "
        f"in the big file), vectors {mb(stats['vectors_mb'])}; loading it took {stats['load_seconds']:.1f} s and "
        f"left the process at {mb(stats['rss_after_load_mb'])}",
        f"- Searching with the text of a passage from the middle of the big file returned that passage first: "
        f"{found} ({stats['search_seconds'] * 1000:.0f} ms)",
        f"- {where_the_peak_is(stats)}",
        "",
        "| step | seconds | RSS before | peak during | RSS after |",
        "|---|---|---|---|---|",
    ]
    for step in stats["steps"]:
        lines.append(
            f"| {step['step']} | {step['seconds']:,.1f} | {mb(step['rss_before_mb'])} | {mb(step['peak_mb'])} | "
            f"{mb(step['rss_after_mb'])} |"
        )
    lines.append("")
    return lines


def where_the_peak_is(stats: dict) -> str:
    """The step with the highest peak, beside the sizes of the structures a build cannot do without."""
    top = max(stats["steps"], key=lambda step: step["peak_mb"])
    parts = stats["index_parts"]
    bm25 = sum(size for name, size in parts.items() if ".index." in name) / MB
    return (
        f'The peak is reached in the step "{top["step"]}" ({mb(top["peak_mb"])}, {mb(top["rss_before_mb"])} '
        f"before it). What a build must hold, for scale: the document texts {mb(stats['text_in_memory_mb'])}, the "
        f"vectors {mb(stats['vectors_mb'])} (as an array until the FAISS index is built, then inside it), the FAISS "
        f"index {mb(parts.get('dense.faiss', 0) / MB)} (its file), the BM25 matrix {mb(bm25)} (its files)"
    )


def render(runs: list[dict]) -> str:
    lines = [
        "## Scale: 10,000 small files and one 100 MB file (`bench/scale.py`)",
        "",
        "Each build runs in its own child process with the default configuration; peaks are the kernel's high-water "
        "mark of resident memory, reset between steps (`bench/README.md` explains the figures).",
        "",
    ]
    for stats in runs:
        lines += render_run(stats)
    return "\n".join(lines)


def saved_runs() -> list[dict]:
    runs = []
    for kind in EMBEDDERS:
        path = OUT / f"scale-{kind}.json"
        if path.is_file():
            runs.append(json.loads(path.read_text(encoding="utf-8")))
    return runs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child(Path(argv[1]), Path(argv[2]), argv[3], Path(argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", choices=(*EMBEDDERS, "both"), default="both", help="default: both runs")
    parser.add_argument("--scale", type=float, help="fraction of the corpus (default: 1 for hash, 0.02 for model)")
    parser.add_argument("--files", type=int, default=10_000, help="small files at scale 1")
    parser.add_argument("--big-mb", type=float, default=100.0, help="size of the big file at scale 1")
    parser.add_argument("--workdir", type=Path, help="where to generate the corpus (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and index")
    parser.add_argument("--no-results", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    kinds = list(EMBEDDERS) if args.embedder == "both" else [args.embedder]
    OUT.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        scale = args.scale if args.scale is not None else DEFAULT_SCALE[kind]
        work = Path(tempfile.mkdtemp(prefix=f"rag-scale-{kind}-", dir=args.workdir))
        try:
            load_start = f"{os.getloadavg()[0]:.1f}"
            stats = run_build(work, kind, scale, args.files, args.big_mb)
            stats.update(
                command=f"python bench/scale.py --embedder {kind} --scale {scale:g}",
                date=datetime.now(UTC).isoformat(timespec="seconds"),
                machine=machine(),
                load_start=load_start,
                load_end=f"{os.getloadavg()[0]:.1f}",
            )
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        (OUT / f"scale-{kind}.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
        print("\n".join(render_run(stats)))
    if not args.no_results:
        runs = saved_runs()
        body = render(runs) + f"\nMachine: {runs[0]['machine']}.\n"
        write_block("SCALE", body, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
