"""Question files -> `EvalItem` records: JSONL question sets (`../shared/eval/seeds_dev.jsonl` and the like) and
XQuAD / SQuAD 1.1 JSON, whose paragraphs become the corpus (written by corpora.py); and the fixed split of the
questions into halves by article.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RagError
from ..language import detect_language
from .corpora import default_corpus_dir, write_corpus
from .files import parse_json, read_text, short, whole_json
from .metrics import distinct

# An XQuAD file names its language ("xquad.ru.json"); a file that does not is detected from its questions.
_LANG_IN_NAME = re.compile(r"(?:^|[._-])([a-z]{2})$")


@dataclass
class EvalItem:
    """One question: `gold` lists the corpus files that hold its answer (empty: the assistant must refuse);
    `keys` lists alternatives, and every list needs one alternative in the answer text."""

    id: str
    lang: str
    question: str
    gold: list[str]
    keys: list[list[str]]


def load_items(
    path: Path, *, corpus_dir: Path | None = None, paragraphs_from: Path | None = None
) -> tuple[list[EvalItem], Path | None]:
    """The questions of an evaluation file and the corpus they are asked about.

    JSONL: the corpus is None (use the configured one). XQuAD / SQuAD JSON: the paragraphs are written to
    `corpus_dir` (default: `default_corpus_dir()` of the paragraph file) and that folder is returned.
    """
    path = Path(path)
    text = read_text(path)
    data = whole_json(text)
    if isinstance(data, dict) and "data" in data:
        paragraph_file = Path(paragraphs_from) if paragraphs_from is not None else path
        folder = Path(corpus_dir) if corpus_dir is not None else default_corpus_dir(paragraph_file)
        return prepare_xquad(path, folder, paragraphs_from), folder
    if path.suffix.lower() == ".json":
        parse_json(path, text)  # a broken file: raises with the line and column of the error
        raise RagError(f"{path}: expected XQuAD / SQuAD JSON, an object whose field 'data' lists the articles.")
    if paragraphs_from is not None:
        raise RagError(f"{path} is a JSONL question file; paragraphs from another file apply to XQuAD JSON only.")
    return _parse_jsonl(path, text), None


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
        files = write_corpus(paragraphs, Path(corpus_dir))
        return [_xquad_item(q, lang, file, []) for paragraph, file in zip(paragraphs, files) for q in paragraph.qas]
    source = Path(paragraphs_from)
    corpus = _read_squad(source)
    files = write_corpus(corpus, Path(corpus_dir))
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
class Paragraph:
    """One SQuAD paragraph with its questions, as read; corpora.py names and writes it."""

    title: str
    index: int  # within its article
    context: str
    qas: list[_Question]


def _xquad_item(q: _Question, lang: str, file: str, more_answers: list[str]) -> EvalItem:
    if q.impossible:
        return EvalItem(id=q.id, lang=lang, question=q.question, gold=[], keys=[])
    return EvalItem(id=q.id, lang=lang, question=q.question, gold=[file], keys=[distinct(q.answers + more_answers)])


def article_half(item: EvalItem) -> str:
    """ "fit" or "report": a fixed split by article, so that settings fitted on one half are reported on questions
    about articles they never saw. Unanswerable questions split by their id (they have no article here)."""
    return half_of(item.gold[0].removesuffix(".txt") if item.gold else item.id.rsplit("-", 1)[0])


def half_of(article_id: str) -> str:
    """The half ("fit" or "report") of an article, by its id: the rule behind article_half, for data that is
    not a question (the articles' own sentences, calibration text)."""
    return "fit" if hashlib.sha256(article_id.encode("utf-8")).digest()[0] % 2 == 0 else "report"


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
        raise RagError(f"{where}: expected a JSON object with q, lang, gold and keys, got {short(row)}.")
    question = row.get("q")
    if not isinstance(question, str) or not question.strip():
        raise RagError(f"{where}: field 'q' must be the question text, got {short(question)}.")
    lang = row.get("lang", detect_language(question))
    if not isinstance(lang, str) or not lang.strip():
        raise RagError(f"{where}: field 'lang' must be a language code such as \"az\", got {short(lang)}.")
    if "gold" not in row:
        raise RagError(f"{where}: field 'gold' is missing; list the files holding the answer, or [] for none.")
    gold = row["gold"]
    if not isinstance(gold, list) or not all(isinstance(g, str) and g.strip() for g in gold):
        raise RagError(f"{where}: field 'gold' must be a list of file names, got {short(gold)}.")
    keys = row.get("keys", [])
    if not isinstance(keys, list) or not all(_is_alternatives(k) for k in keys):
        raise RagError(
            f'{where}: field \'keys\' must be a list of lists of alternatives, e.g. [["Khalafov", "Халафов"]], '
            f"got {short(keys)}."
        )
    item_id = row.get("id", f"{path.stem}-{number}")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or not str(item_id).strip():
        raise RagError(f"{where}: field 'id' must be a string, got {short(item_id)}.")
    return EvalItem(id=str(item_id), lang=lang.strip(), question=question.strip(), gold=gold, keys=keys)


def _is_alternatives(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _read_squad(path: Path) -> list[Paragraph]:
    data = parse_json(path, read_text(path))
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
            raise RagError(f"{where}.title must be a string, got {short(title)}.")
        for p, paragraph in enumerate(article["paragraphs"]):
            paragraphs.append(_squad_paragraph(f"{where}.paragraphs[{p}]", title, p, paragraph))
    return paragraphs


def _squad_paragraph(where: str, title: str, index: int, paragraph: Any) -> Paragraph:
    if not isinstance(paragraph, dict):
        raise RagError(f"{where} must be an object with context and qas.")
    context = paragraph.get("context")
    if not isinstance(context, str) or not context.lstrip("\ufeff").strip():
        raise RagError(f"{where}.context must be the paragraph text, got {short(context)}.")
    qas = paragraph.get("qas")
    if not isinstance(qas, list):
        raise RagError(f"{where}.qas must be a list of questions.")
    return Paragraph(title, index, context, [_squad_question(f"{where}.qas[{i}]", qa) for i, qa in enumerate(qas)])


def _squad_question(where: str, qa: Any) -> _Question:
    if not isinstance(qa, dict):
        raise RagError(f"{where} must be an object with id, question and answers.")
    qid, question, answers = qa.get("id"), qa.get("question"), qa.get("answers")
    if not isinstance(qid, str) or not qid.strip():
        raise RagError(f"{where}.id must be a non-empty string, got {short(qid)}.")
    if not isinstance(question, str) or not question.strip():
        raise RagError(f"{where}.question must be the question text, got {short(question)}.")
    impossible = qa.get("is_impossible") is True
    valid = isinstance(answers, list) and all(
        isinstance(x, dict) and isinstance(x.get("text"), str) and x["text"].strip() for x in answers
    )
    if not valid or (not answers and not impossible):
        raise RagError(f'{where}.answers must be a non-empty list of {{"text": ...}} objects, got {short(answers)}.')
    return _Question(qid, question.strip(), distinct(x["text"].strip() for x in answers), impossible)


def _file_language(path: Path, paragraphs: list[Paragraph]) -> str:
    named = _LANG_IN_NAME.search(path.stem.lower())
    if named:
        return named.group(1)
    return detect_language(" ".join(q.question for p in paragraphs for q in p.qas[:3])[:2000])
