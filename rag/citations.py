"""Citation markers: the [n] that ends each sentence of an answer and names the numbered source it rests on.

The assistant writes one form, "[1]" (grounding.py). Every form a reader takes for a citation is read, the same
way wherever markers are read (the app links them, the evaluation checks that every sentence has one):
"[1]", a list "[1, 2]" or "[1; 2]", and a range "[1-3]" or "[1–3]", which cites every source from the first to
the last.
"""

from __future__ import annotations

import re

_NUMBERS = r"\d+(?:\s*[,;–-]\s*\d+)*"
MARKER = re.compile(rf"\[({_NUMBERS})\]")  # group 1: what is inside the brackets
LEADING_MARKERS = re.compile(rf"(?:\s*\[{_NUMBERS}\])+")  # the markers that open a text, with their spaces
# A range longer than this is a typo ([1-9999]), read as its first MAX_RANGE + 1 numbers.
MAX_RANGE = 50


def marker(n: int) -> str:
    """The marker the assistant writes for source `n`: "[n]"."""
    return f"[{n}]"


def marker_numbers(inside: str) -> list[int]:
    """The source numbers that one marker names, in the order written, from what is inside its brackets
    (MARKER's group 1). A reversed range ("3-1") names none.

    >>> marker_numbers("1, 3-5")
    [1, 3, 4, 5]
    """
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", inside):
        bounds = [int(n) for n in re.split(r"\s*[–-]\s*", part)]
        numbers.extend(range(bounds[0], min(bounds[-1], bounds[0] + MAX_RANGE) + 1))
    return numbers


def cited_numbers(text: str) -> set[int]:
    """Every source number that the markers in `text` name.

    >>> sorted(cited_numbers("Baku hosted it [1]. Both agreed [2-3]."))
    [1, 2, 3]
    """
    return {n for match in MARKER.finditer(text) for n in marker_numbers(match.group(1))}
