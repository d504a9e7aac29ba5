"""The index on disk: immutable generations switched atomically.

    index/
      CURRENT              name of the generation in use (replaced with os.replace, so it is never half-written)
      gen-<time>/          one complete index:
        manifest.json      what built it (model fingerprint, chunking, tokeniser), every file's hash and stat
        documents.jsonl    one cleaned document per line (passages are spans of these texts)
        passages.npy       rows of (document number, start, end)
        dense.faiss        vectors, one per passage row                 } the "faiss" engine; the "milvus" engine
        lexical/           BM25 over the same rows                      } keeps both in a collection (engine.py)
        centroids.npy      mean passage vector of each language (for language-bias correction at search time)

A build writes a new generation in a temporary folder, fsyncs it, renames it into place and only then points
CURRENT at it. A build killed at any moment therefore leaves CURRENT naming the previous, complete generation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from .aliases import AliasTable
from .engine import MILVUS, Engine, FaissEngine
from .errors import IndexLoadError, RagError
from .filters import PassageRows
from .types import Document

FORMAT_VERSION = 1
CURRENT = "CURRENT"
REBUILD_HINT = "Rebuild it with `python -m rag index --rebuild`."


@dataclass(frozen=True)
class FileState:
    """What the manifest remembers of each indexed file, to tell what changed without reading it again."""

    doc_id: str
    content_hash: str
    size: int
    mtime_ns: int
    passages: int


@dataclass
class IndexData:
    """One loaded generation. Passage row i is (passage_doc[i], passage_start[i], passage_end[i])."""

    folder: Path
    manifest: dict
    documents: list[Document]
    passage_doc: np.ndarray
    passage_start: np.ndarray
    passage_end: np.ndarray
    engine: Engine
    centroids: dict[str, np.ndarray]
    rows_by_lang: dict[str, np.ndarray]
    aliases: AliasTable = field(default_factory=AliasTable)

    @property
    def size(self) -> int:
        return len(self.passage_doc)

    @property
    def vectors(self) -> Engine:
        """The stored vectors, whichever engine holds them (`.vectors()`, `.vectors_at(rows)`, `.size`)."""
        return self.engine

    def passage_text(self, row: int) -> str:
        doc = self.documents[int(self.passage_doc[row])]
        return doc.text[int(self.passage_start[row]) : int(self.passage_end[row])]

    def files(self) -> dict[str, FileState]:
        return {src: FileState(**state) for src, state in self.manifest["files"].items()}


def read_manifest(index_dir: Path) -> dict | None:
    """The manifest of the generation in use, or None when there is no index yet. Cheap: no vectors loaded."""
    folder = current_generation(index_dir)
    if folder is None:
        return None
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"The index manifest in {folder} is unreadable ({exc}). {REBUILD_HINT}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION or "files" not in manifest:
        raise IndexLoadError(f"The index in {folder} has an unknown or damaged manifest. {REBUILD_HINT}")
    _check_sizes(folder, manifest)
    return manifest


def current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexLoadError(f"Cannot read {pointer} ({exc}). {REBUILD_HINT}") from exc
    folder = index_dir / name
    if not name.startswith("gen-") or "/" in name or not folder.is_dir():
        raise IndexLoadError(f"{pointer} names a missing index generation {name!r}. {REBUILD_HINT}")
    return folder


def load(index_dir: Path) -> IndexData | None:
    """Load the generation in use; None when nothing was built yet; IndexLoadError when it is damaged."""
    manifest = read_manifest(index_dir)
    if manifest is None:
        return None
    folder = current_generation(index_dir)
    assert folder is not None
    try:
        documents = [Document(**json.loads(line)) for line in _lines(folder / "documents.jsonl")]
        table = np.load(folder / "passages.npy", allow_pickle=False)
        centroid_table = np.load(folder / "centroids.npy", allow_pickle=False)
        centroids = dict(zip(manifest["centroid_langs"], centroid_table, strict=True))
        aliases = _read_aliases(folder)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexLoadError(f"The index in {folder} is damaged ({type(exc).__name__}: {exc}). {REBUILD_HINT}") from exc
    if table.ndim != 2 or table.shape[1] != 3:
        raise IndexLoadError(f"The index in {folder} is inconsistent (passage counts differ). {REBUILD_HINT}")
    if len(documents) != len(manifest["files"]) or (len(table) and table[:, 0].max() >= len(documents)):
        raise IndexLoadError(f"The index in {folder} is inconsistent (document counts differ). {REBUILD_HINT}")
    if not _offsets_valid(table, documents):
        raise IndexLoadError(f"The index in {folder} has passages outside their documents. {REBUILD_HINT}")
    passage_doc = table[:, 0].astype(np.int64)
    rows = PassageRows(documents, passage_doc)
    try:
        engine = _open_engine(folder, manifest, rows)
    except IndexLoadError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexLoadError(f"The index in {folder} is damaged ({type(exc).__name__}: {exc}). {REBUILD_HINT}") from exc
    if engine.size != len(table) or _lexical_size(engine) != len(table):
        raise IndexLoadError(f"The index in {folder} is inconsistent (passage counts differ). {REBUILD_HINT}")
    return IndexData(
        folder=folder,
        manifest=manifest,
        documents=documents,
        passage_doc=passage_doc,
        passage_start=table[:, 1].astype(np.int64),
        passage_end=table[:, 2].astype(np.int64),
        engine=engine,
        centroids=centroids,
        rows_by_lang={lang: rows.by_lang.get(lang, np.zeros(0, dtype=np.int64)) for lang in centroids},
        aliases=aliases,
    )


def _open_engine(folder: Path, manifest: dict, rows: PassageRows) -> Engine:
    engine = manifest.get("engine", {"kind": "faiss"})
    if engine.get("kind") == MILVUS:
        from .milvus_engine import MilvusEngine

        try:
            return MilvusEngine.load(folder, engine, rows, int(manifest["dim"]))
        except IndexLoadError as exc:
            raise IndexLoadError(f"{exc} {REBUILD_HINT}") from exc
    return FaissEngine.load(folder, rows)


def _lexical_size(engine: Engine) -> int:
    return engine.lexical_size if isinstance(engine, FaissEngine) else engine.size


def _write_aliases(folder: Path, aliases: AliasTable, dim: int) -> None:
    """aliases.json holds the linked groups and every long form seen; alias_vectors.npy their vectors, in order."""
    forms = sorted(aliases.known)
    (folder / "aliases.json").write_text(
        json.dumps(dict(aliases.to_json(), forms=forms), ensure_ascii=False), encoding="utf-8"
    )
    table = np.stack([aliases.known[f] for f in forms]) if forms else np.zeros((0, dim))
    np.save(folder / "alias_vectors.npy", table.astype(np.float32), allow_pickle=False)


def _read_aliases(folder: Path) -> AliasTable:
    if not (folder / "aliases.json").is_file():
        return AliasTable()  # built before acronym linking existed: the next build adds it
    data = json.loads((folder / "aliases.json").read_text(encoding="utf-8"))
    vectors = np.load(folder / "alias_vectors.npy", allow_pickle=False)
    forms = [tuple(f) for f in data["forms"]]
    return AliasTable.from_json(data, dict(zip(forms, vectors, strict=True)))


def _offsets_valid(table: np.ndarray, documents: list[Document]) -> bool:
    """Every passage row is (document, start, end) with 0 <= start < end <= the document's length."""
    if table.dtype != np.int64:
        return False
    if not len(table):
        return True
    lengths = np.array([len(doc.text) for doc in documents], dtype=np.int64)
    docs, starts, ends = table[:, 0], table[:, 1], table[:, 2]
    return bool((docs >= 0).all() and (starts >= 0).all() and (starts < ends).all() and (ends <= lengths[docs]).all())


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line


def _check_sizes(folder: Path, manifest: dict) -> None:
    # A truncated or swapped file is caught here, before FAISS or numpy try to parse it. Small files are also
    # checked by content: a same-size garbage passage table would otherwise load and point at nothing.
    for name, size in manifest.get("sizes", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            raise IndexLoadError(f"The index file {path} is missing or truncated. {REBUILD_HINT}")
    for name, digest in manifest.get("checksums", {}).items():
        if _sha256(folder / name) != digest:
            raise IndexLoadError(f"The index file {folder / name} is damaged (checksum differs). {REBUILD_HINT}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_generation(
    index_dir: Path,
    manifest: dict,
    documents: list[Document],
    table: np.ndarray,
    channels,
    centroids: dict[str, np.ndarray],
    keep: int = 2,
    aliases: AliasTable | None = None,
) -> Path:
    """Write a complete generation and switch CURRENT to it atomically; returns the new folder.

    `channels` writes the engine's part (engine.FaissChannels: files here; milvus_engine.MilvusChannels: a new
    collection) and says how to open it again, which the manifest records."""
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"gen-{time.time_ns()}"
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir()
    try:
        with (tmp / "documents.jsonl").open("w", encoding="utf-8") as fh:
            for doc in documents:
                fh.write(json.dumps(asdict(doc), ensure_ascii=False))
                fh.write("\n")  # not `+ "\n"`: that would copy a 100 MB document's line once more
        np.save(tmp / "passages.npy", np.asarray(table, dtype=np.int64).reshape(-1, 3), allow_pickle=False)
        engine = channels.write(tmp, name)
        langs = sorted(centroids)
        centroid_table = np.stack([centroids[lang] for lang in langs]) if langs else np.zeros((0, channels.dim))
        np.save(tmp / "centroids.npy", centroid_table.astype(np.float32), allow_pickle=False)
        _write_aliases(tmp, aliases if aliases is not None else AliasTable(), channels.dim)
        sizes = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        # Checksums for all but the vectors: FAISS validates its own file, and hashing it would slow every load.
        checksums = {name: _sha256(tmp / name) for name in sizes if name != "dense.faiss"}
        full = dict(manifest, format=FORMAT_VERSION, sizes=sizes, checksums=checksums, centroid_langs=langs)
        full["engine"] = engine
        (tmp / "manifest.json").write_text(json.dumps(full, ensure_ascii=False, indent=1), encoding="utf-8")
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
        final = index_dir / name
        os.rename(tmp, final)
        _fsync_dir(index_dir)
        pointer_tmp = index_dir / f".{CURRENT}.tmp"
        pointer_tmp.write_text(name + "\n", encoding="utf-8")
        _fsync(pointer_tmp)
        os.replace(pointer_tmp, index_dir / CURRENT)
        _fsync_dir(index_dir)
    except RagError:
        _discard(tmp, channels, name)
        raise
    except (OSError, RuntimeError) as exc:  # FAISS reports a failed write (a full disk) as RuntimeError
        _discard(tmp, channels, name)
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[-1]
        raise RagError(
            f"Could not write the index to {index_dir} ({reason}). "
            "The previous index is untouched; free some disk space or fix permissions and run the build again."
        ) from exc
    prune(index_dir, keep=keep, engine=full["engine"])
    return final


def _discard(tmp: Path, channels, name: str) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(RagError, OSError):
        channels.discard(name)


def prune(index_dir: Path, keep: int = 2, engine: dict | None = None) -> None:
    """Remove leftovers of interrupted builds and generations beyond the newest `keep`, never the current one.

    With the Milvus engine (`engine`, as the newest manifest records it), the collections of removed
    generations and of interrupted builds go too."""
    current = current_generation(index_dir)
    for leftover in index_dir.glob(".tmp-gen-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    generations = sorted((p for p in index_dir.glob("gen-*") if p.is_dir()), key=lambda p: p.name)
    for old in generations[: max(len(generations) - max(keep, 1), 0)]:
        if current is None or old.resolve() != current.resolve():
            shutil.rmtree(old, ignore_errors=True)
    if engine is not None and engine.get("kind") == MILVUS:
        from .milvus_engine import drop_unreferenced

        kept = set()
        for folder in index_dir.glob("gen-*"):
            with contextlib.suppress(OSError, ValueError):
                kept.add(json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["engine"]["collection"])
        drop_unreferenced(engine["uri"], engine.get("token_env", ""), engine["prefix"], kept)


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index folder; a second one waits rather than interleaving generations.
    filelock takes an OS lock (flock on POSIX, LockFileEx on Windows), released if the process dies."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(index_dir / ".lock"):
        yield


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)
