"""Blocks of bench/RESULTS.md that belong to one benchmark script each, replaced in place on every run.

Each block sits between `<!-- NAME:START -->` and `<!-- NAME:END -->`; bench/retrieval.py keeps such blocks
when it rewrites the rest of the file."""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:START -->", f"<!-- {name}:END -->"


def write_block(name: str, body: str, results: Path) -> None:
    start, end = markers(name)
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text, encoding="utf-8")


def publish(name: str, lines: list[str], results: Path) -> None:
    """Write the lines as block `name` of the results file and show them."""
    body = "\n".join(lines)
    write_block(name, body, results)
    print(body)


def mode_counts(rows: list[dict]) -> str:
    """ "extractive 7, generated 3, refused 2": how the rows of a `rag eval` report were answered."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["mode"]] = counts.get(row["mode"], 0) + 1
    return ", ".join(f"{mode} {n}" for mode, n in sorted(counts.items()))


def blocks(text: str) -> list[str]:
    """Every marked block of `text`, markers included, in order (for a script that rewrites the rest)."""
    found = []
    rest = text
    while "<!-- " in rest and ":START -->" in rest:
        head = rest.index("<!-- ")
        name_end = rest.find(":START -->", head)
        if name_end < 0:
            break
        name = rest[head + 5 : name_end]
        start, end = markers(name)
        if end not in rest:
            break
        block_end = rest.index(end) + len(end)
        found.append(rest[rest.index(start) : block_end])
        rest = rest[block_end:]
    return found
