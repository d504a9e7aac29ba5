"""Helpers for the reliability tests, importable both by pytest and by a `python -c` child process.

FakeEmbedder (tests/fakes.py) has an optional sleep per passage so that a kill can be aimed at the embedding
step; `slow_down_stages` makes reading and writing slow in the same way, and `mark` records which stage a build
reached, in a file the parent process reads, so every trial can say where the kill landed.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

RELIABILITY_DIR = Path(__file__).resolve().parent
ROOT = RELIABILITY_DIR.parent.parent
SEEDS = ROOT / "seeds"
if str(ROOT) not in sys.path:  # a `python -c` child process imports the shared fakes from the repository root
    sys.path.insert(0, str(ROOT))

from tests.fakes import FakeEmbedder, ScriptedGenerator  # noqa: E402, F401 - re-exported for the tests and the child process


def mark(marker_file: str | None, stage: str) -> None:
    """Append one stage name to the marker file, unbuffered, so it is on disk before a SIGKILL can land."""
    if not marker_file:
        return
    fd = os.open(marker_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (stage + "\n").encode())
    finally:
        os.close(fd)


def slow_down_stages(marker_file: str | None, read_sleep: float, write_sleep: float) -> None:
    """Patch the build (in this process only) so reading sleeps per file and writing sleeps per file written."""
    from rag import distributed, store
    from rag.lexical import LexicalIndex
    from rag.vectorstore import VectorIndex

    real_load = distributed.load_document  # what the build's read_file calls
    first_read = [True]

    def load_document(*args, **kwargs):
        if first_read[0]:
            first_read[0] = False
            mark(marker_file, "reading")
        time.sleep(read_sleep)
        return real_load(*args, **kwargs)

    real_write = store.write_generation

    def write_generation(*args, **kwargs):
        mark(marker_file, "writing")
        return real_write(*args, **kwargs)

    real_fsync = store._fsync

    def fsync(path):
        time.sleep(write_sleep)
        return real_fsync(path)

    def slow(method):
        def wrapper(self, path):
            time.sleep(write_sleep)
            return method(self, path)

        return wrapper

    real_rename, real_replace = os.rename, os.replace

    def rename(src, dst, *a, **kw):
        mark(marker_file, "writing:rename")
        return real_rename(src, dst, *a, **kw)

    def replace(src, dst, *a, **kw):
        mark(marker_file, "writing:switch")
        result = real_replace(src, dst, *a, **kw)
        mark(marker_file, "writing:switched")
        return result

    distributed.load_document = load_document
    store.write_generation = write_generation
    store._fsync = fsync
    store.os.rename = rename
    store.os.replace = replace
    VectorIndex.save = slow(VectorIndex.save)
    LexicalIndex.save = slow(LexicalIndex.save)


def seed_paragraphs() -> list[str]:
    paragraphs = []
    for path in sorted(SEEDS.iterdir()):
        text = path.read_text(encoding="utf-8")
        paragraphs += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 40]
    return paragraphs


def write_corpus(folder: Path, rng: random.Random, files: int = 60) -> None:
    """`files` small articles stitched from paragraphs of seeds/: a headline and two to four paragraphs each."""
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = seed_paragraphs()
    for i in range(files):
        write_article(folder / f"{i:03d}_article.txt", rng, paragraphs, tag=f"{i}")


def write_article(path: Path, rng: random.Random, paragraphs: list[str], tag: str) -> None:
    body = rng.sample(paragraphs, rng.randint(2, 4))
    headline = f"Report {tag}: " + " ".join(body[0].split()[:8])
    path.write_text(headline + "\n\n" + "\n\n".join(body) + "\n", encoding="utf-8")


def mutate_corpus(folder: Path, rng: random.Random, step: int) -> list[str]:
    """Change, add and delete a few files, so every build has something new to write."""
    paragraphs = seed_paragraphs()
    files = sorted(folder.glob("*.txt"))
    done = []
    for path in rng.sample(files, min(len(files), rng.randint(3, 8))):
        write_article(path, rng, paragraphs, tag=f"{path.stem}-v{step}")
        done.append(f"changed {path.name}")
    new = folder / f"{100 + step:03d}_added.txt"
    write_article(new, rng, paragraphs, tag=f"added-{step}")
    done.append(f"added {new.name}")
    files = sorted(folder.glob("*.txt"))
    if len(files) > 62:
        gone = rng.choice(files)
        gone.unlink()
        done.append(f"removed {gone.name}")
    return done


def make_config(corpus_dir: Path, index_dir: Path, **sections):
    import rag

    data = {key: dict(value) for key, value in sections.items()}
    data.setdefault("corpus", {})["path"] = str(corpus_dir)
    data.setdefault("index", {})["path"] = str(index_dir)
    return rag.load_config(data)
