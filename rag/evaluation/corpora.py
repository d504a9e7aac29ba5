"""Writing the corpora that evaluation questions are asked about: XQuAD paragraphs (one file each, named by
article) and the NTREX-QA newsroom (one article a file, in the language the question set assigns it).

Files are written only when their content changed, so the incremental index built over a folder stays valid and
every run over the same data reuses one folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RagError
from .files import parse_json, read_bytes, read_text

if TYPE_CHECKING:
    from .items import Paragraph


def default_corpus_dir(paragraph_file: Path, base: Path | None = None) -> Path:
    """A folder for the corpus made of an XQuAD file's paragraphs, named after the file and its content hash,
    so that every run over the same paragraphs reuses one folder (and the index built next to it)."""
    paragraph_file = Path(paragraph_file)
    digest = hashlib.sha256(read_bytes(paragraph_file)).hexdigest()[:12]
    root = Path(base) if base is not None else Path(tempfile.gettempdir()) / "rag-eval"
    return root / f"{_slug(paragraph_file.stem) or 'xquad'}-{digest}" / "corpus"


def prepare_ntrex_qa(corpus_file: Path, articles_file: Path, corpus_dir: Path) -> list[str]:
    """Write the NTREX-QA newsroom: each doc id of `corpus_file`'s `corpus` map as `<doc_id>.txt`, holding the
    article (title line included) in the one language the map assigns it, from `articles_file`
    (`ntrex_az_ru_en_docs.jsonl`). Returns the file names. Questions are then read with `load_items` from
    `ntrex_qa_dev.jsonl`, whose gold ids are the file stems."""
    corpus = parse_json(Path(corpus_file), read_text(Path(corpus_file)))
    assigned = corpus.get("corpus") if isinstance(corpus, dict) else None
    if not isinstance(assigned, dict) or not assigned:
        raise RagError(f"{corpus_file}: expected an object whose field 'corpus' maps doc ids to az, ru or en.")
    texts: dict[str, dict] = {}
    for line in read_text(Path(articles_file)).splitlines():
        if line.strip():
            row = json.loads(line)
            texts[str(row["doc_id"])] = row
    missing = sorted(set(assigned) - set(texts))
    if missing:
        raise RagError(f"{articles_file} lacks {len(missing)} articles of {corpus_file}, e.g. {missing[0]!r}.")
    files = {f"{doc_id}.txt": texts[doc_id][lang] for doc_id, lang in sorted(assigned.items())}
    _write_files(files, Path(corpus_dir))
    return list(files)


def _slug(title: str) -> str:
    return re.sub(r"[\W_]+", "-", unicodedata.normalize("NFC", title).lower()).strip("-")


def _paragraph_files(paragraphs: list[Paragraph]) -> list[str]:
    # Two articles with the same title must not share files: the later one gets a numbered slug.
    slugs: dict[tuple[int, str], str] = {}
    taken: set[str] = set()
    names = []
    article = -1
    for paragraph in paragraphs:
        if paragraph.index == 0:
            article += 1
        key = (article, paragraph.title)
        if key not in slugs:
            base = _slug(paragraph.title) or "article"
            slug, n = base, 1
            while slug in taken:
                n += 1
                slug = f"{base}-{n}"
            taken.add(slug)
            slugs[key] = slug
        names.append(f"{slugs[key]}_{paragraph.index}.txt")
    return names


def write_corpus(paragraphs: list[Paragraph], corpus_dir: Path) -> list[str]:
    """Write each paragraph as its own file, `<title-slug>_<i>.txt` (see `_write_files`); returns the names in
    the paragraphs' order."""
    names = _paragraph_files(paragraphs)
    # A leading byte-order mark is an artefact of the dataset, not text of the paragraph.
    _write_files({name: p.context.lstrip("\ufeff") for p, name in zip(paragraphs, names)}, corpus_dir)
    return names


def _write_files(files: dict[str, str], corpus_dir: Path) -> None:
    """Write each file (name -> text) into `corpus_dir` as UTF-8; an unchanged file is left alone, so the
    incremental index built over the folder stays valid."""
    try:
        corpus_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            data = text.encode("utf-8")
            target = corpus_dir / name
            if not target.is_file() or target.read_bytes() != data:
                target.write_bytes(data)
    except OSError as exc:
        raise RagError(f"Cannot write the evaluation corpus into {corpus_dir}: {exc.strerror or exc}.") from exc
