"""Incremental index build: documents -> passages -> vectors -> a new index generation.

Only files whose bytes changed are read, chunked and embedded again; everything else is carried over from the
previous generation (its passages and vectors). With nothing changed the build only stats the files and
returns, without loading any model.
"""

from __future__ import annotations

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
from .chunking import make_passages
from .config import Config
from .documents import discover, display_name, load_document
from .errors import ConfigError, DocumentSkipped, IndexLoadError, IndexMismatchError
from .lexical import TOKENIZER_VERSION, LexicalIndex
from .models import model_fingerprint, resolve_embedding_model
from .types import BuildSummary, Document, Passage, SkippedFile
from .vectorstore import VectorIndex

log = logging.getLogger("rag")

# Passages are embedded with their document's headline in front: a passage deep inside an article often never
# names the subject ("the deputy minister said ..."), and the headline supplies it. Bump on change: it forces
# a rebuild, since old vectors were made another way.
EMBED_TEXT_VERSION = "title-v1"


def embedding_text(doc: Document, passage_text: str) -> str:
    if not doc.title or passage_text.startswith(doc.title):
        return passage_text
    return f"{doc.title}\n{passage_text}"


def configured_model_fingerprint(cfg: Config) -> str:
    """Which embedding model the config names, without loading it."""
    return model_fingerprint(resolve_embedding_model(cfg.models))


def index_settings(cfg: Config, fingerprint: str) -> dict:
    """Everything that decides what the index holds; an index built under other settings must not be mixed."""
    return {
        "model": {
            "name": cfg.models.embedding,
            "fingerprint": fingerprint,
            "passage_prefix": cfg.models.passage_prefix,
            "embed_text": EMBED_TEXT_VERSION,
        },
        "chunking": {"size": cfg.chunking.size, "overlap": cfg.chunking.overlap},
        "lexical": TOKENIZER_VERSION,
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
    with store.build_lock(index_dir):
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

        new_docs, file_states = _read_changed(root, read_plan, old_files, keep, cfg.corpus.max_file_mb, summary, warn)
        summary.removed = sorted(set(old_files) - set(keep) - set(new_docs))
        if current and not new_docs and keep == old_files:
            # Only files that are still skipped were read again: the index would be written unchanged.
            return _unchanged(summary, old_manifest, started)
        old_data = store.load(index_dir) if keep and old_manifest is not None and not rebuild else None
        for src, state in keep.items():
            file_states.setdefault(src, state)

        documents, table, vectors, embedded = _assemble(cfg, keep, new_docs, old_data, embedder_factory)
        summary.embedded_passages = embedded
        for doc_index, doc in enumerate(documents):
            count = int(np.count_nonzero(table[:, 0] == doc_index)) if len(table) else 0
            state = file_states[doc.source]
            file_states[doc.source] = store.FileState(doc.doc_id, doc.content_hash, state.size, state.mtime_ns, count)

        dim = vectors.shape[1]
        approximate = len(table) > cfg.index.approximate_above
        vector_index = VectorIndex.build(vectors, dim, approximate=approximate, hnsw_m=cfg.index.hnsw_m)
        lexical = LexicalIndex.build([documents[d].text[s:e] for d, s, e in table.tolist()] if len(table) else [])
        acronyms = aliases.learn(
            documents,
            lambda forms: embedder_factory().encode_passages(forms),
            previous=old_data.aliases if old_data is not None else None,
        )
        manifest = {
            "settings": settings,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "documents": len(documents),
            "passages": int(len(table)),
            "dim": dim,
            "index_type": vector_index.kind,
            "languages": dict(Counter(doc.lang for doc in documents)),
            "files": {doc.source: vars(file_states[doc.source]) for doc in documents},
            "aliases": len(acronyms),
        }
        store.write_generation(
            index_dir,
            manifest,
            documents,
            table,
            vector_index,
            lexical,
            language_centroids(documents, table, vectors),
            keep=cfg.index.keep_generations,
            aliases=acronyms,
        )
    summary.documents = len(documents)
    summary.passages = int(len(table))
    summary.unchanged = len(keep)
    summary.seconds = time.perf_counter() - started
    return summary


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
    row_langs = np.array([documents[d].lang for d in table[:, 0]], dtype=object)
    return {lang: vectors[row_langs == lang].mean(axis=0) for lang in sorted(set(row_langs))}


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
    max_file_mb: float,
    summary: BuildSummary,
    warn: Callable[[str], None],
) -> tuple[dict[str, Document], dict[str, store.FileState]]:
    new_docs: dict[str, Document] = {}
    states: dict[str, store.FileState] = {}
    max_bytes = int(max_file_mb * 1024 * 1024)
    bar = _Progress(len(plan), "file", "reading")
    for path, source, st in plan:
        bar.update()
        old = old_files.get(source)
        try:
            doc = load_document(path, root, max_bytes, warn=lambda note, s=source: warn(f"{display_name(s)}: {note}"))
            st = st or path.stat()  # a link that was broken at listing time and has been fixed since
        except (DocumentSkipped, OSError) as exc:
            reason = str(exc) if isinstance(exc, DocumentSkipped) else f"disappeared while it was read ({exc})"
            if old is not None and path.exists():
                # Nothing already indexed is lost: a file that became unreadable keeps its last good version.
                keep[source] = old
                reason += " (kept the previously indexed version)"
            _skip(summary, warn, source, reason)
            continue
        state = store.FileState(doc.doc_id, doc.content_hash, st.st_size, st.st_mtime_ns, 0)
        if old is not None and old.content_hash == doc.content_hash:
            keep[source] = state  # touched but not changed: carry the old vectors, remember the new mtime
            continue
        states[source] = state
        new_docs[source] = doc
        (summary.changed if old is not None else summary.added).append(source)
    bar.close()
    return new_docs, states


def _assemble(
    cfg: Config,
    keep: dict[str, store.FileState],
    new_docs: dict[str, Document],
    old: store.IndexData | None,
    embedder_factory: Callable[[], object],
) -> tuple[list[Document], np.ndarray, np.ndarray, int]:
    """Documents in source order, their passage table and vectors: carried-over rows plus newly embedded ones."""
    old_by_source = {doc.source: i for i, doc in enumerate(old.documents)} if old is not None else {}
    new_passages: dict[str, list[Passage]] = {
        src: make_passages(doc, cfg.chunking.size, cfg.chunking.overlap) for src, doc in new_docs.items()
    }
    to_embed = [embedding_text(new_docs[src], p.text) for src in sorted(new_passages) for p in new_passages[src]]
    new_vectors = None
    embedder = None
    if to_embed:
        embedder = embedder_factory()
        bar = _Progress(len(to_embed), "passage", "embedding")
        new_vectors = embedder.encode_passages(to_embed, progress=bar.update)
        bar.close()
    dim = (
        new_vectors.shape[1]
        if new_vectors is not None
        else (old.vectors.dim if old is not None else int(cfg_dim(embedder_factory, embedder)))
    )
    old_all = old.vectors.vectors() if old is not None and old.size else None

    documents: list[Document] = []
    rows: list[np.ndarray] = []
    vector_parts: list[np.ndarray] = []
    new_offset = {}
    cursor = 0
    for src in sorted(new_passages):
        new_offset[src] = cursor
        cursor += len(new_passages[src])
    for source in sorted(set(keep) | set(new_docs)):
        doc_number = len(documents)
        if source in new_docs:
            doc = new_docs[source]
            passages = new_passages[source]
            table = np.array([(doc_number, p.start, p.end) for p in passages], dtype=np.int64).reshape(-1, 3)
            start = new_offset[source]
            vecs = new_vectors[start : start + len(passages)] if passages else np.zeros((0, dim), np.float32)
        else:
            assert old is not None, "kept files always come with the previous generation loaded"
            old_number = old_by_source[source]
            doc = old.documents[old_number]
            mask = old.passage_doc == old_number
            table = np.stack(
                [np.full(int(mask.sum()), doc_number), old.passage_start[mask], old.passage_end[mask]], axis=1
            ).astype(np.int64)
            vecs = old_all[mask] if old_all is not None else np.zeros((0, dim), np.float32)
        documents.append(doc)
        rows.append(table.reshape(-1, 3))
        vector_parts.append(vecs.reshape(-1, dim))
    table = np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)
    vectors = np.concatenate(vector_parts) if vector_parts else np.zeros((0, dim), dtype=np.float32)
    return documents, table, vectors, len(to_embed)


def cfg_dim(embedder_factory: Callable[[], object], embedder: object | None) -> int:
    """The vector size when there is nothing to embed and no previous index to ask (an empty corpus)."""
    return int((embedder or embedder_factory()).dim)
