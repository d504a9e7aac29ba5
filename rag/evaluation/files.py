"""Reading evaluation files, with errors that name the file, the line or column, and what to fix.

Both the question files (items.py) and the files a corpus is written from (corpora.py) are read here, so that a
missing or broken file is reported the same way whichever of them it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RagError


def read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise RagError(f"Evaluation file not found: {path}. Check the path (evaluation data is in ../shared/eval/).")
    if not path.is_file():
        raise RagError(f"{path} is not a file; pass a .jsonl question file or an XQuAD .json file.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RagError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def read_text(path: Path) -> str:
    try:
        return read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RagError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc


def whole_json(text: str) -> Any:
    """The file parsed as one JSON value, or None when it is not one (JSONL with several lines, or broken)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RagError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}).") from exc


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
