"""Measure rag.language.detect_language (py3langid + az cue words) against lingua-language-detector.

Issue 16 asked whether lingua (which knows Azerbaijani and is said to be strong on short texts) should replace
py3langid + the cue words. Measured on SIB-200 az/ru/en sentences and their 3-6-word prefixes, the question sets,
XQuAD questions and single NTREX sentences and prefixes: it does not (see the note in bench/README.md).

    .venv/bin/pip install -c constraints.txt -r requirements-bench.txt   # lingua-language-detector (96 MB)
    .venv/bin/python bench/language_detectors.py                          # about 1 minute

Prints the tables; per-item predictions go to bench/out/language_preds.jsonl.
"""

from __future__ import annotations

import gc
import json
import re
import resource
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

MAIN = Path(__file__).resolve().parents[1]
EVAL = MAIN.parent / "shared" / "eval"
LANGS = ("az", "ru", "en")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_sets() -> dict[str, list[tuple[str, str]]]:
    sib = jsonl(EVAL / "sib200_flores_az_ru_en.jsonl")
    sets: dict[str, list[tuple[str, str]]] = {"sib_full": [], "sib_short": []}
    for i, row in enumerate(sib):
        for lang in LANGS:
            text = row[lang]
            sets["sib_full"].append((lang, text))
            n_words = 3 + (i % 4)  # 3,4,5,6 words, deterministic
            sets["sib_short"].append((lang, " ".join(text.split()[:n_words])))
    questions = []
    for path in (EVAL / "seeds_dev.jsonl", EVAL / "ntrex_qa_dev.jsonl", MAIN / "bench/questions/seeds_heldout.jsonl"):
        questions += [(r["lang"], r["q"]) for r in jsonl(path)]
    sets["questions"] = questions
    docs = []
    for row in jsonl(EVAL / "ntrex_az_ru_en_docs.jsonl"):
        for lang in LANGS:
            docs.append((lang, row[lang][:5000]))
    sets["ntrex_docs"] = docs
    # Held out from the detector's own tests (which use NTREX full articles/titles and SIB az full sentences):
    # XQuAD questions (ru, en) and 3-6 word prefixes / single sentences from NTREX article bodies.
    xq = []
    for lang in ("en", "ru"):
        data = json.loads((EVAL / f"xquad.{lang}.json").read_text(encoding="utf-8-sig"))
        for art in data["data"]:
            for para in art["paragraphs"]:
                for qa in para["qas"]:
                    xq.append((lang, qa["question"]))
    sets["xquad_q"] = xq
    split = re.compile(r"(?<=[.!?])\s+")
    sent, short = [], []
    for row in jsonl(EVAL / "ntrex_az_ru_en_docs.jsonl"):
        for lang in LANGS:
            body = row[lang].split("\n", 1)[1] if "\n" in row[lang] else row[lang]
            for k, s in enumerate(x for x in split.split(body.replace("\n", " ")) if len(x.split()) >= 4):
                sent.append((lang, s))
                short.append((lang, " ".join(s.split()[: 3 + (k % 4)])))
    sets["ntrex_sent"] = sent
    sets["ntrex_short"] = short
    return sets


def main() -> None:
    sets = build_sets()
    r0 = rss_mb()
    sys.path.insert(0, str(MAIN))
    from rag.language import detect_language

    detect_language("warm up the py3langid model, this is an English sentence")
    r_cur = rss_mb()

    from lingua import Language, LanguageDetectorBuilder

    code = {
        Language.AZERBAIJANI: "az",
        Language.RUSSIAN: "ru",
        Language.ENGLISH: "en",
        Language.TURKISH: "tr",
        Language.UKRAINIAN: "uk",
    }

    def wrap(det):
        def f(text: str) -> str:
            lang = det.detect_language_of(text)
            if lang is None:
                return "none"
            return code.get(lang, lang.iso_code_639_1.name.lower())

        return f

    small_langs = [
        Language.AZERBAIJANI,
        Language.RUSSIAN,
        Language.ENGLISH,
        Language.TURKISH,
        Language.UKRAINIAN,
        Language.KAZAKH,
        Language.BELARUSIAN,
        Language.BULGARIAN,
    ]
    gc.collect()
    t = time.perf_counter()
    r1 = rss_mb()
    three = (
        LanguageDetectorBuilder.from_languages(Language.AZERBAIJANI, Language.RUSSIAN, Language.ENGLISH)
        .with_preloaded_language_models()
        .build()
    )
    small = LanguageDetectorBuilder.from_languages(*small_langs).with_preloaded_language_models().build()
    small_build = time.perf_counter() - t
    r2 = rss_mb()
    t = time.perf_counter()
    alld = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
    all_build = time.perf_counter() - t
    r3 = rss_mb()
    alld_low = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()

    tools = {
        "current": detect_language,
        "lingua_3": wrap(three),
        "lingua_small": wrap(small),
        "lingua_all": wrap(alld),
        "lingua_all_low": wrap(alld_low),
    }
    # warm up lazy models (low-accuracy one loads lazily)
    for f in tools.values():
        for s in ("Salam, necəsən?", "Привет, как дела?", "Hello there friend"):
            f(s)
    r4 = rss_mb()
    print(
        f"RSS MB: start {r0:.0f}, after current detector {r_cur:.0f} (+{r_cur - r0:.0f}); "
        f"lingua small set preloaded +{r2 - r1:.0f} (build {small_build:.2f}s); "
        f"lingua all preloaded +{r3 - r2:.0f} (build {all_build:.2f}s); all-low lazy after warmup +{r4 - r3:.0f}; "
        f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    )

    others = [
        ("tr", "Türkiye ile Azerbaycan arasındaki ilişkiler hızla gelişiyor ve iki ülke yeni anlaşmalar imzalıyor."),
        ("uk", "Україна є державою у Східній Європі. Столиця країни місто Київ."),
        ("bg", "България е държава в Югоизточна Европа. Столицата на страната е град София."),
        ("de", "Die Minister trafen sich am Montag in Baku, um über neue Verkehrsverbindungen zu sprechen."),
        ("tr", "Bugün hava çok güzel, parka gidiyoruz."),
        ("uk", "Що сказав міністр?"),
        ("kk", "Қазақстан Республикасының астанасы Астана қаласы."),
    ]
    for gold, text in others:
        print("other-lang", gold, {t: f(text) for t, f in tools.items()}, text[:40])

    preds = defaultdict(dict)  # (set, tool) -> list
    times = defaultdict(dict)
    for set_name, items in sets.items():
        for tool, f in tools.items():
            out, ts = [], []
            for _, text in items:
                t = time.perf_counter()
                out.append(f(text))
                ts.append(time.perf_counter() - t)
            preds[set_name][tool] = out
            times[set_name][tool] = ts

    out_dir = MAIN / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    with open(out_dir / "language_preds.jsonl", "w", encoding="utf-8") as fh:
        for set_name, items in sets.items():
            for i, (gold, text) in enumerate(items):
                row = {"set": set_name, "gold": gold, "text": text[:200]}
                row.update({tool: preds[set_name][tool][i] for tool in tools})
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    print("\nAccuracy (per set x gold language); n")
    header = f"{'set':11} {'lang':4} {'n':>5} " + " ".join(f"{t:>15}" for t in tools)
    print(header)
    for set_name, items in sets.items():
        for lang in LANGS + ("all",):
            idx = [i for i, (g, _) in enumerate(items) if lang == "all" or g == lang]
            if not idx:
                continue
            accs = []
            for tool in tools:
                ok = sum(preds[set_name][tool][i] == items[i][0] for i in idx)
                accs.append(f"{ok / len(idx) * 100:6.1f}% ({len(idx) - ok:4d}x)")
            print(f"{set_name:11} {lang:4} {len(idx):5d} " + " ".join(f"{a:>15}" for a in accs))

    print("\nErrors by predicted label (gold->pred: count)")
    for set_name, items in sets.items():
        for tool in tools:
            c = Counter(f"{g}->{p}" for (g, _), p in zip(items, preds[set_name][tool]) if g != p)
            print(f"{set_name:11} {tool:15} {dict(c.most_common(8))}")

    print("\nMedian time per call (us), and p95")
    for set_name in sets:
        cur = statistics.median(times[set_name]["current"])
        parts = []
        for tool in tools:
            ts = sorted(times[set_name][tool])
            med = statistics.median(ts)
            p95 = ts[int(0.95 * (len(ts) - 1))]
            parts.append(f"{tool} {med * 1e6:8.0f} (p95 {p95 * 1e6:7.0f}, x{med / cur:5.1f})")
        print(f"{set_name:11} " + " | ".join(parts))


if __name__ == "__main__":
    main()
