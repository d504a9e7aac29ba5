"""Incremental index build: documents -> passages -> vectors -> a new index generation.

Only files whose bytes changed are read, chunked and embedded again; everything else is carried over from the
previous generation (its passages and vectors). With nothing changed the build only stats the files and
returns, without loading any model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import aliases, store
from .config import Config
from .distributed import RayWork, read_file  # imports Ray only when a build uses it
from .documents import discover, display_name
from .embeddings import backend_fingerprint
from .engine import MILVUS, FaissChannels
from .errors import ConfigError, IndexLoadError, IndexMismatchError
from .lexical import TOKENIZER_VERSION, LexicalIndex
from .models import model_fingerprint, recorded_prompts, resolve_embedding_model
from .types import BuildSummary, Document, SkippedFile
from .vectorstore import VectorIndex

log = logging.getLogger("rag")

# Passages are embedded with their document's headline in front: a passage deep inside an article often never
# names the subject ("the deputy minister said ..."), and the headline supplies it. Bump on change: it forces
# a rebuild, since old vectors were made another way.
EMBED_TEXT_VERSION = "title-v1"

# Passages whose texts are made and embedded at a time: a multiple of the embedder's own batches, small next to
# any corpus worth measuring (a few MB of text).
EMBED_BATCH = 4096
# With Ray, each call starts the workers' actors (each loads the model): far fewer, larger calls.
RAY_EMBED_BATCH = 65536
# Rows summed at a time for the language centroids.
_CENTROID_SLICE = 8192


def embedding_text(doc: Document, passage_text: str) -> str:
    if not doc.title or passage_text.startswith(doc.title):
        return passage_text
    return f"{doc.title}\n{passage_text}"


def configured_model_fingerprint(cfg: Config) -> str:
    """Which embedding model (and backend) the config names, without loading it."""
    return backend_fingerprint(model_fingerprint(resolve_embedding_model(cfg.models)), cfg.models.backend)


def index_settings(cfg: Config, fingerprint: str) -> dict:
    """Everything that decides what the index holds; an index built under other settings must not be mixed."""
    return {
        "model": {
            "name": cfg.models.embedding,
            "fingerprint": fingerprint,
            # the model's recorded document prompt; the key keeps its old name so existing indexes still match
            "passage_prefix": recorded_prompts(resolve_embedding_model(cfg.models))[1],
            "embed_text": EMBED_TEXT_VERSION,
        },
        "chunking": {"size": cfg.chunking.size, "overlap": cfg.chunking.overlap},
        "lexical": TOKENIZER_VERSION,
        **engine_settings(cfg),
    }


def engine_settings(cfg: Config) -> dict:
    """Where the index lives besides its folder: nothing for FAISS (its files are the folder), the Milvus
    address and collection prefix otherwise, so that switching engine or server is a mismatch to rebuild."""
    if cfg.index.engine != MILVUS:
        return {}
    from .milvus_engine import default_collection, resolve_uri

    index_dir = Path(cfg.index.path)
    uri = resolve_uri(cfg.index.milvus_uri, index_dir)
    return {
        "engine": {
            "kind": MILVUS,
            "uri": uri,
            "collection": cfg.index.milvus_collection or default_collection(index_dir),
        }
    }


def describe_mismatch(old: dict, new: dict) -> str:
    parts = []
    if old.get("model") != new.get("model"):
        parts.append(
            f"embedding model {old.get('model', {}).get('name')!r} "
            f"(fingerprint {old.get('model', {}).get('fingerprint')}) vs configured "
            f"{new['model']['name']!r} (fingerprint {new['model']['fingerprint']})"
        )
    if old.get("chunking") != new.get("chunking"):
        parts.append(f"chunking {old.get('chunking')} vs configured {new['chunking']}")
    if old.get("engine") != new.get("engine"):
        parts.append(f"index engine {old.get('engine', 'faiss')} vs configured {new.get('engine', 'faiss')}")
    if old.get("lexical") != new.get("lexical"):
        parts.append(f"tokeniser {old.get('lexical')!r} vs {new['lexical']!r}")
    return "; ".join(parts) or "settings differ"


def _show_progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class _Progress:
    """A tqdm bar on a terminal; nothing in CI logs or when output is redirected."""

    def __init__(self, total: int, unit: str, desc: str):
        self._bar = None
        if _show_progress() and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def build(
    cfg: Config,
    embedder_factory: Callable[[], object],
    fingerprint: str,
    *,
    rebuild: bool = False,
    warn: Callable[[str], None] | None = None,
) -> BuildSummary:
    """Bring the index in `cfg.index.path` up to date with the folder `cfg.corpus.path`."""
    warn = warn or log.warning
    started = time.perf_counter()
    root = Path(cfg.corpus.path)
    index_dir = Path(cfg.index.path)
    if not root.is_dir():
        raise ConfigError(
            f"The corpus folder {root} does not exist. Create it, set [corpus] path in config.toml, "
            "or pass --corpus DIR."
        )
    settings = index_settings(cfg, fingerprint)
    summary = BuildSummary()
    with store.build_lock(index_dir), contextlib.ExitStack() as cleanup:
        ray = RayWork(cfg, cleanup) if cfg.index.ray_address else None
        try:
            old_manifest = store.read_manifest(index_dir)
        except IndexLoadError:
            if not rebuild:
                raise
            old_manifest = None
        if old_manifest is not None and old_manifest.get("settings") != settings and not rebuild:
            if cfg.index.on_mismatch != "rebuild":
                raise IndexMismatchError(
                    f"The index in {index_dir} was built with other settings: "
                    f"{describe_mismatch(old_manifest.get('settings', {}), settings)}. Run "
                    '`python -m rag index --rebuild`, or set [index] on_mismatch = "rebuild" in config.toml.'
                )
            rebuild = True
        summary.rebuilt = rebuild or old_manifest is None
        old_files: dict[str, store.FileState] = {}
        if old_manifest is not None and not rebuild:
            old_files = {src: store.FileState(**st) for src, st in old_manifest["files"].items()}

        unlistable: list[tuple[str, str]] = []
        other_types: Counter = Counter()
        keep, read_plan, found = _plan(root, discover(root, cfg.corpus.extensions, unlistable, other_types), old_files)
        summary.other_file_types = dict(sorted(other_types.items(), key=lambda item: (-item[1], item[0])))
        for folder, reason in unlistable:
            kept = _keep_unlistable(folder, old_files, keep, found)
            note = f" (kept the {kept} previously indexed file(s) in it)" if kept else ""
            _skip(summary, warn, folder, reason + note)
        # An index written before acronym links existed is brought up to date once, without re-embedding.
        current = not rebuild and old_manifest is not None and "aliases" in old_manifest
        if current and not read_plan and set(old_files) == found:
            return _unchanged(summary, old_manifest, started)

        new_docs, file_states, spans = _read_changed(root, read_plan, old_files, keep, cfg, summary, warn, ray)
        summary.removed = sorted(set(old_files) - set(keep) - set(new_docs))
        if current and not new_docs and keep == old_files:
            # Only files that are still skipped were read again: the index would be written unchanged.
            return _unchanged(summary, old_manifest, started)
        old_data = store.load(index_dir) if keep and old_manifest is not None and not rebuild else None
        for src, state in keep.items():
            file_states.setdefault(src, state)

        documents, table, vectors, embedded = _assemble(cfg, keep, new_docs, spans, old_data, embedder_factory, ray)
        previous_aliases = old_data.aliases if old_data is not None else None
        if old_data is not None:
            old_data.engine.close()
        del old_data, new_docs  # the documents list holds every text still needed
        summary.embedded_passages = embedded
        counts = np.bincount(table[:, 0], minlength=len(documents)).tolist()
        for doc, count in zip(documents, counts, strict=True):
            state = file_states[doc.source]
            file_states[doc.source] = store.FileState(doc.doc_id, doc.content_hash, state.size, state.mtime_ns, count)

        dim = vectors.shape[1]
        centroids = language_centroids(documents, table, vectors)
        lexical = LexicalIndex.build(documents[d].text[s:e] for d, s, e in table.tolist())
        channels = _channels(cfg, vectors, lexical, documents, table)
        del vectors  # the channels hold what they need; our copy would double the largest structure of the build
        acronyms = aliases.learn(
            documents, lambda forms: embedder_factory().encode_passages(forms), previous=previous_aliases
        )
        manifest = {
            "settings": settings,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "documents": len(documents),
            "passages": int(len(table)),
            "dim": dim,
            "index_type": channels.index_type,
            "languages": dict(Counter(doc.lang for doc in documents)),
            "files": {doc.source: vars(file_states[doc.source]) for doc in documents},
            "aliases": len(acronyms),
        }
        store.write_generation(
            index_dir,
            manifest,
            documents,
            table,
            channels,
            centroids,
            keep=cfg.index.keep_generations,
            aliases=acronyms,
        )
    summary.documents = len(documents)
    summary.passages = int(len(table))
    summary.unchanged = len(keep)
    summary.seconds = time.perf_counter() - started
    return summary


def _channels(cfg: Config, vectors: np.ndarray, lexical: LexicalIndex, documents: list[Document], table: np.ndarray):
    """The configured engine's writer for this generation's vectors and lexical index."""
    approximate = len(table) > cfg.index.approximate_above
    if cfg.index.engine == MILVUS:
        from .milvus_engine import MilvusChannels, default_collection, resolve_uri

        index_dir = Path(cfg.index.path)
        return MilvusChannels(
            resolve_uri(cfg.index.milvus_uri, index_dir),
            cfg.index.milvus_token_env,
            cfg.index.milvus_collection or default_collection(index_dir),
            vectors,
            lexical,
            documents,
            table,
            approximate=approximate,
            hnsw_m=cfg.index.hnsw_m,
        )
    dense = VectorIndex.build(vectors, vectors.shape[1], approximate=approximate, hnsw_m=cfg.index.hnsw_m)
    return FaissChannels(dense, lexical)


def _keep_unlistable(
    folder: str, old_files: dict[str, store.FileState], keep: dict[str, store.FileState], found: set[str]
) -> int:
    """Carry over the indexed files of a folder that cannot be listed now (permissions, a failing disk): it
    was not deleted, and nothing already indexed is lost. Returns how many were kept."""
    prefix = "" if folder == "./" else folder
    kept = [src for src in old_files if src.startswith(prefix) and src not in found]
    for src in kept:
        keep[src] = old_files[src]
        found.add(src)
    return len(kept)


def _unchanged(summary: BuildSummary, manifest: dict, started: float) -> BuildSummary:
    summary.documents = len(manifest["files"])
    summary.passages = int(manifest.get("passages", 0))
    summary.unchanged = len(manifest["files"])
    summary.seconds = time.perf_counter() - started
    return summary


def _skip(summary: BuildSummary, warn: Callable[[str], None], source: str, reason: str) -> None:
    """Report a file (or folder) the build leaves out: one line, in the summary and through `warn`."""
    shown, reason = display_name(source), " ".join(reason.split())  # a parser's message may span lines
    summary.skipped.append(SkippedFile(shown, reason))
    warn(f"{shown}: {reason}")


def language_centroids(documents: list[Document], table: np.ndarray, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Mean passage vector per language. Multilingual embeddings score same-language pairs higher whatever they
    say; subtracting each language's mean at search time removes most of that bias (see retrieval.py)."""
    if not len(table):
        return {}
    doc_langs = np.array([doc.lang for doc in documents], dtype=object)
    row_langs = doc_langs[table[:, 0]]
    centroids = {}
    for lang in sorted(set(row_langs)):
        rows = np.flatnonzero(row_langs == lang)
        # Summed in slices: vectors[rows] at once would copy most of the largest array of the build.
        total = np.zeros(vectors.shape[1], dtype=np.float64)
        for start in range(0, len(rows), _CENTROID_SLICE):
            total += vectors[rows[start : start + _CENTROID_SLICE]].sum(axis=0, dtype=np.float64)
        centroids[lang] = (total / len(rows)).astype(np.float32)
    return centroids


def _plan(
    root: Path, paths: list[Path], old_files: dict[str, store.FileState]
) -> tuple[dict[str, store.FileState], list[tuple[Path, str, os.stat_result | None]], set[str]]:
    """Split files into those certainly unchanged (same size and mtime) and those to read."""
    keep: dict[str, store.FileState] = {}
    to_read: list[tuple[Path, str, os.stat_result | None]] = []
    found: set[str] = set()
    for path in paths:
        source = path.relative_to(root).as_posix()
        try:
            st = path.stat()
        except OSError:
            if os.path.lexists(path):  # a link loop or a link to nothing: reading it says which, as a skip
                found.add(source)
                to_read.append((path, source, None))
            continue  # otherwise it vanished between listing and stat: no longer part of the corpus
        found.add(source)
        old = old_files.get(source)
        if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            keep[source] = old
        else:
            to_read.append((path, source, st))
    return keep, to_read, found


def _read_changed(
    root: Path,
    plan: list[tuple[Path, str, os.stat_result | None]],
    old_files: dict[str, store.FileState],
    keep: dict[str, store.FileState],
    cfg: Config,
    summary: BuildSummary,
    warn: Callable[[str], None],
    ray: RayWork | None,
) -> tuple[dict[str, Document], dict[str, store.FileState], dict[str, list[tuple[int, int]]]]:
    """The changed files' documents, states and passage spans: read and chunked here, or on Ray workers."""
    new_docs: dict[str, Document] = {}
    states: dict[str, store.FileState] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    max_bytes = int(cfg.corpus.max_file_mb * 1024 * 1024)
    size, overlap = cfg.chunking.size, cfg.chunking.overlap
    if ray is not None and plan:
        results = iter(ray.read(plan, root, max_bytes))
    else:  # one file at a time, so a big corpus's texts are never all read before the first is handled
        results = (read_file(str(path), source, str(root), max_bytes, size, overlap) for path, source, _ in plan)
    bar = _Progress(len(plan), "file", "reading")
    for (path, source, st), result in zip(plan, results, strict=True):
        bar.update()
        old = old_files.get(source)
        for note in result.notes:
            warn(f"{display_name(source)}: {note}")
        reason = result.skip_reason
        if reason is None:
            try:
                st = st or path.stat()  # a link that was broken at listing time and has been fixed since
            except OSError as exc:
                reason = f"disappeared while it was read ({exc})"
        if reason is not None or result.document is None:
            reason = reason or "could not be read"
            if old is not None and path.exists():
                # Nothing already indexed is lost: a file that became unreadable keeps its last good version.
                keep[source] = old
                reason += " (kept the previously indexed version)"
            _skip(summary, warn, source, reason)
            continue
        doc = result.document
        state = store.FileState(doc.doc_id, doc.content_hash, st.st_size, st.st_mtime_ns, 0)
        if old is not None and old.content_hash == doc.content_hash:
            keep[source] = state  # touched but not changed: carry the old vectors, remember the new mtime
            continue
        states[source] = state
        new_docs[source] = doc
        spans[source] = result.spans
        (summary.changed if old is not None else summary.added).append(source)
    bar.close()
    return new_docs, states, spans


def _assemble(
    cfg: Config,
    keep: dict[str, store.FileState],
    new_docs: dict[str, Document],
    new_spans: dict[str, list[tuple[int, int]]],
    old: store.IndexData | None,
    embedder_factory: Callable[[], object],
    ray: RayWork | None,
) -> tuple[list[Document], np.ndarray, np.ndarray, int]:
    """Documents in source order, their passage table and vectors: carried-over rows plus newly embedded ones.

    Passages are kept as (start, end) offsets; their texts are made a batch at a time for the embedder, so the
    passages of a corpus never all exist as strings at once. Vectors go straight into the build's one array."""
    old_rows = _rows_by_document(old) if old is not None else []
    old_by_source = {doc.source: i for i, doc in enumerate(old.documents)} if old is not None else {}
    documents: list[Document] = []
    spans: list[np.ndarray] = []
    carried: list[np.ndarray] = []  # for each carried-over document, its rows in the previous generation
    for source in sorted(set(keep) | set(new_docs)):
        if source in new_docs:
            doc = new_docs[source]
            doc_spans = np.array(new_spans[source], dtype=np.int64)
        else:
            assert old is not None, "kept files always come with the previous generation loaded"
            rows = old_rows[old_by_source[source]]
            doc = old.documents[old_by_source[source]]
            doc_spans = np.stack([old.passage_start[rows], old.passage_end[rows]], axis=1)
            carried.append(rows)
        documents.append(doc)
        spans.append(doc_spans.reshape(-1, 2))
    counts = np.array([len(s) for s in spans], dtype=np.int64)
    table = np.zeros((int(counts.sum()), 3), dtype=np.int64)
    if len(table):
        table[:, 0] = np.repeat(np.arange(len(documents)), counts)
        table[:, 1:] = np.concatenate(spans)
    del spans

    row_is_new = np.array([doc.source in new_docs for doc in documents], dtype=bool)[table[:, 0]]
    new_rows = np.flatnonzero(row_is_new)
    encode = (
        ray.encode if ray is not None else (lambda texts, progress: embedder_factory().encode_passages(texts, progress))
    )
    vectors = (
        _embed_rows(documents, table, new_rows, encode, RAY_EMBED_BATCH if ray else EMBED_BATCH)
        if len(new_rows)
        else None
    )
    if vectors is None:
        dim = old.vectors.dim if old is not None else cfg_dim(embedder_factory)
        vectors = np.zeros((len(table), dim), dtype=np.float32)
    if carried:
        # Carried-over documents keep their rows' order, so their rows here line up with the old rows in order.
        assert old is not None
        vectors[np.flatnonzero(~row_is_new)] = old.vectors.vectors(np.concatenate(carried))
    return documents, table, vectors, len(new_rows)


def _rows_by_document(data: store.IndexData) -> list[np.ndarray]:
    """The rows of each document of a loaded generation, in row order (one pass, not one scan per document)."""
    order = np.argsort(data.passage_doc, kind="stable")
    bounds = np.searchsorted(data.passage_doc[order], np.arange(len(data.documents) + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(len(data.documents))]


def _embed_rows(
    documents: list[Document],
    table: np.ndarray,
    rows: np.ndarray,
    encode: Callable[[list[str], Callable[[int], None]], np.ndarray],
    batch_rows: int,
) -> np.ndarray:
    """A vector array for every row of `table`, with `rows` embedded; the other rows are left at zero."""
    vectors: np.ndarray | None = None
    bar = _Progress(len(rows), "passage", "embedding")
    for first in range(0, len(rows), batch_rows):
        batch = rows[first : first + batch_rows]
        texts = []
        for doc_number, start, end in table[batch].tolist():
            doc = documents[doc_number]
            texts.append(embedding_text(doc, doc.text[start:end]))
        encoded = encode(texts, bar.update)
        if vectors is None:
            vectors = np.zeros((len(table), encoded.shape[1]), dtype=np.float32)
        vectors[batch] = encoded
    bar.close()
    assert vectors is not None, "called with at least one row"
    return vectors


def cfg_dim(embedder_factory: Callable[[], object]) -> int:
    """The vector size when there is nothing to embed and no previous index to ask (an empty corpus)."""
    return int(embedder_factory().dim)
