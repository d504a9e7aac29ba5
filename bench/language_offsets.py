"""Measure each language's offset in the embedding space on parallel text; write rag/language_offsets.json.

    .venv/bin/python bench/language_offsets.py [--group 4]

Language centring (rag/retrieval.py) subtracts each language's mean passage vector. In a small corpus that mean
is mostly the subject of its few documents, so it is shrunk towards a prior: the corpus's language-neutral mean
plus the language's offset measured here. The text is FLORES-200 (../shared/eval/sib200_flores_az_ru_en.jsonl):
the same 1,004 sentences in az, ru and en, so the means differ by language and nothing else. Consecutive sentences
are joined `--group` at a time into passages of news-passage length (four: about 500 characters), encoded as
passages by the configured embedding model; a language's offset is its mean minus the mean of the three. Only
the three vectors are written, with the model's fingerprint: the assistant uses them with that model only.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate import flores_rows  # noqa: E402

import rag  # noqa: E402
from rag.embeddings import Embedder  # noqa: E402
from rag.retrieval import LANGUAGE_OFFSETS_FILE  # noqa: E402

LANGUAGES = ("az", "ru", "en")


def offsets(embedder: Embedder, rows: list[dict], group: int) -> dict[str, np.ndarray]:
    rows = sorted(rows, key=lambda row: row["index_id"])
    means = {}
    for lang in LANGUAGES:
        passages = [" ".join(row[lang] for row in rows[i : i + group]) for i in range(0, len(rows), group)]
        means[lang] = embedder.encode_passages(passages).astype(np.float64).mean(axis=0)
    overall = np.mean([means[lang] for lang in LANGUAGES], axis=0)
    return {lang: means[lang] - overall for lang in LANGUAGES}


def readable_json(record: dict) -> str:
    """The record with one line per key and each vector on one line, so that a diff shows which one changed."""
    lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in record.items() if key != "offsets"]
    vectors = [f"  {json.dumps(lang)}: {json.dumps(vector)}" for lang, vector in record["offsets"].items()]
    return "{\n" + ",\n".join([*lines, ' "offsets": {\n' + ",\n".join(vectors) + "\n }"]) + "\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", type=int, default=4, help="FLORES sentences joined into one passage")
    args = parser.parse_args()
    config = rag.load_config({})  # the built-in defaults: the catalogue's embedding model
    embedder = Embedder(config.models)
    rows = flores_rows()
    found = offsets(embedder, rows, args.group)
    for lang, vector in found.items():
        print(f"{lang}: offset norm {np.linalg.norm(vector):.4f}")
    record = {
        "about": "Per-language offsets of mean passage vectors; written by bench/language_offsets.py",
        "model": config.models.embedding,
        "model_fingerprint": embedder.fingerprint.split("+")[0],
        "source": f"FLORES-200 (SIB-200), {len(rows)} parallel sentences, {args.group} per passage",
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "offsets": {lang: [round(float(x), 6) for x in vector] for lang, vector in found.items()},
    }
    LANGUAGE_OFFSETS_FILE.write_text(readable_json(record), encoding="utf-8")
    print(f"wrote {LANGUAGE_OFFSETS_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
