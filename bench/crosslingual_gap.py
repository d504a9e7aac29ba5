"""How much lower e5 scores a question against evidence in another language than in its own.

    .venv/bin/python bench/crosslingual_gap.py [--pairs 800] [--questions 200]

Writes the GAP block of bench/RESULTS.md. The refusal threshold ([answer] refuse_below) compares the best
evidence cosine with one number for every language pair. This measures whether a fixed allowance per language
pair could make cross-lingual questions score like same-language ones, on two kinds of text:

- NTREX news, aligned lines: line j of an article as the query in language A, line j+1 as the passage in
  language B; the drop is cos(query in B, passage) - cos(query in A, passage), same passage, same content.
- XQuAD questions, the English paragraph holding the answer: the best cosine over the paragraph's sentences for
  the English question and for the same question in Russian, split by how many of the English question's terms
  the best sentence contains (SQuAD-style questions often reuse the paragraph's words).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_file import publish  # noqa: E402

import rag  # noqa: E402
from rag.chunking import split_sentences  # noqa: E402
from rag.embeddings import Embedder  # noqa: E402
from rag.evidence import term_overlap  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
LANGS = ("az", "ru", "en")


def ntrex_line_pairs(limit: int) -> list[dict[str, tuple[str, str]]]:
    """(line j, line j+1) per language, for body lines long enough to be sentences, evenly sampled."""
    pairs = []
    for line in (EVAL / "ntrex_az_ru_en_docs.jsonl").read_text(encoding="utf-8").splitlines():
        article = json.loads(line)
        lines = {lang: article[lang].split("\n") for lang in LANGS}
        if len({len(v) for v in lines.values()}) != 1:
            continue  # not aligned line by line
        for j in range(1, len(lines["en"]) - 1):  # line 0 is the title
            if all(len(lines[lang][j]) > 40 and len(lines[lang][j + 1]) > 40 for lang in LANGS):
                pairs.append({lang: (lines[lang][j], lines[lang][j + 1]) for lang in LANGS})
    return pairs[:: max(1, len(pairs) // limit)]


def ntrex_drops(embedder: Embedder, pairs: list[dict]) -> dict[tuple[str, str], np.ndarray]:
    queries = {lang: embedder.encode_queries([p[lang][0] for p in pairs]) for lang in LANGS}
    passages = {lang: embedder.encode_passages([p[lang][1] for p in pairs]) for lang in LANGS}
    drops = {}
    for b in LANGS:
        same = (queries[b] * passages[b]).sum(1)
        for a in LANGS:
            if a != b:
                drops[(a, b)] = same - (queries[a] * passages[b]).sum(1)
    return drops


def xquad_questions(limit: int) -> list[tuple[str, str, str]]:
    """(English question, Russian question, English paragraph), evenly sampled."""
    english = json.loads((EVAL / "xquad.en.json").read_text(encoding="utf-8-sig"))
    russian = json.loads((EVAL / "xquad.ru.json").read_text(encoding="utf-8-sig"))
    ru_by_id = {qa["id"]: qa["question"] for art in russian["data"] for par in art["paragraphs"] for qa in par["qas"]}
    rows = [
        (qa["question"], ru_by_id[qa["id"]], par["context"])
        for art in english["data"]
        for par in art["paragraphs"]
        for qa in par["qas"]
        if qa["id"] in ru_by_id
    ]
    return rows[:: max(1, len(rows) // limit)]


def xquad_scores(embedder: Embedder, rows: list[tuple[str, str, str]]) -> list[tuple[float, float, float]]:
    """(best cosine for the en question, for the ru question, en question's term overlap with its best sentence)."""
    out = []
    for en_q, ru_q, paragraph in rows:
        sentences = [paragraph[s:e] for s, e in split_sentences(paragraph)]
        vectors = embedder.encode_passages(sentences)
        q = embedder.encode_queries([en_q, ru_q])
        scores = vectors @ q.T
        best = int(np.argmax(scores[:, 0]))
        out.append((float(scores[:, 0].max()), float(scores[:, 1].max()), term_overlap(en_q, sentences[best])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=800, help="NTREX line pairs (default 800)")
    parser.add_argument("--questions", type=int, default=200, help="XQuAD questions (default 200)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    started = time.perf_counter()
    embedder = Embedder(rag.load_config(ROOT / "config.toml").models)
    pairs = ntrex_line_pairs(args.pairs)
    drops = ntrex_drops(embedder, pairs)
    rows = xquad_scores(embedder, xquad_questions(args.questions))
    minutes = (time.perf_counter() - started) / 60

    lines = [
        "## Cross-lingual score drop (`bench/crosslingual_gap.py`)",
        "",
        f"- Command: `python bench/crosslingual_gap.py --pairs {args.pairs} --questions {args.questions}`; "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}; run time {minutes:.1f} min; model {embedder.name}",
        "",
        f"NTREX, {len(pairs)} aligned line pairs: drop of the cosine when the query (line j) is in language A "
        "instead of the passage's (line j+1) language B; median and interquartile range.",
        "",
        "| A -> B | median drop | p25 | p75 |",
        "|---|---|---|---|",
    ]
    for (a, b), d in drops.items():
        p25, p75 = np.percentile(d, [25, 75])
        lines.append(f"| {a} -> {b} | {np.median(d):+.3f} | {p25:+.3f} | {p75:+.3f} |")
    en, ru, overlap = (np.array(col) for col in zip(*rows, strict=True))
    cut = statistics.median(overlap.tolist())
    lines += [
        "",
        f"XQuAD, {len(rows)} questions, best cosine over the sentences of the English paragraph that holds the answer:",
        "",
        "| questions | n | en question, median | ru question, median | median drop |",
        "|---|---|---|---|---|",
    ]
    for label, mask in (
        ("all", np.ones_like(overlap, dtype=bool)),
        (f"best sentence holds > {cut:.2f} of the en question's terms", overlap > cut),
        (f"best sentence holds <= {cut:.2f} of them", overlap <= cut),
    ):
        lines.append(
            f"| {label} | {int(mask.sum())} | {np.median(en[mask]):.3f} | {np.median(ru[mask]):.3f} | "
            f"{np.median(en[mask] - ru[mask]):+.3f} |"
        )
    lines += [
        "",
        "A negative drop: the query in the other language scores higher.",
    ]
    publish("GAP", lines, args.results)


if __name__ == "__main__":
    main()
