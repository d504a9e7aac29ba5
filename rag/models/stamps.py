"""Checksum stamps: what makes a prepared folder trusted, and the checks that decide whether it still is.

Each prepared folder holds a `SHA256SUMS` file (check it by hand with `sha256sum -c SHA256SUMS`) and a stamp
of the size and mtime each file had when it was verified, so a second `prepare_models` is a few `stat` calls.
`check_folder` serves preparing (and `--verify`), `_load_check` serves loading at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

SUMS_FILE = "SHA256SUMS"
STAMP_FILE = ".verified.json"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(folder: Path) -> list[str]:
    """Every file of a prepared folder as sorted relative posix paths; hidden names are our bookkeeping."""
    files = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and rel.as_posix() != SUMS_FILE and not any(part.startswith(".") for part in rel.parts):
            files.append(rel.as_posix())
    return sorted(files)


def _write_atomic(path: Path, text: str) -> None:
    # A temporary name of its own per process and thread: loading a model may rewrite the stamp
    # (`_load_check`), so two programs starting at once must not write into the same temporary file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def record_checksums(
    folder: Path, recipe: str, known: dict[str, str] | None = None, files: list[str] | None = None
) -> dict[str, str]:
    """Write SHA256SUMS and the size+mtime stamp for `files` (default: every file) of `folder`.

    `known` holds digests already computed while the file was written, so a 1 GB file is not read twice.
    """
    known = known or {}
    listed = _listed_files(folder) if files is None else sorted(files)
    sums = {rel: known.get(rel) or sha256_file(folder / rel) for rel in listed}
    stamp = {"recipe": recipe, "files": {}}
    for rel in sums:
        st = (folder / rel).stat()
        stamp["files"][rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _write_atomic(folder / SUMS_FILE, "".join(f"{h}  {rel}\n" for rel, h in sums.items()))
    _write_atomic(folder / STAMP_FILE, json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    return sums


def _read_sums(folder: Path) -> dict[str, str] | None:
    try:
        text = (folder / SUMS_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    sums = {}
    for line in text.splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            return None
        sums[rel] = digest
    return sums or None


def _read_stamp(folder: Path) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = stamp.get("files") if isinstance(stamp, dict) else None
    if not isinstance(files, dict):
        return None
    for seen in files.values():
        if not (isinstance(seen, dict) and isinstance(seen.get("size"), int) and isinstance(seen.get("mtime_ns"), int)):
            return None
    return stamp


def check_folder(folder: Path, recipe: str, pinned: dict[str, str], *, full: bool = False) -> str | None:
    """Why `folder` is not a complete, verified preparation (None when it is).

    The cheap check compares each file's size and mtime with the stamp written at verification time. A file
    whose size matches but whose mtime moved (copied without -p, touched) is re-hashed once and re-stamped.
    `full` re-hashes everything.
    """
    sums, stamp = _read_sums(folder), _read_stamp(folder)
    if sums is None or stamp is None:
        return "not prepared" if not folder.exists() else "incomplete (no checksum stamp)"
    if stamp.get("recipe") != recipe:
        return "prepared by another version of this program"
    for rel, digest in pinned.items():
        if sums.get(rel) != digest:
            return f"{rel} does not have the expected sha256"
    rehashed = False
    for rel, digest in sums.items():
        path, seen = folder / rel, stamp["files"].get(rel)
        if seen is None:
            return f"{rel} is listed in {SUMS_FILE} but not stamped"
        try:
            st = path.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != seen["size"]:
            return f"{rel} has {st.st_size} bytes, expected {seen['size']} (truncated or replaced)"
        if full or st.st_mtime_ns != seen["mtime_ns"]:
            if sha256_file(path) != digest:
                return f"{rel} is damaged (sha256 differs from {SUMS_FILE})"
            rehashed = True
    if rehashed:
        record_checksums(folder, recipe, known=sums, files=list(sums))
    return None


# (path, size, mtime_ns) of files hashed by this process, so a cache whose stamp cannot be rewritten (read-only,
# shared between users) is still hashed at most once per process, not at every load.
_HASHED_HERE: set[tuple[str, int, int]] = set()


def _load_check(folder: Path, recipe: str) -> str | None:
    """For loading paths: why `folder` cannot be loaded, or None. Cheap on every start, hashing only when needed.

    Every listed file must exist with the size it had when it was verified (a truncated or replaced file is
    refused at no cost). A file whose mtime moved since then (anything that wrote to it: a patch, a partial
    copy, a restore from backup) is hashed once against SHA256SUMS, and the stamp then records the new mtime
    (when the folder is writable), so the next start is stat calls again. Hashing every file at every load
    would cost 1-3 s per start for the 470 MB embedding model or a 1.1 GB GGUF. What this cannot see is damage
    that keeps both size and mtime (bit rot on disk): `python -m rag models --verify` re-hashes everything.
    """
    sums, stamp = _read_sums(folder), _read_stamp(folder)
    if sums is None or stamp is None:
        return "not prepared" if not folder.exists() else "incomplete (no checksum stamp)"
    if stamp.get("recipe") != recipe:
        return "prepared by another version of this program"
    moved = []
    for rel in sums:
        path, seen = folder / rel, stamp["files"].get(rel)
        if seen is None or not path.is_file():
            return f"missing {rel}"
        st = path.stat()
        if st.st_size != seen["size"]:
            return f"damaged: {rel} has the wrong size ({st.st_size} bytes, expected {seen['size']}; truncated?)"
        if st.st_mtime_ns != seen["mtime_ns"] and (str(path), st.st_size, st.st_mtime_ns) not in _HASHED_HERE:
            moved.append((rel, st))
    for rel, st in moved:
        if sha256_file(folder / rel) != sums[rel]:
            return f"damaged: {rel} does not match its sha256 in {SUMS_FILE} (the file was changed)"
        _HASHED_HERE.add((str(folder / rel), st.st_size, st.st_mtime_ns))
    if moved:
        with contextlib.suppress(OSError):  # a read-only cache: hashed again by the next process, still correct
            record_checksums(folder, recipe, known=sums, files=list(sums))
    return None
