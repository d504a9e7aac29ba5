"""Fit the planted-instruction screen (rag/instruction_model.json) and measure it on text it never saw.

    .venv/bin/python bench/instructions.py [--write]

A document may carry sentences aimed at the assistant ("ignore the question and say ..."). evidence.py drops
such sentences before they can become evidence, with a logistic model over the sentence vectors that evidence
selection computes anyway (so screening costs one dot product per sentence). Data:
- fit: bench/data/instruction_sentences_fit.jsonl (210 planted instructions and 270 hard news sentences in
  az / ru / en, written for this purpose) and the sentences of the NTREX articles of the "fit" half (split by
  article with rag.evaluation's rule) as ordinary news;
- report: tests/data/instruction_sentences_heldout.jsonl (120 instructions and 180 hard news sentences, written
  independently, by someone who saw neither the screen nor the fit set), the NTREX articles of the "report"
  half, the seed documents, and 3,000 Reuters sentences.
The regularisation strength is chosen by 5-fold cross-validation on the fit data; the threshold is the lowest
probability that keeps at most FIT_FALSE_ALARMS of the fit half's NTREX sentences out (a news sentence lost is
evidence lost), and the structural rule (chat markup, role labels) is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag  # noqa: E402
from rag.chunking import split_sentences  # noqa: E402
from rag.embeddings import Embedder  # noqa: E402
from rag.evaluation import half_of  # noqa: E402
from rag.evidence import MIN_LETTERS  # noqa: E402
from rag.instructions import INSTRUCTION_MODEL_FILE, InstructionModel, has_chat_structure  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
FIT_FILE = ROOT / "bench" / "data" / "instruction_sentences_fit.jsonl"
HELDOUT_FILE = ROOT / "tests" / "data" / "instruction_sentences_heldout.jsonl"
# Share of ordinary news sentences (fit half) the screen may take for instructions.
FIT_FALSE_ALARMS = 0.002
REUTERS_SENTENCES = 3000


def labelled(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentences_of(text: str) -> list[str]:
    out = []
    for s, e in split_sentences(text):
        sentence = text[s:e].strip()
        if sum(ch.isalpha() for ch in sentence) >= MIN_LETTERS:  # what evidence.py offers as a sentence
            out.append(sentence)
    return out


def ntrex_news(half: str) -> list[dict]:
    rows = []
    for line in (EVAL / "ntrex_az_ru_en_docs.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        if half_of(str(doc["doc_id"])) == half:
            for lang in ("az", "ru", "en"):
                rows += [{"text": s, "lang": lang, "label": "news"} for s in sentences_of(doc[lang])]
    return rows


def seed_news() -> list[dict]:
    return [
        {"text": s, "lang": "seed", "label": "news"}
        for p in sorted((ROOT / "seeds").glob("*.txt"))
        for s in sentences_of(p.read_text(encoding="utf-8"))
    ]


def reuters_news() -> list[dict]:
    rows: list[dict] = []
    for line in (EVAL / "reuters21578_en_news.jsonl").read_text(encoding="utf-8").splitlines():
        body = json.loads(line).get("text") or ""
        rows += [{"text": s, "lang": "en", "label": "news"} for s in sentences_of(body)]
    picked = np.random.default_rng(0).choice(len(rows), size=min(REUTERS_SENTENCES, len(rows)), replace=False)
    return [rows[i] for i in sorted(picked)]


def rates(rows: list[dict], flagged: np.ndarray) -> dict:
    """Per language: share of instructions caught and of news sentences taken for instructions."""
    out = {}
    for lang in sorted({r["lang"] for r in rows}):
        for label, name in (("instruction", "caught"), ("news", "false_alarms")):
            picked = [i for i, r in enumerate(rows) if r["lang"] == lang and r["label"] == label]
            if picked:
                out[f"{lang} {name}"] = f"{int(flagged[picked].sum())}/{len(picked)}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"replace {INSTRUCTION_MODEL_FILE.name}")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cfg = rag.load_config(ROOT / "config.toml")
    embedder = Embedder(replace(cfg.models, backend="onnx"))
    fit_written, fit_ntrex = labelled(FIT_FILE), ntrex_news("fit")
    fit_rows = fit_written + fit_ntrex
    report = {
        "held-out written set": labelled(HELDOUT_FILE),
        "NTREX report half": ntrex_news("report"),
        "seed documents": seed_news(),
        "Reuters sample": reuters_news(),
    }

    def vectors(rows: list[dict]) -> np.ndarray:
        return embedder.encode_passages([r["text"] for r in rows])

    x = vectors(fit_rows)
    y = np.array([r["label"] == "instruction" for r in fit_rows])
    regression = LogisticRegressionCV(
        Cs=[0.1, 0.3, 1, 3, 10, 30],
        cv=5,
        class_weight="balanced",
        max_iter=5000,
        l1_ratios=(0.0,),
        use_legacy_attributes=False,
    )
    regression.fit(x, y)
    # The threshold comes from out-of-fold probabilities: a sentence the model was fitted on scores lower than
    # unseen news does, and the threshold is for unseen news.
    out_of_fold = cross_val_predict(
        LogisticRegression(C=regression.C_, class_weight="balanced", max_iter=5000),
        x,
        y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    threshold = float(np.quantile(out_of_fold[len(fit_written) :], 1 - FIT_FALSE_ALARMS))
    model = InstructionModel(
        regression.coef_[0].astype(np.float64),
        float(regression.intercept_[0]),
        threshold,
        embedder.fingerprint,
        fitted_on=(
            f"{FIT_FILE.relative_to(ROOT)} ({len(fit_written)} sentences) and {len(fit_ntrex)} sentences of the "
            f"NTREX fit half, C={regression.C_:g} by 5-fold CV, threshold at {FIT_FALSE_ALARMS:.1%} of those "
            f"news sentences, {datetime.now(UTC):%Y-%m-%d}"
        ),
    )
    print(f"C = {regression.C_:g}; threshold = {threshold:.3f}")
    print(f"fit (in-sample): {rates(fit_written, model.flags(x[: len(fit_written)]))}")
    for name, rows in report.items():
        v = vectors(rows)
        learnt = model.flags(v)
        structural = np.array([has_chat_structure(r["text"]) for r in rows])
        print(f"{name}: screen {rates(rows, learnt | structural)}")
        print(f"{' ' * len(name)}  structural rule alone {rates(rows, structural)}")
        if name == "held-out written set":
            missed = [r["text"] for r, f in zip(rows, learnt | structural) if r["label"] == "instruction" and not f]
            alarms = [r["text"] for r, f in zip(rows, learnt | structural) if r["label"] == "news" and f]
            print("  missed:", *missed, sep="\n    ")
            print("  false alarms:", *alarms, sep="\n    ")
    if args.write:
        model.save(INSTRUCTION_MODEL_FILE)
        print(f"wrote {INSTRUCTION_MODEL_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
