"""Putting files into the corpus folder and taking them out, safely: the only code that writes or deletes there.

A file comes in under a plain name of its own (no folders, no hidden or option-like names), never over an
existing document (it gets a "-2", "-3", ... suffix instead), only with an extension the index reads and within
[corpus] max_file_mb; a refused file leaves nothing behind. A file goes out only from inside the corpus folder.
Assistant.add_documents and remove_documents call these, then update the index.
"""

from __future__ import annotations

import io
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .config import Config
from .errors import DocumentNotFound, DocumentRejected

MAX_NAME_CHARS = 100  # of a saved file's name, before its extension
_MB = 1024 * 1024
_CHUNK = _MB

# What a document's bytes may come as: the bytes themselves, a path to a file, or an open binary file.
FileData = bytes | bytearray | memoryview | os.PathLike | BinaryIO


@dataclass(frozen=True)
class SavedFile:
    path: Path  # where the file now lies, inside the corpus folder
    original: str  # the name it was given as
    wanted: str  # the sanitised name, which the file has unless a document of that name existed

    @property
    def renamed(self) -> bool:
        """True when a document named `wanted` existed already, so the file got a suffix."""
        return self.path.name != self.wanted

    def message(self) -> str:
        if self.renamed:
            return (
                f"Saved {self.original!r} as {self.path.name!r}: a document named {self.wanted!r} exists already, "
                "so the new one was renamed."
            )
        if self.path.name != self.original:
            return f"Saved {self.original!r} as {self.path.name!r}."
        return f"Saved {self.path.name!r}."


def limits(config: Config) -> tuple[tuple[str, ...], int]:
    """The extensions the index reads ([corpus] extensions, as ".txt") and the largest file in bytes
    ([corpus] max_file_mb): a larger file would only be skipped by the build."""
    extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in config.corpus.extensions)
    return extensions, int(config.corpus.max_file_mb * _MB)


def safe_filename(name: str) -> str:
    """A plain file name for an added file: no folders, no hidden or option-like names, no odd characters.

    Browsers send a bare name, but any request can send "../../x.txt" or "/etc/passwd": only the last path
    component is kept (for both separators), so the file always lands directly in the corpus folder. Letters of
    any script stay ("Özbəkistan.txt", "Узбекистан.txt"); spaces, quotes and the like become "_"."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = re.sub(r"[^\w.-]+", "_", stem)
    stem = re.sub(r"_{2,}", "_", stem).strip("._- ")[:MAX_NAME_CHARS].rstrip("._- ") or "document"
    ext = re.sub(r"[^\w]+", "", ext).lower()
    return f"{stem}.{ext}" if ext else stem


def save_file(
    data: FileData,
    original_name: str,
    corpus_dir: str | os.PathLike,
    extensions: Iterable[str],
    max_bytes: int,
) -> SavedFile:
    """Copy a document into the corpus folder under a safe name, never over an existing file.

    `data` is the bytes, a path (pathlib.Path) or an open binary file (read from where it stands, not closed).
    Raises DocumentRejected (with the reason, nothing written) for a type not in `extensions`, an empty file, one
    larger than `max_bytes` or one that cannot be read. A name already taken gets a "-2", "-3", ... suffix."""
    name = safe_filename(original_name)
    suffix = PurePosixPath(name).suffix.lower()
    allowed = tuple(extensions)
    if suffix not in allowed:
        kind = f"{suffix} files" if suffix else "Files without an extension"
        raise DocumentRejected(
            f"{original_name!r} was not added: {kind} are not accepted. Accepted: {', '.join(allowed)}."
        )
    with _readable(data, original_name) as (source, size):
        if size == 0:
            raise DocumentRejected(f"{original_name!r} was not added: the file is empty.")
        if size is not None and size > max_bytes:
            raise _too_large(original_name, max_bytes, size)
        corpus = Path(corpus_dir).resolve()
        if not corpus.is_dir():
            raise DocumentRejected(f"The corpus folder {corpus} does not exist; create it and upload again.")
        stem, suffix = name[: -len(suffix)], name[-len(suffix) :]
        for attempt in range(1, 10_000):
            candidate = corpus / (name if attempt == 1 else f"{stem}-{attempt}{suffix}")
            if candidate.parent != corpus:  # cannot happen after safe_filename; checked because it must never
                raise DocumentRejected(f"{original_name!r} was not added: unsafe file name.")
            try:
                # "x": create, never replace; it also refuses a dangling symlink planted under that name.
                target = open(candidate, "xb")  # noqa: SIM115 - closed below, removed again on any failure
            except FileExistsError:
                continue
            try:
                with target:
                    written = _copy(source, target, original_name, max_bytes)
                if written == 0:  # a stream of unknown size that turned out empty
                    raise DocumentRejected(f"{original_name!r} was not added: the file is empty.")
            except BaseException:
                candidate.unlink(missing_ok=True)
                raise
            return SavedFile(candidate, original_name, name)
    raise DocumentRejected(f"{original_name!r} was not added: too many documents named {name!r}.")


def delete_file(source: str, corpus_dir: str | os.PathLike, extensions: Iterable[str] | None = None) -> Path:
    """Delete a document's file, which must lie inside the corpus folder; returns its path.

    With `extensions`, only a file of one of those types (a document the index reads) may go."""
    corpus = Path(corpus_dir).resolve()
    path = Path(os.path.normpath(corpus / source))
    if source.startswith(("/", "\\")) or path == corpus or not path.is_relative_to(corpus):
        raise DocumentRejected(f"{source!r} is not a document in the corpus folder.")
    if extensions is not None and path.suffix.lower() not in tuple(extensions):
        raise DocumentRejected(f"{source!r} is not a document in the corpus folder.")
    if not path.is_file():
        raise DocumentNotFound(f"{source!r} is no longer in the corpus folder.")
    path.unlink()
    return path


@contextmanager
def _readable(data: FileData, name: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """`data` as a binary stream and its size in bytes (None for a stream that cannot tell before it is read)."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        yield io.BytesIO(view), view.nbytes
    elif isinstance(data, os.PathLike):
        try:
            stream = open(data, "rb")  # noqa: SIM115 - closed by the with below
            info = os.fstat(stream.fileno())
        except OSError as exc:
            raise DocumentRejected(f"{name!r} was not added: it cannot be read ({exc.strerror or exc}).") from exc
        with stream:
            if not stat.S_ISREG(info.st_mode):
                raise DocumentRejected(f"{name!r} was not added: it is not a file.")
            yield stream, info.st_size
    elif isinstance(data, str):
        # A str could be a path or the text itself: guessing wrong would save the wrong thing.
        raise TypeError(
            "Pass a document's bytes, a pathlib.Path or an open binary file, not a str: "
            "Path(name) for a file on disk, text.encode('utf-8') for text."
        )
    elif hasattr(data, "read"):
        yield data, _remaining(data)
    else:
        raise TypeError(f"Cannot read a document from {type(data).__name__}: pass bytes, a path or a binary file.")


def _remaining(stream: BinaryIO) -> int | None:
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None


def _copy(source: BinaryIO, target: BinaryIO, name: str, max_bytes: int) -> int:
    """Copy `source` into `target`, refusing it once more than `max_bytes` came (a file that grew since its size
    was checked, or a stream of unknown size). Returns the bytes written."""
    written = 0
    while chunk := source.read(_CHUNK):
        written += len(chunk)
        if written > max_bytes:
            raise _too_large(name, max_bytes)
        target.write(chunk)
    return written


def _too_large(name: str, max_bytes: int, size: int | None = None) -> DocumentRejected:
    if size is None:
        return DocumentRejected(f"{name!r} was not added: it has more than {max_bytes / _MB:g} MB, the limit.")
    return DocumentRejected(f"{name!r} was not added: it has {size / _MB:.1f} MB, the limit is {max_bytes / _MB:g} MB.")
