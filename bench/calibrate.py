"""Fit the evidence model (rag/evidence_model.json) on one half of the dev articles; report both halves.

    .venv/bin/python bench/calibrate.py [--write]

The questions are NTREX-QA's, the seeds' (seeds_dev.jsonl) and NTREX-QA's again over their five-article newsrooms
(bench/answers.py's "newsrooms" set). Every retrieved sentence of every question is
labelled: it states the answer when it comes from a gold article and holds one alternative of every key (its
headline counted), as `rag eval` judges answers. A logistic regression over evidence.FEATURES is fitted on the
questions of the "fit" halves (rag.evaluation.article_half: split by article, so no article of a report half is
seen); the regularisation strength is chosen by cross-validation grouped by article within them. Unanswerable
questions take part: all their sentences are negatives. It prints, per set and half, how often a sentence that
states the answer is the first evidence sentence, among the quoted ones (decision.quotes_for) and among all the
evidence, and the FLORES-calibrated translation floor; with --write it replaces the model file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from answers import question_parts  # noqa: E402

import rag  # noqa: E402
from rag import RagError, evaluation, grounding  # noqa: E402
from rag.decision import confidence_of, quotes_for  # noqa: E402
from rag.evidence import (  # noqa: E402
    FEATURES,
    MODEL_FILE,
    EvidenceModel,
    candidate_sentences,
    rank_evidence,
    sentence_features,
)
from rag.retrieval import Filters  # noqa: E402
from rag.types import Evidence  # noqa: E402

# Every fit half trains the model: newsroom questions, short ones about one subject, and the newsroom questions
# again over five articles of their story (the seeds' case: every candidate sentence is on the subject).
SETS = ("ntrex", "seeds", "newsrooms")
STRENGTHS = (0.1, 1.0, 10.0)  # inverse regularisation strengths tried by the grouped cross-validation
FLORES = ROOT.parent / "shared" / "eval" / "sib200_flores_az_ru_en.jsonl"
# A machine translation is shown when it is at least as close to its source as this share of human translations
# is not: the 40th percentile of FLORES-200 source / reference cosines over the six directions. Measured on 180
# translations by the default model (30 sentences x 6 directions, scored against the human reference): at the
# 10th percentile 13 kept translations were poor (cosine to the reference < 0.88), at the 25th 8, at the 40th none.
TRANSLATION_PERCENTILE = 40
# The default chat model's translations of FLORES-200 sentences 300-359 (ru -> en, en -> ru, az -> en, az -> ru)
# that passed every other check of the day, each labelled faithful or not by reading it beside the source and
# the human reference (bench/labels/README.md). Only the translations are stored; the sentences are read from
# ../shared/eval.
TRANSLATION_LABELS = ROOT / "bench" / "labels" / "flores_translations.jsonl"


def flores_rows() -> list[dict]:
    """The FLORES-200 sentences of ../shared/eval, each with its az / ru / en texts, in file order."""
    return [json.loads(line) for line in FLORES.read_text(encoding="utf-8").splitlines() if line.strip()]


def translation_min_similarity(assistant: rag.Assistant, sentences: int = 300) -> float:
    """The cosine between a sentence and its human translation that TRANSLATION_PERCENTILE % of FLORES pairs
    (az / ru / en, every direction) fall below."""
    rows = flores_rows()[:sentences]
    vectors = {lang: assistant.embedder.encode_passages([r[lang] for r in rows]) for lang in ("az", "ru", "en")}
    cosines = [
        float(a @ b)
        for first, second in (("az", "ru"), ("az", "en"), ("ru", "en"))
        for a, b in zip(vectors[first], vectors[second], strict=True)
    ]
    return float(np.percentile(cosines, TRANSLATION_PERCENTILE))


def translation_min_alignment(assistant: rag.Assistant) -> tuple[float, dict]:
    """The word-alignment floor (grounding.word_alignment) at which the labelled FLORES translations it keeps
    have the most faithful ones minus twice the unfaithful ones: a wrong translation shown as one costs more
    than a right one not shown (the quote is still there). Also returns what it keeps at that floor."""
    flores = {int(row["index_id"]): row for row in flores_rows()}
    labelled = [json.loads(line) for line in TRANSLATION_LABELS.read_text(encoding="utf-8").splitlines() if line]
    scores = []
    for item in labelled:
        source, translation = assistant.embedder.passage_token_vectors(
            [flores[item["index_id"]][item["source"]], item["translation"]]
        )
        scores.append((grounding.word_alignment(source, translation), bool(item["faithful"])))

    def kept(floor: float) -> tuple[int, int]:
        return sum(ok for s, ok in scores if s >= floor), sum(not ok for s, ok in scores if s >= floor)

    floors = sorted({round(s, 4) for s, _ in scores})
    best = max(floors, key=lambda f: (kept(f)[0] - 2 * kept(f)[1], -f))
    faithful = sum(ok for _, ok in scores)
    summary = {
        "labelled": len(scores),
        "faithful": faithful,
        "kept_faithful": kept(best)[0],
        "kept_unfaithful": kept(best)[1],
    }
    return best, summary


def collect(assistant: rag.Assistant, items: list[evaluation.EvalItem]) -> list[dict]:
    """Per question: its half, article, candidate sentences (as Evidence-like records), features and labels."""
    settings = assistant.config.answer
    out = []
    for item in items:
        question = assistant.question(item.question)
        hits = assistant._search(question, settings.passages, Filters())
        candidates = candidate_sentences(hits)
        if candidates:
            vectors = assistant.embedder.encode_passages([c.sentence for c in candidates])
            dense = (vectors @ question.vectors.T).max(axis=1)
        else:
            dense = np.zeros(0)
        labels = [
            bool(item.gold)
            and evaluation.in_gold(c.hit.source, item.gold)
            and not evaluation.missing_keys(f"{c.hit.title} {c.sentence}", item.keys)
            for c in candidates
        ]
        out.append(
            {
                "item": item,
                "half": evaluation.article_half(item),
                "group": item.gold[0] if item.gold else item.id.rsplit("-", 1)[0],
                "candidates": candidates,
                "features": sentence_features(question, candidates, dense),
                "labels": np.array(labels, dtype=bool),
            }
        )
    return out


def fit(rows: list[dict], strength: float):
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([r["features"] for r in rows if len(r["labels"])])
    y = np.concatenate([r["labels"] for r in rows if len(r["labels"])])
    return LogisticRegression(C=strength, max_iter=5000).fit(x, y)


def as_model(regression) -> EvidenceModel:
    return EvidenceModel(regression.coef_[0].astype(np.float64), float(regression.intercept_[0]))


def ranked(row: dict, model: EvidenceModel, limit: int) -> list[Evidence]:
    """The evidence select_evidence would give, rebuilt from the stored candidates and features."""
    probability = model.probability(row["features"]) if len(row["labels"]) else np.zeros(0)
    return rank_evidence(row["candidates"], probability, limit)


def measure(rows: list[dict], model: EvidenceModel, limit: int) -> dict:
    """Shares of answerable questions whose answer sentence is first, among the quotes, among the evidence."""
    answerable = [r for r in rows if r["item"].gold]
    first = quoted = anywhere = 0
    for row in answerable:
        evidence = ranked(row, model, limit)
        states = {(c.hit.source, c.start) for c, label in zip(row["candidates"], row["labels"], strict=True) if label}
        first += bool(evidence) and (evidence[0].hit.source, evidence[0].quote_start) in states
        quoted += any((e.hit.source, e.quote_start) in states for e in quotes_for(evidence))
        anywhere += any((e.hit.source, e.quote_start) in states for e in evidence)
    n = max(1, len(answerable))
    return {"questions": len(answerable), "first": first / n, "quoted": quoted / n, "evidence": anywhere / n}


def choose_strength(rows: list[dict]) -> float:
    """The strength whose models, each fitted without one fold of articles, best put the answer among the quotes."""
    groups = sorted({r["group"] for r in rows})
    folds = [set(groups[i::5]) for i in range(5)]
    scores = {}
    for strength in STRENGTHS:
        total = 0.0
        for fold in folds:
            train = [r for r in rows if r["group"] not in fold]
            test = [r for r in rows if r["group"] in fold]
            total += measure(test, as_model(fit(train, strength)), 4)["quoted"] * len(test)
        scores[strength] = total
    return max(STRENGTHS, key=lambda s: (scores[s], -abs(np.log10(s))))


def _shares(line: dict) -> str:
    return f"questions {line['questions']}, " + ", ".join(f"{k} {v:.3f}" for k, v in line.items() if k != "questions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace {MODEL_FILE.relative_to(ROOT)}")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="question sets to fit and report")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    config = rag.load_config(ROOT / "config.toml")
    embedder = rag.Assistant(config).embedder
    for name in args.sets:
        for cfg, items in question_parts(name, config, embedder):
            assistant = rag.Assistant(cfg, embedder=embedder)
            assistant.build_index()
            rows += [{**row, "set": name} for row in collect(assistant, items)]
    fit_rows = [r for r in rows if r["half"] == "fit"]
    strength = choose_strength(fit_rows)
    model = as_model(fit(fit_rows, strength))
    limit = cfg.answer.evidence
    print(f"C = {strength} (grouped 5-fold CV on the fit halves); evidence = {limit} sentences")
    try:
        current = EvidenceModel.load()
    except (OSError, RagError):  # none yet, or fitted on other features: nothing to compare with
        current = None
    for name in args.sets:
        for half in ("fit", "report"):
            selected = [r for r in rows if r["half"] == half and r["set"] == name]
            print(f"{name:>6} {half:>6}: new  {_shares(measure(selected, model, limit))}")
            if current is not None:
                print(f"{name:>6} {half:>6}: file {_shares(measure(selected, current, limit))}")
        seen = [r for r in rows if r["set"] == name]
        confidences = [
            confidence_of(quotes_for(ranked(r, model, limit))) for r in seen if r["item"].gold and r["labels"].any()
        ]
        print(f"{name:>6}: median confidence of answerable questions {np.median(confidences):.2f}")
    min_similarity = translation_min_similarity(assistant)
    print(f"translation_min_similarity {min_similarity:.4f} (FLORES-200, {TRANSLATION_PERCENTILE}th percentile)")
    min_alignment, kept = translation_min_alignment(assistant)
    print(
        f"translation_min_alignment {min_alignment:.4f}: of {kept['labelled']} labelled FLORES translations "
        f"({kept['faithful']} faithful) it keeps {kept['kept_faithful']} faithful and {kept['kept_unfaithful']} not; "
        "the default of [answer] translation_min_alignment (rag/config.py, config.toml)"
    )
    print("weights: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(FEATURES, model.weights, strict=True)))
    if args.write:
        record = {
            "features": list(FEATURES),
            "weights": [round(float(w), 6) for w in model.weights],
            "bias": round(model.bias, 6),
            "translation_min_similarity": round(min_similarity, 4),
            "passages": cfg.answer.passages,  # the passages whose sentences scale the relative features
            "fitted_on": (
                f"{', '.join(args.sets)}: fit halves ({len(fit_rows)} questions), C={strength}, "
                f"{datetime.now(UTC).date().isoformat()}, `python bench/calibrate.py --write`"
            ),
        }
        MODEL_FILE.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_FILE}")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
