"""Evaluation: the numbers every change to prompts, models or retrieval settings is judged by.

Two input formats:
- JSONL in the format of `../shared/eval/seeds_dev.jsonl` (`id`, `q`, `lang`, `gold`, `keys`): questions about
  the configured corpus;
- XQuAD / SQuAD 1.1 JSON: its paragraphs become the corpus (one .txt file each, written by `prepare_xquad`),
  optionally with the paragraphs of a parallel file (crossed evaluation: ru questions over en paragraphs).

`run_eval` asks every question twice, once through `search` (retrieval ranks) and once through `answer`
(citations, key facts, refusals, latency), and returns a report of plain JSON values: metrics per language and
overall, the run's metadata, and one row per question so that a person can read what went wrong.

Each row also carries the answer's calibrated `confidence`, whether it is `correct` and `readable` in the question's
language, and the `half` of the fixed split by article. Run with `[answer] min_confidence = 0`, the rows hold every
would-be answer, and the pure functions of "answer decisions" (`precision`, `coverage`, `risk_coverage`,
`choose_operating_point`) judge any confidence threshold after the fact, without asking again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .chunking import split_sentences
from .errors import RagError
from .language import detect_language

RETRIEVAL_K = 5  # hit@5 needs five documents' worth of passages

_MARKER = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_LEADING_MARKERS = re.compile(r"(?:\s*\[\d+(?:\s*[,;–-]\s*\d+)*\])+")
# "claim.[1] Next" carries no space for the sentence splitter to break on, so one is put in first.
_MARKER_AFTER_END = re.compile(r"([.!?…])(\[\d)")
_LANG_IN_NAME = re.compile(r"(?:^|[._-])([a-z]{2})$")
_MISSES_SHOWN = 20


@dataclass
class EvalItem:
    """One question: `gold` lists the corpus files that hold its answer (empty: the assistant must refuse);
    `keys` lists alternatives, and every list needs one alternative in the answer text."""

    id: str
    lang: str
    question: str
    gold: list[str]
    keys: list[list[str]]


# -- loading ------------------------------------------------------------------------------------------------
def load_items(
    path: Path, *, corpus_dir: Path | None = None, paragraphs_from: Path | None = None
) -> tuple[list[EvalItem], Path | None]:
    """The questions of an evaluation file and the corpus they are asked about.

    JSONL: the corpus is None (use the configured one). XQuAD / SQuAD JSON: the paragraphs are written to
    `corpus_dir` (default: `default_corpus_dir()` of the paragraph file) and that folder is returned.
    """
    path = Path(path)
    text = _read_text(path)
    data = _whole_json(text)
    if isinstance(data, dict) and "data" in data:
        paragraph_file = Path(paragraphs_from) if paragraphs_from is not None else path
        folder = Path(corpus_dir) if corpus_dir is not None else default_corpus_dir(paragraph_file)
        return prepare_xquad(path, folder, paragraphs_from), folder
    if path.suffix.lower() == ".json":
        _parse_json(path, text)  # a broken file: raises with the line and column of the error
        raise RagError(f"{path}: expected XQuAD / SQuAD JSON, an object whose field 'data' lists the articles.")
    if paragraphs_from is not None:
        raise RagError(f"{path} is a JSONL question file; paragraphs from another file apply to XQuAD JSON only.")
    return _parse_jsonl(path, text), None


def default_corpus_dir(paragraph_file: Path, base: Path | None = None) -> Path:
    """A folder for the corpus made of an XQuAD file's paragraphs, named after the file and its content hash,
    so that every run over the same paragraphs reuses one folder (and the index built next to it)."""
    paragraph_file = Path(paragraph_file)
    digest = hashlib.sha256(_read_bytes(paragraph_file)).hexdigest()[:12]
    root = Path(base) if base is not None else Path(tempfile.gettempdir()) / "rag-eval"
    return root / f"{_slug(paragraph_file.stem) or 'xquad'}-{digest}" / "corpus"


def prepare_xquad(path: Path, corpus_dir: Path, paragraphs_from: Path | None = None) -> list[EvalItem]:
    """Write the paragraphs as `<title-slug>_<i>.txt` files into `corpus_dir` and return one item per question.

    With `paragraphs_from`, the corpus is that file's paragraphs and each question's gold file is the paragraph
    holding the question with the same id there; its answers join the question file's as alternatives, since an
    answer may quote the paragraph's language.
    """
    path = Path(path)
    paragraphs = _read_squad(path)
    lang = _file_language(path, paragraphs)
    if paragraphs_from is None:
        files = _write_corpus(paragraphs, Path(corpus_dir))
        return [_xquad_item(q, lang, file, []) for paragraph, file in zip(paragraphs, files) for q in paragraph.qas]
    source = Path(paragraphs_from)
    corpus = _read_squad(source)
    files = _write_corpus(corpus, Path(corpus_dir))
    where = {q.id: (file, q.answers) for paragraph, file in zip(corpus, files) for q in paragraph.qas}
    items = []
    for paragraph in paragraphs:
        for q in paragraph.qas:
            if q.id not in where:
                raise RagError(
                    f"{path}: question {q.id!r} has no paragraph in {source}; crossed evaluation needs the same "
                    "question ids in both files."
                )
            file, answers = where[q.id]
            items.append(_xquad_item(q, lang, file, answers))
    return items


@dataclass(frozen=True)
class _Question:
    id: str
    question: str
    answers: list[str]
    impossible: bool  # SQuAD 2.0: the paragraph does not hold the answer


@dataclass(frozen=True)
class _Paragraph:
    title: str
    index: int  # within its article
    context: str
    qas: list[_Question]


def _xquad_item(q: _Question, lang: str, file: str, more_answers: list[str]) -> EvalItem:
    if q.impossible:
        return EvalItem(id=q.id, lang=lang, question=q.question, gold=[], keys=[])
    return EvalItem(id=q.id, lang=lang, question=q.question, gold=[file], keys=[_distinct(q.answers + more_answers)])


def prepare_ntrex_qa(corpus_file: Path, articles_file: Path, corpus_dir: Path) -> list[str]:
    """Write the NTREX-QA newsroom: each doc id of `corpus_file`'s `corpus` map as `<doc_id>.txt`, holding the
    article (title line included) in the one language the map assigns it, from `articles_file`
    (`ntrex_az_ru_en_docs.jsonl`). Returns the file names. Questions are then read with `load_items` from
    `ntrex_qa_dev.jsonl`, whose gold ids are the file stems."""
    corpus = _parse_json(Path(corpus_file), _read_text(Path(corpus_file)))
    assigned = corpus.get("corpus") if isinstance(corpus, dict) else None
    if not isinstance(assigned, dict) or not assigned:
        raise RagError(f"{corpus_file}: expected an object whose field 'corpus' maps doc ids to az, ru or en.")
    texts: dict[str, dict] = {}
    for line in _read_text(Path(articles_file)).splitlines():
        if line.strip():
            row = json.loads(line)
            texts[str(row["doc_id"])] = row
    missing = sorted(set(assigned) - set(texts))
    if missing:
        raise RagError(f"{articles_file} lacks {len(missing)} articles of {corpus_file}, e.g. {missing[0]!r}.")
    files = {f"{doc_id}.txt": texts[doc_id][lang] for doc_id, lang in sorted(assigned.items())}
    _write_files(files, Path(corpus_dir))
    return list(files)


def article_half(item: EvalItem) -> str:
    """ "fit" or "report": a fixed split by article, so that settings fitted on one half are reported on questions
    about articles they never saw. Unanswerable questions split by their id (they have no article here)."""
    key = item.gold[0].removesuffix(".txt") if item.gold else item.id.rsplit("-", 1)[0]
    return "fit" if hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 0 else "report"


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise RagError(f"Evaluation file not found: {path}. Check the path (evaluation data is in ../shared/eval/).")
    if not path.is_file():
        raise RagError(f"{path} is not a file; pass a .jsonl question file or an XQuAD .json file.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RagError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def _read_text(path: Path) -> str:
    try:
        return _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RagError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc


def _whole_json(text: str) -> Any:
    """The file parsed as one JSON value, or None when it is not one (JSONL with several lines, or broken)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RagError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}).") from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_jsonl(path: Path, text: str) -> list[EvalItem]:
    items: list[EvalItem] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        item = _jsonl_item(path, number, line)
        if item.id in first_line:
            raise RagError(
                f"{path}, line {number}: id {item.id!r} repeats line {first_line[item.id]}; ids must be unique."
            )
        first_line[item.id] = number
        items.append(item)
    if not items:
        raise RagError(f"{path} holds no questions; write one JSON object per line with q, lang, gold and keys.")
    return items


def _jsonl_item(path: Path, number: int, line: str) -> EvalItem:
    where = f"{path}, line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RagError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from exc
    if not isinstance(row, dict):
        raise RagError(f"{where}: expected a JSON object with q, lang, gold and keys, got {_short(row)}.")
    question = row.get("q")
    if not isinstance(question, str) or not question.strip():
        raise RagError(f"{where}: field 'q' must be the question text, got {_short(question)}.")
    lang = row.get("lang", detect_language(question))
    if not isinstance(lang, str) or not lang.strip():
        raise RagError(f"{where}: field 'lang' must be a language code such as \"az\", got {_short(lang)}.")
    if "gold" not in row:
        raise RagError(f"{where}: field 'gold' is missing; list the files holding the answer, or [] for none.")
    gold = row["gold"]
    if not isinstance(gold, list) or not all(isinstance(g, str) and g.strip() for g in gold):
        raise RagError(f"{where}: field 'gold' must be a list of file names, got {_short(gold)}.")
    keys = row.get("keys", [])
    if not isinstance(keys, list) or not all(_is_alternatives(k) for k in keys):
        raise RagError(
            f'{where}: field \'keys\' must be a list of lists of alternatives, e.g. [["Khalafov", "Халафов"]], '
            f"got {_short(keys)}."
        )
    item_id = row.get("id", f"{path.stem}-{number}")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or not str(item_id).strip():
        raise RagError(f"{where}: field 'id' must be a string, got {_short(item_id)}.")
    return EvalItem(id=str(item_id), lang=lang.strip(), question=question.strip(), gold=gold, keys=keys)


def _is_alternatives(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _read_squad(path: Path) -> list[_Paragraph]:
    data = _parse_json(path, _read_text(path))
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list) or not articles:
        raise RagError(f"{path}: expected SQuAD JSON, an object whose field 'data' is a non-empty list of articles.")
    paragraphs = []
    for a, article in enumerate(articles):
        where = f"{path}: data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise RagError(f"{where}.paragraphs must be a list of paragraphs.")
        title = article.get("title", f"article-{a}")
        if not isinstance(title, str):
            raise RagError(f"{where}.title must be a string, got {_short(title)}.")
        for p, paragraph in enumerate(article["paragraphs"]):
            paragraphs.append(_squad_paragraph(f"{where}.paragraphs[{p}]", title, p, paragraph))
    return paragraphs


def _squad_paragraph(where: str, title: str, index: int, paragraph: Any) -> _Paragraph:
    if not isinstance(paragraph, dict):
        raise RagError(f"{where} must be an object with context and qas.")
    context = paragraph.get("context")
    if not isinstance(context, str) or not context.lstrip("\ufeff").strip():
        raise RagError(f"{where}.context must be the paragraph text, got {_short(context)}.")
    qas = paragraph.get("qas")
    if not isinstance(qas, list):
        raise RagError(f"{where}.qas must be a list of questions.")
    return _Paragraph(title, index, context, [_squad_question(f"{where}.qas[{i}]", qa) for i, qa in enumerate(qas)])


def _squad_question(where: str, qa: Any) -> _Question:
    if not isinstance(qa, dict):
        raise RagError(f"{where} must be an object with id, question and answers.")
    qid, question, answers = qa.get("id"), qa.get("question"), qa.get("answers")
    if not isinstance(qid, str) or not qid.strip():
        raise RagError(f"{where}.id must be a non-empty string, got {_short(qid)}.")
    if not isinstance(question, str) or not question.strip():
        raise RagError(f"{where}.question must be the question text, got {_short(question)}.")
    impossible = qa.get("is_impossible") is True
    valid = isinstance(answers, list) and all(
        isinstance(x, dict) and isinstance(x.get("text"), str) and x["text"].strip() for x in answers
    )
    if not valid or (not answers and not impossible):
        raise RagError(f'{where}.answers must be a non-empty list of {{"text": ...}} objects, got {_short(answers)}.')
    return _Question(qid, question.strip(), _distinct(x["text"].strip() for x in answers), impossible)


def _file_language(path: Path, paragraphs: list[_Paragraph]) -> str:
    named = _LANG_IN_NAME.search(path.stem.lower())
    if named:
        return named.group(1)
    return detect_language(" ".join(q.question for p in paragraphs for q in p.qas[:3])[:2000])


def _slug(title: str) -> str:
    return re.sub(r"[\W_]+", "-", unicodedata.normalize("NFC", title).lower()).strip("-")


def _paragraph_files(paragraphs: list[_Paragraph]) -> list[str]:
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


def _write_corpus(paragraphs: list[_Paragraph], corpus_dir: Path) -> list[str]:
    """Write each paragraph as its own file (see `_write_files`)."""
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


# -- judging one answer ---------------------------------------------------------------------------------------
def in_gold(source: str, gold: Sequence[str]) -> bool:
    """Whether a corpus-relative source is one of the gold files (a gold name may omit the folders, and its
    extension: NTREX-QA names articles by doc id, the file stem)."""
    stem = source.rsplit(".", 1)[0] if "." in source.rsplit("/", 1)[-1] else source
    return any(name == g or name.endswith("/" + g) for g in gold for name in (source, stem))


def retrieval_rank(sources: Sequence[str], gold: Sequence[str]) -> int | None:
    """1-based rank of the first gold document among the distinct documents in `sources`, None when absent."""
    for rank, source in enumerate(_distinct(sources), 1):
        if in_gold(source, gold):
            return rank
    return None


def _fold(text: str) -> str:
    # Casefolding alone leaves Azerbaijani İ as i + combining dot and ı apart from i; both are case variants.
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u0307", "").replace("ı", "i")
    return " ".join(folded.split())


def missing_keys(text: str, keys: Sequence[Sequence[str]]) -> list[list[str]]:
    """The key lists none of whose alternatives occurs in `text` (case-insensitive; citation markers ignored,
    so that a key "2" is not found in "[2]")."""
    haystack = _fold(_MARKER.sub(" ", text))
    return [list(alternatives) for alternatives in keys if not any(_fold(a) in haystack for a in alternatives)]


def unsupported_sentences(answer: Any) -> list[str]:
    """Sentences of the answer text that carry no [n] marker pointing to one of its citations.
    A refusal is one fixed sentence with nothing to cite, so it has none."""
    if answer.refused:
        return []
    cited = {c.n for c in answer.citations}
    return [s for s in answer_sentences(answer.text) if not (_marker_numbers(s) & cited)]


def answer_sentences(text: str) -> list[str]:
    """The sentences of an answer, each with the markers that follow its full stop ("claim. [1] Next.")."""
    text = _MARKER_AFTER_END.sub(r"\1 \2", text)
    sentences: list[str] = []
    for start, end in split_sentences(text):
        piece = text[start:end]
        lead = _LEADING_MARKERS.match(piece)
        if lead and sentences:
            sentences[-1] = f"{sentences[-1]} {lead.group().strip()}"
            piece = piece[lead.end() :].strip()
        if re.search(r"[^\W_]", _MARKER.sub("", piece)):
            sentences.append(piece)
    return sentences


def _marker_numbers(sentence: str) -> set[int]:
    numbers: set[int] = set()
    for marker in _MARKER.findall(sentence):
        for part in re.split(r"\s*[,;]\s*", marker):
            bounds = [int(n) for n in re.split(r"\s*[–-]\s*", part)]
            # A range such as [1-3] names a few citations; a typo like [1-9999] must not build a huge set.
            numbers.update(range(bounds[0], min(bounds[-1], bounds[0] + 50) + 1))
    return numbers


# -- running ----------------------------------------------------------------------------------------------------
def run_eval(
    assistant: Any,
    items: list[EvalItem],
    *,
    model: str | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    file: str | Path | None = None,
) -> dict:
    """Ask every item (the first `limit`) and return the report: `meta`, `overall`, `by_lang`, `rows`."""
    if limit is not None and limit < 1:
        raise RagError(f"limit must be at least 1, got {limit}.")
    chosen = items[:limit] if limit is not None else list(items)
    started = time.perf_counter()
    rows = []
    for done, item in enumerate(chosen, 1):
        rows.append(_evaluate(assistant, item, model))
        if progress:
            progress(done, len(chosen))
    languages = sorted({row["lang"] for row in rows})
    return {
        "meta": _meta(assistant, rows, model, file, limit, time.perf_counter() - started),
        "overall": summarise(rows),
        "by_lang": {lang: summarise([r for r in rows if r["lang"] == lang]) for lang in languages},
        "rows": rows,
    }


def _evaluate(assistant: Any, item: EvalItem, model: str | None) -> dict:
    retrieved = _distinct(hit.source for hit in assistant.search(item.question, k=RETRIEVAL_K))
    answer = assistant.answer(item.question, model=model)
    answerable = bool(item.gold)
    cited = [c.source for c in answer.citations]
    outside = [s for s in cited if not in_gold(s, item.gold)]
    missed = missing_keys(answer.text, item.keys)
    key_hit = None if not (answerable and item.keys) else not answer.refused and not missed
    cites_gold = not answer.refused and any(in_gold(s, item.gold) for s in cited)
    return {
        "id": item.id,
        "lang": item.lang,
        "question": item.question,
        "gold": list(item.gold),
        "answerable": answerable,
        "retrieved": retrieved,
        "retrieval_rank": retrieval_rank(retrieved, item.gold) if answerable else None,
        "answer": answer.text,
        "refused": bool(answer.refused),
        "mode": answer.mode,
        "model": answer.model,
        "cited": cited,
        "cites_gold": cites_gold if answerable else None,
        "outside_gold": outside,
        "key_hit": key_hit,
        "missing_keys": missed if answerable else [],
        "unsupported": unsupported_sentences(answer),
        "timings": {k: _round(v) for k, v in dict(answer.timings).items()},
        "confidence": None if answer.confidence is None else _round(float(answer.confidence)),
        "correct": answerable and not answer.refused and not missed and cites_gold,
        "readable": not answer.refused and is_readable(answer.text, item.lang),
        "half": article_half(item),
        "citations": [
            {
                "n": c.n,
                "source": c.source,
                "lang": c.lang,
                "quote": c.quote,
                "translation": c.translation,
            }
            for c in answer.citations
        ],
    }


def summarise(rows: Sequence[dict]) -> dict:
    """The metrics over some rows; a share whose denominator is 0 is None."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    ranks = [r["retrieval_rank"] for r in answerable]
    citations = sum(len(r["cited"]) for r in answerable)
    outside = sum(len(r["outside_gold"]) for r in answerable)
    with_keys = [r for r in answerable if r["key_hit"] is not None]
    refused = [r for r in rows if r["refused"]]
    rightly_refused = sum(1 for r in refused if not r["answerable"])
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit_at_1": _share(sum(1 for r in ranks if r == 1), len(ranks)),
        "hit_at_5": _share(sum(1 for r in ranks if r is not None and r <= 5), len(ranks)),
        "mrr": _share(sum(1 / r for r in ranks if r is not None), len(ranks)),
        "cites_gold": _share(sum(1 for r in answerable if r["cites_gold"]), len(answerable)),
        "citations": citations,
        "citations_outside_gold": _share(outside, citations),
        "single_source_outside_gold": sum(1 for r in answerable if len(r["gold"]) == 1 and r["outside_gold"]),
        "key_questions": len(with_keys),
        "key_accuracy": _share(sum(1 for r in with_keys if r["key_hit"]), len(with_keys)),
        "refused": len(refused),
        "refusal_precision": _share(rightly_refused, len(refused)),
        "refusal_recall": _share(rightly_refused, len(unanswerable)),
        "unsupported_sentences": sum(len(r["unsupported"]) for r in rows),
        "first_token_p50": _percentile(_timings(rows, "first_token"), 50),
        "first_token_p95": _percentile(_timings(rows, "first_token"), 95),
        "total_p50": _percentile(_timings(rows, "total"), 50),
        "total_p95": _percentile(_timings(rows, "total"), 95),
        **decisions(rows),
    }


# -- answer decisions -------------------------------------------------------------------------------------------
# A row is "given" when the run answered it (not refused) and, at a confidence threshold t, its confidence is at
# least t: that is what `[answer] min_confidence = t` would have answered. A row without a confidence counts as
# confidence 0 (given only at t = 0). Thresholds are applied to the rows after the fact, so a run with
# min_confidence 0 can be judged at every threshold.
class CurvePoint(NamedTuple):
    """One threshold of a risk-coverage curve; a share whose denominator is 0 is None."""

    threshold: float
    coverage: float | None
    precision: float | None
    unanswerable_refused: float | None


def given(row: dict, threshold: float | None = None) -> bool:
    """Whether the row's answer is given: answered in the run and, with a threshold, confident enough."""
    if row["refused"]:
        return False
    return threshold is None or (row.get("confidence") or 0.0) >= threshold


def precision(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Correct answers / answers given; an answer to an unanswerable question is given and not correct."""
    answers = [r for r in rows if given(r, threshold)]
    return _share(sum(1 for r in answers if r.get("correct")), len(answers))


def coverage(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Answerable questions answered (right or wrong) / answerable questions."""
    answerable = [r for r in rows if r["answerable"]]
    return _share(sum(1 for r in answerable if given(r, threshold)), len(answerable))


def unanswerable_refused(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Unanswerable questions refused / unanswerable questions."""
    unanswerable = [r for r in rows if not r["answerable"]]
    return _share(sum(1 for r in unanswerable if not given(r, threshold)), len(unanswerable))


def readable_share(rows: Sequence[dict], threshold: float | None = None) -> float | None:
    """Answers given in the question's language (see `is_readable`) / answers given."""
    answers = [r for r in rows if given(r, threshold)]
    return _share(sum(1 for r in answers if r.get("readable")), len(answers))


def is_readable(text: str, lang: str) -> bool:
    """Whether a reader of `lang` can read the answer: its text without [n] markers is detected as `lang`, or it
    is under 4 words (too short to detect, and mostly names or numbers). A quote left in the document's language
    makes a longer answer unreadable, which is the point."""
    stripped = _MARKER.sub(" ", text)
    if len(re.findall(r"[^\W_]+", stripped)) < 4:
        return True
    return detect_language(stripped) == lang


def decisions(rows: Sequence[dict], threshold: float | None = None) -> dict:
    """The answer metrics at a threshold (None: as the run decided). Latency is over every question, answered
    or refused, as the run measured it."""
    answers = [r for r in rows if given(r, threshold)]
    totals = _timings(rows, "total")
    return {
        "answered": len(answers),
        "correct": sum(1 for r in answers if r.get("correct")),
        "precision": precision(rows, threshold),
        "coverage": coverage(rows, threshold),
        "unanswerable_refused": unanswerable_refused(rows, threshold),
        "readable": readable_share(rows, threshold),
        "latency_p50": _percentile(totals, 50),
        "latency_p90": _percentile(totals, 90),
    }


def risk_coverage(rows: Sequence[dict]) -> list[CurvePoint]:
    """Coverage, precision and unanswerable refused at every threshold that changes what is given: 0 and each
    distinct confidence of an answered row, lowest threshold (highest coverage) first.

    >>> rows = [{"answerable": True, "refused": False, "confidence": 0.9, "correct": True},
    ...         {"answerable": True, "refused": False, "confidence": 0.4, "correct": False}]
    >>> [tuple(p) for p in risk_coverage(rows)]
    [(0.0, 1.0, 0.5, None), (0.4, 1.0, 0.5, None), (0.9, 0.5, 1.0, None)]
    """
    if not rows:
        return []
    confidences = {r["confidence"] for r in rows if not r["refused"] and r.get("confidence") is not None}
    return [
        CurvePoint(t, coverage(rows, t), precision(rows, t), unanswerable_refused(rows, t))
        for t in sorted({0.0} | confidences)
    ]


def choose_operating_point(curve: Sequence[CurvePoint], min_precision: float) -> CurvePoint | None:
    """The point with the highest coverage whose precision reaches `min_precision` (ties: higher precision, then
    more unanswerable questions refused, then the lower threshold); when none reaches it, the point with the
    highest precision (ties: higher coverage). None when no point has a precision."""
    scored = [p for p in curve if p.precision is not None]
    if not scored:
        return None
    good = [p for p in scored if p.precision >= min_precision]
    if good:
        return max(good, key=lambda p: (p.coverage or 0.0, p.precision, p.unanswerable_refused or 0.0, -p.threshold))
    return max(scored, key=lambda p: (p.precision, p.coverage or 0.0, -p.threshold))


def best_net_threshold(rows: Sequence[dict], wrong_cost: float = 2.0) -> float | None:
    """The threshold at which right answers minus `wrong_cost` times wrong ones is highest (a refusal costs
    nothing), the lowest such threshold; None when nothing was answered. With the default cost, an answer is
    worth giving when it is at least twice as likely right as wrong: the rule the default `[answer]
    min_confidence` is chosen by, on the fit half."""
    if not any(given(r) for r in rows):
        return None
    candidates = sorted({0.0} | {r["confidence"] for r in rows if not r["refused"] and r.get("confidence") is not None})

    def net(threshold: float) -> float:
        answers = [r for r in rows if given(r, threshold)]
        right = sum(1 for r in answers if r.get("correct"))
        return right - wrong_cost * (len(answers) - right)

    return max(candidates, key=lambda t: (net(t), -t))


def _share(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _timings(rows: Sequence[dict], key: str) -> list[float]:
    return [r["timings"][key] for r in rows if isinstance(r["timings"].get(key), (int, float))]


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks, as numpy.percentile does by default."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return _round(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _meta(assistant: Any, rows: list[dict], model: str | None, file: Any, limit: int | None, seconds: float) -> dict:
    names = _distinct(r["model"] for r in rows if r["model"])
    config = getattr(assistant, "config", None)
    return {
        "file": str(file) if file is not None else None,
        "model": ", ".join(names) or model or "",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "questions": len(rows),
        "limit": limit,
        "retrieval_k": RETRIEVAL_K,
        "seconds": round(seconds, 2),
        "corpus": str(config.corpus.path) if config is not None else None,
        "config": _config_summary(config),
    }


def _config_summary(config: Any) -> dict:
    summary = {}
    for section in ("retrieval", "answer", "generation"):
        value = getattr(config, section, None)
        if dataclasses.is_dataclass(value):
            summary[section] = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return summary


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# -- output ---------------------------------------------------------------------------------------------------
_TABLE = (
    ("questions", "questions", "count"),
    ("answerable", "answerable", "count"),
    ("unanswerable", "unanswerable", "count"),
    ("hit_at_1", "retrieval hit@1", "share"),
    ("hit_at_5", "retrieval hit@5", "share"),
    ("mrr", "retrieval MRR", "ratio"),
    ("cites_gold", "answers citing gold", "share"),
    ("citations_outside_gold", "citations outside gold", "share"),
    ("single_source_outside_gold", "1-source qs citing outside", "count"),
    ("key_accuracy", "key-fact accuracy", "share"),
    ("refused", "refused", "count"),
    ("refusal_precision", "refusal precision", "share"),
    ("refusal_recall", "refusal recall", "share"),
    ("precision", "answer precision", "share"),
    ("coverage", "answerable answered", "share"),
    ("readable", "answers readable", "share"),
    ("unsupported_sentences", "uncited sentences", "count"),
    ("first_token_p50", "first token p50", "seconds"),
    ("first_token_p95", "first token p95", "seconds"),
    ("total_p50", "total p50", "seconds"),
    ("total_p95", "total p95", "seconds"),
)


def format_report(report: dict) -> str:
    """The metrics as a table (one column per language, then overall), and the questions that went wrong."""
    meta = report["meta"]
    columns = [*report["by_lang"], "overall"]
    groups = [*report["by_lang"].values(), report["overall"]]
    label_width = max(len(label) for _, label, _ in _TABLE)
    lines = [
        f"Evaluation of {meta.get('file') or 'questions'}: model {meta.get('model') or 'unknown'}, {meta.get('date')}",
        f"corpus {meta.get('corpus')}, retrieval k={meta.get('retrieval_k')}, {meta.get('seconds')} s",
        "",
        "metric".ljust(label_width) + "".join(c.rjust(10) for c in columns),
    ]
    for key, label, kind in _TABLE:
        lines.append(label.ljust(label_width) + "".join(_cell(g.get(key), kind).rjust(10) for g in groups))
    misses = [line for row in report["rows"] if (line := _miss(row))]
    if misses:
        lines += ["", f"What went wrong ({len(misses)} questions):"]
        lines += misses[:_MISSES_SHOWN]
        if len(misses) > _MISSES_SHOWN:
            lines.append(f"... and {len(misses) - _MISSES_SHOWN} more: see the rows of the JSON report.")
    return "\n".join(lines) + "\n"


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "share":
        return f"{value * 100:.1f}%"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "seconds":
        return f"{value:.2f}s"
    return str(value)


def _miss(row: dict) -> str:
    problems = []
    if row["answerable"]:
        if row["retrieval_rank"] is None:
            problems.append(f"gold not in top {RETRIEVAL_K}")
        if row["refused"]:
            problems.append("refused")
        elif not row["cites_gold"]:
            problems.append("no gold citation")
        if row["outside_gold"]:
            problems.append(f"cites {', '.join(_distinct(row['outside_gold']))}")
        if row["key_hit"] is False and not row["refused"]:
            problems.append("missing " + "; ".join("/".join(k) for k in row["missing_keys"]))
    elif not row["refused"]:
        problems.append("answered an unanswerable question")
    if not row["refused"] and row.get("readable") is False:
        problems.append(f"answer not in {row['lang']}")
    if row["unsupported"]:
        problems.append(f"{len(row['unsupported'])} uncited sentence(s)")
    if not problems:
        return ""
    question = row["question"] if len(row["question"]) <= 70 else row["question"][:67] + "..."
    return f"- {row['id']} [{row['lang']}] {'; '.join(problems)}: {question}"


def write_report(report: dict, path: Path) -> None:
    """The report as UTF-8 JSON (non-ASCII kept readable)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise RagError(f"Cannot write the evaluation report to {path}: {exc.strerror or exc}.") from exc
