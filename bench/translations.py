"""Why quotes reach the asker untranslated: every machine translation the assistant tries, and what its check said.

    .venv/bin/python bench/translations.py [--model quality] [--limit N]
    .venv/bin/python bench/translations.py --from-json    # re-render the block from bench/out, asking nothing

Asks the NTREX-QA dev questions (the newsroom and index of bench/answers.py, `[answer] min_confidence = 0` so that
every question is answered) and records each translation of a quote into the asker's language with the verdict of
`rag.grounding.check_translation`: passed, or the first check it failed ("language": the reply is not in the
asked language, or Azerbaijani without a letter Turkish lacks; "repeated": a word or phrase said three times in a
row; "meaning": too far from its quote; "alignment": its words do not line up with the quote's, "numbers",
"names", "dates", "untranslated", "empty"). A translation that fails is not shown, and the answer quotes the
document's own sentence instead, so this table is where the "readable" share of bench/answers.py is lost. Every
direction is asked, also those the model catalogue says the model is not asked for in use (the measurement that
decided them). A second table scores each translation against NTREX's human translation of the same sentence.
Writes bench/out/translations-<model>.json (every attempt, with its quote and translation) and the TRANSLATIONS
block of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from answers import EVAL, OUT, question_set  # noqa: E402
from results_file import publish  # noqa: E402

import rag  # noqa: E402
from rag import grounding  # noqa: E402
from rag.language import detect_language  # noqa: E402

# NTREX-128 is translated sentence by sentence: line i of an article is line i in every language, so a quote that
# is one whole line has a human translation into the asker's language.
NTREX_ARTICLES = EVAL / "ntrex_az_ru_en_docs.jsonl"
# Against that human translation, a machine translation counts as faithful at chrF >= 30 (sacrebleu's chrF, 0-100):
# the bar at which chrF agreed best with reading, on the labelled FLORES translations of bench/labels/ (84 % of
# 97; 65 of the 80 it calls faithful were faithful by reading, and 1 of the 17 it does not).
FAITHFUL_CHRF = 30.0
PROBLEMS = ("language", "repeated", "meaning", "alignment", "names", "numbers", "dates", "untranslated", "empty")


def recording(attempts: list[dict]):
    """`check_translation` that also appends each attempt and its verdict to `attempts`; the assistant calls it
    through the grounding module, so replacing it there is enough."""
    check = grounding.check_translation

    def recorded(quote, translation, target_lang, others, similarity, min_similarity, *alignment):
        verdict = check(quote, translation, target_lang, others, similarity, min_similarity, *alignment)
        cosine = float(similarity([translation], [quote])[0][0]) if translation.strip() else None
        attempts.append(
            {
                "source_lang": detect_language(quote),
                "target_lang": target_lang,
                "ok": verdict.ok,
                "problem": verdict.problem,
                "cosine": cosine,
                "quote": quote,
                "translation": translation,
            }
        )
        return verdict

    return recorded


def run(model: str, limit: int | None) -> list[dict]:
    cfg = rag.load_config(ROOT / "config.toml").with_overrides(answer={"min_confidence": 0.0})
    set_cfg, items = question_set("ntrex", cfg)
    assistant = rag.Assistant(set_cfg)
    assistant.build_index()
    attempts: list[dict] = []
    grounding.check_translation = recording(attempts)
    # Every direction is asked, those the catalogue skips for this model included (ChatModel.cannot_translate_*):
    # this benchmark is the measurement that decides them.
    rag.assistant.translates = lambda *_: True
    for n, item in enumerate(items[:limit], 1):
        before = len(attempts)
        assistant.answer(item.question, model=model)
        for attempt in attempts[before:]:
            attempt["question"] = item.id
        print(f"\r{n}/{len(items[:limit])} questions, {len(attempts)} translations", end="", file=sys.stderr)
    print(file=sys.stderr)
    return attempts


def render(attempts: list[dict], model: str, command: str, minutes: float | None) -> list[str]:
    ran = (
        f"{time.strftime('%Y-%m-%d')}; chat model {model}; {minutes:.1f} min on {platform.machine()}, "
        f"{os.cpu_count()} cores"
        if minutes is not None
        else f"re-rendered from the attempts a run saved in bench/out/translations-{model}.json; chat model {model}"
    )
    lines = [
        "## Translations of quotes into the asker's language (`bench/translations.py`)",
        "",
        f"- Command: `{command}`; {ran}",
        "- Every translation tried while answering the NTREX-QA dev questions (min_confidence 0), by the language "
        "asked in; a translation is shown only when it passes every check, else the quote stays in its language.",
        "",
        "| into | tried | passed | " + " | ".join(f"failed: {p}" for p in PROBLEMS) + " |",
        "|---" * (3 + len(PROBLEMS)) + "|",
    ]
    for target in ("az", "ru", "en", "all"):
        rows = [a for a in attempts if target in ("all", a["target_lang"])]
        if not rows:
            continue
        problems = Counter(a["problem"] for a in rows if not a["ok"])
        passed = sum(a["ok"] for a in rows)
        cells = [target, str(len(rows)), f"{passed} ({passed / len(rows):.0%})", *(str(problems[p]) for p in PROBLEMS)]
        lines.append("| " + " | ".join(cells) + " |")
    language = [a for a in attempts if a["problem"] == "language"]
    if language:
        replies = Counter(_rejected_as(a) for a in language)
        lines += [
            "",
            "Replies rejected for their language were detected as: "
            + ", ".join(f"{lang} {n}" for lang, n in replies.most_common())
            + " (rag.language.detect_language; bench/out holds every reply).",
        ]
    return lines + against_references(attempts)


def against_references(attempts: list[dict]) -> list[str]:
    """A table: of the translations shown and of those turned away, how many read like the human translation of
    the same NTREX sentence (chrF >= FAITHFUL_CHRF). Only quotes that are one whole line of an article count."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    lines_of: dict[str, tuple[dict, int]] = {}
    for article in map(json.loads, NTREX_ARTICLES.read_text(encoding="utf-8").splitlines()):
        for lang in ("az", "ru", "en"):
            for i, line in enumerate(article[lang].splitlines()):
                lines_of[" ".join(line.split())] = (article, i)
    counts: dict[tuple[str, bool], list[float]] = {}
    for attempt in attempts:
        found = lines_of.get(" ".join(attempt["quote"].split()))
        if found is None or not attempt["translation"].strip():
            continue
        article, i = found
        reference = article[attempt["target_lang"]].splitlines()[i]
        score = chrf.sentence_score(attempt["translation"], [reference]).score
        counts.setdefault((attempt["target_lang"], attempt["ok"]), []).append(score)
        counts.setdefault(("all", attempt["ok"]), []).append(score)
    with_reference = sum(len(v) for (target, _), v in counts.items() if target == "all")
    out = [
        "",
        f"Against the human translation of the same sentence ({with_reference} of {len(attempts)} quotes are one "
        f"whole line of an NTREX article, whose line in the asker's language is its human translation): "
        f"translations with chrF >= {FAITHFUL_CHRF:.0f} against it (faithful, as far as a reference can tell: on "
        "the labelled FLORES translations of bench/labels/ this bar agrees with reading for 84 %).",
        "",
        "| into | shown | of them faithful by the reference | median chrF | turned away | of them faithful by "
        "the reference | median chrF |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in ("az", "ru", "en", "all"):
        shown, away = counts.get((target, True), []), counts.get((target, False), [])
        if not shown and not away:
            continue
        cells = [target]
        for scores in (shown, away):
            faithful = sum(score >= FAITHFUL_CHRF for score in scores)
            cells += [str(len(scores)), str(faithful), f"{statistics.median(scores):.0f}" if scores else "-"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _rejected_as(attempt: dict) -> str:
    """The language a reply rejected for its language was detected as; a reply asked in Azerbaijani and detected
    as Azerbaijani failed on the letters Turkish lacks (grounding.check_translation)."""
    found = detect_language(attempt["translation"])
    return "az without a letter Turkish lacks (ə, x, q)" if found == "az" == attempt["target_lang"] else found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="quality", help="chat model (default: quality)")
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--from-json", action="store_true", help="re-render from bench/out, asking nothing")
    args = parser.parse_args()
    command = " ".join(["python bench/translations.py", *sys.argv[1:]])
    out = OUT / f"translations-{args.model}.json"
    if args.from_json:
        attempts = json.loads(out.read_text(encoding="utf-8"))
        publish("TRANSLATIONS", render(attempts, args.model, command, None), args.results)
        print(f"wrote {args.results}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    attempts = run(args.model, args.limit)
    OUT.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(attempts, ensure_ascii=False, indent=1), encoding="utf-8")
    publish("TRANSLATIONS", render(attempts, args.model, command, (time.perf_counter() - started) / 60), args.results)
    print(f"wrote {out} and {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
