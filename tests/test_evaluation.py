"""rag.evaluation: every metric on hand-computed cases with a fake assistant, and the loaders on the real
evaluation data in ../shared/eval/ plus small hand-made files."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import rag
from rag.errors import RagError
from rag.evaluation import (
    CurvePoint,
    EvalItem,
    answer_sentences,
    article_half,
    choose_operating_point,
    coverage,
    decisions,
    default_corpus_dir,
    format_report,
    in_gold,
    is_readable,
    load_items,
    missing_keys,
    precision,
    prepare_xquad,
    readable_share,
    retrieval_rank,
    risk_coverage,
    run_eval,
    unanswerable_refused,
    unsupported_sentences,
    write_report,
)
from rag.types import Answer, Citation, Hit

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SEEDS_DEV = EVAL / "seeds_dev.jsonl"
NTREX_QA = EVAL / "ntrex_qa_dev.jsonl"
XQUAD_EN = EVAL / "xquad.en.json"
XQUAD_RU = EVAL / "xquad.ru.json"
needs_eval_data = pytest.mark.skipif(not XQUAD_RU.is_file(), reason="../shared/eval/ is not available")


# -- a fake assistant -----------------------------------------------------------------------------------------
def hit(source: str) -> Hit:
    return Hit(source=source, title=source, date=None, lang="en", text="passage", start=0, end=7, score=1.0)


def cite(n: int, source: str) -> Citation:
    return Citation(
        n=n, source=source, title=source, lang="en", date=None, text="passage", start=0, end=7,
        quote="passage", quote_start=0, quote_end=7, score=1.0,
    )  # fmt: skip


def answer(text: str, sources: tuple[str, ...] | list[str] = (), *, refused: bool = False, **timings: float) -> Answer:
    citations = [cite(n, s) for n, s in enumerate(sources, 1)]
    return Answer(question="", text=text, lang="en", refused=refused, citations=citations, model="fake-llm",
                  timings=timings)  # fmt: skip


REFUSAL = "The documents do not contain the answer."


class FakeAssistant:
    """search() and answer() return what the test fixed for each question."""

    def __init__(self, cases: dict[str, tuple[list[str], Answer]]):
        self.cases = cases
        self.config = rag.Config()
        self.models: list[str | None] = []

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return [hit(s) for s in self.cases[query][0]][:k]

    def answer(self, question: str, history=None, model: str | None = None) -> Answer:
        self.models.append(model)
        return self.cases[question][1]


def item(id: str, lang: str, gold: list[str], keys: list[list[str]]) -> EvalItem:
    return EvalItem(id=id, lang=lang, question=f"question {id}?", gold=gold, keys=keys)


ITEMS = [
    item("q1", "en", ["a.txt"], [["support"]]),
    item("q2", "en", ["b.txt"], [["14"], ["September", "сентябр"]]),
    item("q3", "en", [], []),
    item("q4", "ru", ["c.txt"], [["Халафов", "Khalafov"]]),
    item("q5", "ru", ["a.txt", "b.txt"], [["Kazakbaev"]]),
    item("q6", "ru", [], []),
]
CASES = {
    # rank 1, cites its gold source, key found regardless of case
    "question q1?": (["a.txt", "b.txt"], answer("Uzbekistan SUPPORTS it [1].", ["a.txt"], first_token=0.1, total=1.0)),
    # gold is the third distinct document; one citation outside gold; one sentence without a marker
    "question q2?": (
        ["a.txt", "a.txt", "c.txt", "b.txt"],
        answer(
            "Talks were held on 14 September [1][2]. They were friendly.",
            ["c.txt", "b.txt"],
            first_token=0.3,
            total=2.0,
        ),
    ),  # fmt: skip
    # unanswerable and refused: a true positive; the refusal sentence needs no marker
    "question q3?": (["a.txt"], answer(REFUSAL, refused=True, retrieval=0.05, total=0.5)),
    # retrieval misses, the answer still cites gold; Cyrillic key in another case
    "question q4?": (["b.txt"], answer("Делегацию возглавил ХАЛАФОВ [1].", ["c.txt"], first_token=0.2, total=3.0)),
    # answerable but refused: a key miss and a false-positive refusal
    "question q5?": (["b.txt", "a.txt"], answer(REFUSAL, refused=True, total=0.4)),
    # unanswerable but answered: a missed refusal; its citation is not counted as outside gold
    "question q6?": (["a.txt"], answer("Население составляет 10 млн [1].", ["a.txt"], first_token=0.4, total=4.0)),
}


@pytest.fixture
def report() -> dict:
    return run_eval(FakeAssistant(CASES), ITEMS, file="dev.jsonl")


def test_overall_metrics_match_hand_computed_values(report):
    overall = report["overall"]
    assert overall["questions"] == 6 and overall["answerable"] == 4 and overall["unanswerable"] == 2
    assert overall["hit_at_1"] == 0.5  # q1, q5 of q1 q2 q4 q5
    assert overall["hit_at_5"] == 0.75  # q4 misses
    assert overall["mrr"] == round((1 + 1 / 3 + 0 + 1) / 4, 4)
    assert overall["cites_gold"] == 0.75  # q5 refused
    assert overall["citations"] == 4 and overall["citations_outside_gold"] == 0.25  # c.txt in q2
    assert overall["single_source_outside_gold"] == 1
    assert overall["key_questions"] == 4 and overall["key_accuracy"] == 0.75
    assert overall["refused"] == 2
    assert overall["refusal_precision"] == 0.5 and overall["refusal_recall"] == 0.5
    assert overall["unsupported_sentences"] == 1
    # first token: [0.1, 0.2, 0.3, 0.4] (refusals have none); total: [0.4, 0.5, 1, 2, 3, 4]
    assert overall["first_token_p50"] == 0.25 and overall["first_token_p95"] == 0.385
    assert overall["total_p50"] == 1.5 and overall["total_p95"] == 3.75


def test_metrics_per_language(report):
    assert list(report["by_lang"]) == ["en", "ru"]
    en, ru = report["by_lang"]["en"], report["by_lang"]["ru"]
    assert (en["hit_at_1"], en["hit_at_5"], en["mrr"]) == (0.5, 1.0, round((1 + 1 / 3) / 2, 4))
    assert (en["refusal_precision"], en["refusal_recall"]) == (1.0, 1.0)
    assert (en["key_accuracy"], en["unsupported_sentences"], en["single_source_outside_gold"]) == (1.0, 1, 1)
    assert (ru["hit_at_1"], ru["hit_at_5"], ru["mrr"]) == (0.5, 0.5, 0.5)
    assert (ru["refusal_precision"], ru["refusal_recall"]) == (0.0, 0.0)
    assert (ru["key_accuracy"], ru["cites_gold"], ru["citations_outside_gold"]) == (0.5, 0.5, 0.0)


def test_rows_say_what_went_wrong(report):
    rows = {r["id"]: r for r in report["rows"]}
    assert rows["q2"]["retrieved"] == ["a.txt", "c.txt", "b.txt"] and rows["q2"]["retrieval_rank"] == 3
    assert rows["q2"]["outside_gold"] == ["c.txt"] and rows["q2"]["unsupported"] == ["They were friendly."]
    assert rows["q4"]["retrieval_rank"] is None and rows["q4"]["key_hit"] is True
    assert rows["q5"]["key_hit"] is False and rows["q5"]["cites_gold"] is False and rows["q5"]["refused"]
    assert rows["q6"]["retrieval_rank"] is None and rows["q6"]["key_hit"] is None and rows["q6"]["cites_gold"] is None
    assert rows["q1"]["timings"] == {"first_token": 0.1, "total": 1.0}
    assert set(rows["q1"]) >= {"id", "lang", "question", "gold", "answer", "refused", "cited", "key_hit"}


def test_metadata_names_file_model_and_configuration(report):
    meta = report["meta"]
    assert meta["file"] == "dev.jsonl" and meta["model"] == "fake-llm" and meta["questions"] == 6
    assert meta["date"][:2] == "20" and meta["retrieval_k"] == 5
    assert meta["config"]["retrieval"]["k"] == rag.Config().retrieval.k
    assert set(meta["config"]) == {"retrieval", "answer", "generation"}
    json.dumps(report)  # plain JSON values only


def test_null_shares_when_their_denominator_is_zero():
    items = [item("a", "en", ["a.txt"], [["x"]])]
    cases = {"question a?": (["a.txt"], answer("No marker here and no x.", total=1.0))}
    overall = run_eval(FakeAssistant(cases), items)["overall"]
    assert overall["refusal_precision"] is None and overall["refusal_recall"] is None  # nothing refused or unanswerable
    assert overall["citations_outside_gold"] is None  # no citations
    assert overall["first_token_p50"] is None and overall["total_p50"] == 1.0
    assert overall["cites_gold"] == 0.0 and overall["key_accuracy"] == 1.0 and overall["unsupported_sentences"] == 1


def test_empty_run_has_no_shares():
    overall = run_eval(FakeAssistant({}), [])["overall"]
    assert overall["questions"] == 0 and overall["hit_at_1"] is None and overall["key_accuracy"] is None


def test_limit_progress_and_model_are_passed_through():
    assistant = FakeAssistant(CASES)
    seen = []
    report = run_eval(assistant, ITEMS, model="fast", limit=2, progress=lambda done, total: seen.append((done, total)))
    assert [r["id"] for r in report["rows"]] == ["q1", "q2"] and report["meta"]["limit"] == 2
    assert seen == [(1, 2), (2, 2)] and assistant.models == ["fast", "fast"]
    with pytest.raises(RagError, match="limit"):
        run_eval(assistant, ITEMS, limit=0)


# -- judging pieces -------------------------------------------------------------------------------------------
def test_keys_need_every_list_with_any_alternative_case_insensitively():
    assert (
        missing_keys("He met Kazakbaev in New York [1].", [["Казакбаев", "kazakbaev"], ["Nyu-York", "new york"]]) == []
    )
    assert missing_keys("Встреча с ХАЛАФОВЫМ.", [["халафов"], ["14"]]) == [["14"]]
    assert missing_keys("HƏRBİ OBYEKTLƏR və QIRMIZI XAÇ", [["hərbi obyekt"], ["Qırmızı Xaç"]]) == []
    assert missing_keys("Встретились в среду [2].", [["2"]]) == [["2"]]  # a marker is not an answer


def test_sentences_keep_the_markers_that_follow_their_full_stop():
    text = "Talks were held on 14 September.[2] U.S. officials agreed. [1, 3] Dr. Smith left [4]."
    assert answer_sentences(text) == [
        "Talks were held on 14 September. [2]",
        "U.S. officials agreed. [1, 3]",
        "Dr. Smith left [4].",
    ]
    assert answer_sentences("Первое [1].\nВторое без ссылки. Третье [1-2].") == [
        "Первое [1].",
        "Второе без ссылки.",
        "Третье [1-2].",
    ]


def test_unsupported_sentences_need_a_marker_of_an_existing_citation():
    assert unsupported_sentences(answer("One [1]. Two [3]. Three [1-2].", ["a.txt", "b.txt"])) == ["Two [3]."]
    assert unsupported_sentences(answer("Nothing cited. At all.", refused=True)) == []


def test_retrieval_rank_counts_distinct_documents_and_gold_may_omit_folders():
    assert retrieval_rank(["a.txt", "a.txt", "news/b.txt"], ["b.txt"]) == 2
    assert retrieval_rank(["a.txt"], ["b.txt"]) is None
    assert in_gold("2023/b.txt", ["b.txt"]) and not in_gold("ab.txt", ["b.txt"])


# -- loading --------------------------------------------------------------------------------------------------
@needs_eval_data
def test_load_items_reads_the_dev_questions():
    items, corpus = load_items(SEEDS_DEV)
    assert corpus is None and len(items) == 12
    assert sum(1 for i in items if not i.gold) == 2
    assert {i.lang for i in items} == {"az", "en", "ru"}
    first = items[0]
    assert first.id == "dev-uz-1" and first.gold == ["004_6ae4727e16493b4e.txt"] and first.keys == [["support"]]
    assert all(isinstance(k, list) and k for i in items for k in i.keys)


def _answer_spans(path: Path) -> dict[str, list[tuple[int, str, bool]]]:
    """answer_start and text per question id, with whether the paragraph starts with a byte-order mark."""
    spans = {}
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            bom = paragraph["context"].startswith("\ufeff")
            for qa in paragraph["qas"]:
                spans[qa["id"]] = [(a["answer_start"], a["text"], bom) for a in qa["answers"]]
    return spans


@needs_eval_data
@pytest.mark.parametrize("path, lang", [(XQUAD_EN, "en"), (XQUAD_RU, "ru")])
def test_prepare_xquad_writes_every_paragraph_without_its_byte_order_mark(tmp_path, path, lang):
    items = prepare_xquad(path, tmp_path)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 240 and len(items) == 1190 and len({i.id for i in items}) == 1190
    assert {i.lang for i in items} == {lang}
    texts = {f.name: f.read_text(encoding="utf-8") for f in files}
    assert not any(t.startswith("\ufeff") for t in texts.values())
    spans = _answer_spans(path)
    for i in items:
        assert len(i.gold) == 1 and len(i.keys) == 1
        text = texts[i.gold[0]]
        # answer_start counts the mark the file no longer has
        assert all(text[start - bom : start - bom + len(answer)] == answer for start, answer, bom in spans[i.id])
        assert all(k in text for k in i.keys[0])
    if lang == "ru":
        assert any(bom for spans_of in spans.values() for _, _, bom in spans_of)


@needs_eval_data
def test_crossed_xquad_asks_russian_questions_over_english_paragraphs(tmp_path):
    items = prepare_xquad(XQUAD_RU, tmp_path / "corpus", paragraphs_from=XQUAD_EN)
    english = {i.id: i for i in prepare_xquad(XQUAD_EN, tmp_path / "en")}
    assert len(items) == 1190 and {i.lang for i in items} == {"ru"}
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == sorted(
        p.name for p in (tmp_path / "en").iterdir()
    )
    for i in items:
        assert i.gold == english[i.id].gold
        assert set(english[i.id].keys[0]) <= set(i.keys[0])  # the paragraph's own answers are alternatives too
    assert (tmp_path / "corpus" / "super-bowl-50_0.txt").read_text(encoding="utf-8").startswith("The Panthers")


def squad(articles: list[dict]) -> str:
    return json.dumps({"version": "1.1", "data": articles}, ensure_ascii=False)


def qa(id: str, question: str, *answers: str) -> dict:
    return {"id": id, "question": question, "answers": [{"answer_start": 0, "text": a} for a in answers]}


BAKU_0 = {
    "context": "\ufeffБаку — столица Азербайджана.",
    "qas": [qa("1", "Какой город столица Азербайджана?", "Баку")],
}
BAKU_1 = {
    "context": "Население Баку более двух миллионов человек.",
    "qas": [
        qa("2", "Сколько людей живёт в Баку?", "более двух миллионов", "двух миллионов"),
        {"id": "3", "question": "Кто мэр Баку?", "answers": [], "is_impossible": True},
    ],
}
CASPIAN = {"context": "Баку стоит на Каспии.", "qas": [qa("4", "Где стоит Баку?", "Каспии")]}
# Two articles with one title: their files must not collide.
SMALL = [{"title": "Баку", "paragraphs": [BAKU_0, BAKU_1]}, {"title": "Баку", "paragraphs": [CASPIAN]}]


def test_small_squad_file_becomes_a_corpus_and_items(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(squad(SMALL), encoding="utf-8")
    items, corpus = load_items(path, corpus_dir=tmp_path / "corpus")
    assert corpus == tmp_path / "corpus"
    assert sorted(p.name for p in corpus.iterdir()) == ["баку-2_0.txt", "баку_0.txt", "баку_1.txt"]
    assert (corpus / "баку_0.txt").read_bytes() == "Баку — столица Азербайджана.".encode()
    by_id = {i.id: i for i in items}
    assert by_id["1"] == EvalItem("1", "ru", "Какой город столица Азербайджана?", ["баку_0.txt"], [["Баку"]])
    assert by_id["2"].keys == [["более двух миллионов", "двух миллионов"]]
    assert by_id["3"].gold == [] and by_id["3"].keys == []  # SQuAD 2.0 unanswerable
    assert by_id["4"].gold == ["баку-2_0.txt"]
    before = (corpus / "баку_0.txt").stat().st_mtime_ns
    load_items(path, corpus_dir=corpus)
    assert (corpus / "баку_0.txt").stat().st_mtime_ns == before  # unchanged files are not rewritten


def test_default_corpus_dir_is_deterministic(tmp_path):
    path = tmp_path / "xquad.az.json"
    path.write_text(squad(SMALL), encoding="utf-8")
    first = default_corpus_dir(path, base=tmp_path / "cache")
    assert first == default_corpus_dir(path, base=tmp_path / "cache") and first.parent.parent == tmp_path / "cache"
    assert {i.lang for i in prepare_xquad(path, first)} == {"az"}  # the language in the file name wins
    path.write_text(squad(SMALL[:1]), encoding="utf-8")
    assert default_corpus_dir(path, base=tmp_path / "cache") != first


# -- malformed input ------------------------------------------------------------------------------------------
GOOD_LINE = '{"id": "a", "lang": "en", "q": "What?", "gold": ["a.txt"], "keys": [["x"]]}'


@pytest.mark.parametrize(
    "content, message",
    [
        (GOOD_LINE + "\n{not json\n", r"line 2: not valid JSON"),
        ('{"lang": "en", "gold": [], "keys": []}', r"line 1: field 'q'"),
        ('{"q": "What?", "lang": "en", "gold": "a.txt", "keys": []}', r"line 1: field 'gold'"),
        ('{"q": "What?", "lang": "en", "keys": []}', r"line 1: field 'gold' is missing"),
        ('{"q": "What?", "lang": "en", "gold": [], "keys": ["x", "y"]}', r"line 1: field 'keys'"),
        ('{"q": "What?", "lang": 3, "gold": [], "keys": []}', r"line 1: field 'lang'"),
        ("[1, 2]\n[3]", r"line 1: expected a JSON object"),
        (GOOD_LINE + "\n\n" + GOOD_LINE, r"line 3: id 'a' repeats line 1"),
        ("\n\n", r"holds no questions"),
    ],
)
def test_malformed_jsonl_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "questions.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RagError, match=message) as caught:
        load_items(path)
    assert str(path) in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RagError, match="not found: .*nowhere.jsonl"):
        load_items(tmp_path / "nowhere.jsonl")
    with pytest.raises(RagError, match="not found: .*nowhere.json"):
        prepare_xquad(tmp_path / "nowhere.json", tmp_path / "corpus")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["data"][0]["paragraphs"][1]["qas"][0].update(answers=[]), r"paragraphs\[1\].qas\[0\].answers"),
        (lambda d: d["data"][1]["paragraphs"][0].pop("context"), r"data\[1\].paragraphs\[0\].context"),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].pop("id"), r"data\[0\].paragraphs\[0\].qas\[0\].id"),
        (lambda d: d["data"][0].update(paragraphs=None), r"data\[0\]\.paragraphs"),
        (lambda d: d.update(data=[]), r"'data'"),
    ],
)  # fmt: skip
def test_malformed_squad_names_the_field(tmp_path, change, message):
    data = json.loads(squad(SMALL))
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RagError, match=message):
        load_items(path, corpus_dir=tmp_path / "corpus")


def test_broken_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "data": [\n    {"title": "x",,}\n]}', encoding="utf-8")
    with pytest.raises(RagError, match=r"bad\.json, line 3, column"):
        load_items(path)
    path.write_text('{"questions": []}', encoding="utf-8")
    with pytest.raises(RagError, match="expected XQuAD"):
        load_items(path)


def test_crossed_evaluation_needs_the_same_question_ids(tmp_path):
    questions, paragraphs = tmp_path / "q.ru.json", tmp_path / "p.en.json"
    questions.write_text(squad(SMALL), encoding="utf-8")
    paragraphs.write_text(squad(SMALL[:1]), encoding="utf-8")
    with pytest.raises(RagError, match="question '4' has no paragraph"):
        prepare_xquad(questions, tmp_path / "corpus", paragraphs_from=paragraphs)


# -- output ---------------------------------------------------------------------------------------------------
def test_format_report_is_a_table_per_language_and_overall(report):
    text = format_report(report)
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    assert header.split()[1:] == ["en", "ru", "overall"]
    assert "dev.jsonl" in text and "fake-llm" in text
    row = next(line for line in text.splitlines() if line.startswith("retrieval hit@5"))
    assert row.split()[-3:] == ["100.0%", "50.0%", "75.0%"]
    assert "q5 [ru] refused" in text and "answered an unanswerable question" in text and "c.txt" in text
    one = run_eval(FakeAssistant(CASES), ITEMS[:1])
    assert "n/a" in format_report(one) and "What went wrong" not in format_report(one)


def test_write_report_writes_readable_json(tmp_path, report):
    path = tmp_path / "out" / "report.json"
    write_report(report, path)
    text = path.read_text(encoding="utf-8")
    assert "Делегацию" in text and json.loads(text) == report


# -- answer decisions: precision, coverage, thresholds ----------------------------------------------------------
def decided(
    id: str,
    *,
    answerable: bool = True,
    refused: bool = False,
    confidence: float | None = None,
    correct: bool = False,
    readable: bool = True,
    total: float = 1.0,
) -> dict:
    """A report row with only what the answer metrics read."""
    return {
        "id": id, "lang": "en", "answerable": answerable, "refused": refused, "confidence": confidence,
        "correct": correct, "readable": readable and not refused, "timings": {"total": total},
    }  # fmt: skip


DECIDED = [
    decided("a1", confidence=0.9, correct=True, total=1.0),
    decided("a2", confidence=0.6, readable=False, total=2.0),  # answered wrong, in another language
    decided("a3", refused=True, confidence=0.3, total=3.0),  # refused although asked with min_confidence 0
    decided("a4", confidence=0.75, correct=True, total=4.0),
    decided("u1", answerable=False, confidence=0.7, total=5.0),  # an answer to an unanswerable question
    decided("u2", answerable=False, refused=True, total=6.0),  # no evidence: no confidence
]


def test_precision_counts_answers_given_and_answers_to_unanswerable_questions_as_wrong():
    assert precision(DECIDED) == 0.5  # a1, a4 correct of a1 a2 a4 u1
    assert precision(DECIDED, 0.65) == round(2 / 3, 4)  # a1 a4 u1
    assert precision(DECIDED, 0.8) == 1.0  # a1
    assert precision(DECIDED, 0.95) is None  # nothing given
    assert precision([decided("u", answerable=False, confidence=0.9)]) == 0.0


def test_coverage_and_unanswerable_refused_at_thresholds():
    assert coverage(DECIDED) == 0.75 and unanswerable_refused(DECIDED) == 0.5
    assert coverage(DECIDED, 0.65) == 0.5 and unanswerable_refused(DECIDED, 0.65) == 0.5
    assert coverage(DECIDED, 0.72) == 0.5 and unanswerable_refused(DECIDED, 0.72) == 1.0
    assert coverage(DECIDED, 0.3) == 0.75  # a refusal stays a refusal, whatever its confidence
    assert coverage([r for r in DECIDED if not r["answerable"]]) is None
    assert unanswerable_refused([r for r in DECIDED if r["answerable"]]) is None


def test_an_answer_without_confidence_is_given_only_at_threshold_zero():
    row = decided("x", confidence=None, correct=True)
    assert coverage([row], 0.0) == 1.0 and coverage([row], 0.01) == 0.0


def test_readable_share_is_over_answers_given():
    assert readable_share(DECIDED) == 0.75  # a2 of a1 a2 a4 u1 is not
    assert readable_share(DECIDED, 0.65) == 1.0
    assert readable_share([decided("r", refused=True)]) is None


def test_is_readable_needs_the_question_language_except_for_very_short_answers():
    az_quote = (
        "В документах сказано: «Nümayəndə heyətlərinə Azərbaycan tərəfindən xarici işlər nazirinin müavini "
        "Xələf Xələfov başçılıq edib» [1]."
    )
    assert not is_readable(az_quote, "ru") and is_readable(az_quote, "az")
    assert is_readable("Делегацию на переговорах возглавил Халафов [1].", "ru")
    assert not is_readable("The delegation was led by the deputy minister Khalafov [1].", "ru")
    assert is_readable("Rod Reed [1][2][3][4].", "az")  # markers are not words; under four words


def test_refusals_count_those_whose_closest_matches_hold_the_fact():
    rows = [
        {**decided("shown", refused=True, confidence=0.2), "closest_holds_fact": True},
        {**decided("hidden", confidence=0.3), "closest_holds_fact": False},  # refused at the threshold below
        {**decided("given", confidence=0.9), "closest_holds_fact": True},  # answered: not a refusal
        {**decided("u", answerable=False, refused=True), "closest_holds_fact": False},  # nothing to show
    ]
    assert decisions(rows, 0.5)["refusals_showing_fact"] == 0.5
    assert decisions(rows, 0.95)["refusals_showing_fact"] == round(2 / 3, 4)
    assert decisions(rows[2:], 0.5)["refusals_showing_fact"] is None  # no answerable question refused


def test_decisions_report_latency_of_every_question():
    d = decisions(DECIDED, 0.65)
    assert (d["answered"], d["correct"]) == (3, 2)
    assert d["latency_p50"] == 3.5 and d["latency_p90"] == 5.5  # refusals included: 1..6 s


def test_decisions_split_latency_into_search_and_the_translations_of_answers_quoting_another_language():
    def row(id: str, lang: str, quote_lang: str, retrieval: float, total: float, refused: bool = False) -> dict:
        timings = {"retrieval": retrieval, "total": total}
        return {**decided(id, refused=refused), "timings": timings, "citations": [{"lang": quote_lang}]}

    rows = [
        row("same", "en", "en", 0.5, 0.6),  # quoted in the asker's language: nothing to translate
        row("az", "en", "az", 0.4, 3.4),
        row("ru", "az", "ru", 0.6, 5.6),
        row("refused", "en", "az", 0.3, 0.3, refused=True),
    ]
    d = decisions(rows)
    assert d["retrieval_p50"] == 0.45
    assert (d["translation_p50"], d["translation_p90"]) == (4.0, 4.8)


def test_risk_coverage_sweeps_the_confidences_of_answers():
    assert risk_coverage(DECIDED) == [
        CurvePoint(0.0, 0.75, 0.5, 0.5),
        CurvePoint(0.6, 0.75, 0.5, 0.5),
        CurvePoint(0.7, 0.5, round(2 / 3, 4), 0.5),
        CurvePoint(0.75, 0.5, 1.0, 1.0),
        CurvePoint(0.9, 0.25, 1.0, 1.0),
    ]
    assert risk_coverage([]) == []
    assert risk_coverage([decided("r", refused=True, confidence=0.4)]) == [CurvePoint(0.0, 0.0, None, None)]


def test_choose_operating_point_takes_the_most_coverage_at_the_target_precision():
    curve = risk_coverage(DECIDED)
    assert choose_operating_point(curve, 0.9) == CurvePoint(0.75, 0.5, 1.0, 1.0)
    assert choose_operating_point(curve, 0.6).threshold == 0.75  # coverage ties with 0.7: the higher precision
    assert choose_operating_point(curve, 0.5).threshold == 0.0  # ties: the lower threshold
    missed = [CurvePoint(0.0, 1.0, 0.5, None), CurvePoint(0.5, 0.8, 0.7, None), CurvePoint(0.9, 0.1, 0.7, None)]
    assert choose_operating_point(missed, 0.9) == missed[1]  # best precision, then the most coverage
    assert choose_operating_point([CurvePoint(0.0, 0.0, None, None)], 0.9) is None
    assert choose_operating_point([], 0.9) is None


def test_article_half_is_fixed_and_keeps_each_article_on_one_side():
    def half(gold: list[str], id: str = "q-1") -> str:
        return article_half(EvalItem(id, "en", "q?", gold, []))

    # Fixed values: a change of the split would move fitted thresholds onto reported questions.
    assert half(["cnn.304521"]) == "fit" and half(["nytimes.184853"]) == "report"
    assert half(["cnn.304521.txt"]) == half(["cnn.304521"])
    assert half([], "nytimes.184853-1") == half([], "nytimes.184853-2") == "report"


@pytest.mark.skipif(not NTREX_QA.is_file(), reason="../shared/eval/ is not available")
def test_article_half_splits_ntrex_qa_by_article():
    items, _ = load_items(NTREX_QA)
    halves: dict[str, set[str]] = {}
    for i in items:
        halves.setdefault(i.gold[0] if i.gold else i.id.rsplit("-", 1)[0], set()).add(article_half(i))
    assert all(len(h) == 1 for h in halves.values())  # no article on both sides
    counts = Counter(article_half(i) for i in items)
    assert set(counts) == {"fit", "report"} and min(counts.values()) >= len(items) // 3


def test_rows_carry_confidence_correctness_readability_and_half():
    items = [item("q1", "en", ["a.txt"], [["support"]]), item("q6", "ru", [], [])]
    sure = dataclasses.replace(CASES["question q1?"][1], confidence=0.83)
    citation = dataclasses.replace(CASES["question q6?"][1].citations[0], translation="The population is 10 m.")
    wrong = dataclasses.replace(CASES["question q6?"][1], citations=[citation], confidence=0.4)
    cases = {"question q1?": (["a.txt"], sure), "question q6?": (["a.txt"], wrong)}
    report = run_eval(FakeAssistant(cases), items)
    q1, q6 = report["rows"]
    assert (q1["confidence"], q1["correct"], q1["readable"], q1["half"]) == (0.83, True, True, "fit")
    assert (q6["confidence"], q6["correct"], q6["readable"]) == (0.4, False, True)
    assert q6["citations"][0]["translation"] == "The population is 10 m." and q6["citations"][0]["source"] == "a.txt"
    overall = report["overall"]
    assert overall["precision"] == 0.5 and overall["coverage"] == 1.0 and overall["unanswerable_refused"] == 0.0
    assert overall["hit_at_1"] == 1.0 and overall["total_p95"] is not None  # the old keys stay


def test_run_rows_are_judged_correct_only_with_keys_and_a_gold_citation(report):
    rows = {r["id"]: r for r in report["rows"]}
    assert [rows[i]["correct"] for i in ("q1", "q2", "q3", "q4", "q5", "q6")] == [True, True, False, True, False, False]
    assert report["overall"]["precision"] == 0.75 and report["overall"]["coverage"] == 0.75
    assert report["by_lang"]["ru"]["precision"] == 0.5


# -- bench/answers.py --from-json -------------------------------------------------------------------------------
def test_bench_answers_renders_saved_rows_without_models(tmp_path):
    # article_half: a, b, h are "fit"; e, f and the unanswerable nytimes.184853 are "report"
    asked = [  # id, gold, cited, confidence
        ("a-1", ["a"], "a.txt", 0.9),
        ("b-1", ["b"], "a.txt", 0.8),
        ("h-1", ["h"], "h.txt", 0.5),
        ("e-1", ["e"], "a.txt", 0.85),
        ("f-1", ["f"], "f.txt", 0.7),
        ("nytimes.184853-1", [], "a.txt", 0.6),
    ]
    items = [item(id, "en", gold, [["support"]] if gold else []) for id, gold, _, _ in asked]
    cases = {
        f"question {id}?": ([cited], dataclasses.replace(answer("It SUPPORTS that [1].", [cited]), confidence=c))
        for id, _, cited, c in asked
    }
    path = tmp_path / "answers-ntrex-fake.json"
    write_report(run_eval(FakeAssistant(cases), items), path)
    results, png = tmp_path / "RESULTS.md", tmp_path / "curve.png"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "answers.py"), "--from-json", str(path), "--min-confidence", "0.75",
         "--results", str(results), "--png", str(png)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = results.read_text(encoding="utf-8").splitlines()
    assert "<!-- ANSWERS:START -->" in lines and lines[-1] == "<!-- ANSWERS:END -->"
    assert "| metric | ntrex fit | ntrex report | ntrex all |" in lines
    assert "| questions (answerable / not) | 3 / 0 | 2 / 1 | 5 / 1 |" in lines
    # at 0.75: fit gives a (right) and b (cites a.txt: wrong); report gives e (wrong)
    assert "| precision (correct / given) | 50% | 0% | 33% |" in lines
    assert "| coverage (answerable answered) | 67% | 50% | 60% |" in lines
    assert "| unanswerable refused | n/a | 100% | 100% |" in lines
    # picked on fit: 0.9 is the only threshold with precision >= 90%; the report half gives nothing at it
    assert (
        "- ntrex (fake): min_confidence 0.90 (configured 0.75). Fit half: precision 100%, coverage 33%, "
        "unanswerable refused n/a. Report half at it: precision n/a, coverage 0%, unanswerable refused 100%."
    ) in lines
    table = [line.split(" | ")[0] for line in lines if line.startswith("| ") and line.endswith(" |")]
    assert "| e-1" in table and "| f-1" in table and "| a-1" not in table  # the report half only
    assert any(line.startswith("| nytimes.184853-1 | en | generated | no | no | 0.60 |") for line in lines)


def test_bench_answers_judges_every_held_out_question_as_report_half(tmp_path):
    # the held-out set is never fitted on: whatever article_half says, no row is in a fit half or picks a threshold
    asked = [("a-1", ["a"], "a.txt", 0.9), ("e-1", ["e"], "a.txt", 0.85), ("f-1", ["f"], "f.txt", 0.7)]
    items = [item(id, "en", gold, [["support"]]) for id, gold, _, _ in asked]
    cases = {
        f"question {id}?": ([cited], dataclasses.replace(answer("It SUPPORTS that [1].", [cited]), confidence=c))
        for id, _, cited, c in asked
    }
    path = tmp_path / "answers-heldout-fake.json"
    write_report(run_eval(FakeAssistant(cases), items), path)
    results = tmp_path / "RESULTS.md"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "answers.py"), "--from-json", str(path), "--min-confidence", "0.75",
         "--results", str(results), "--png", str(tmp_path / "curve.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = results.read_text(encoding="utf-8").splitlines()
    assert "| metric | heldout report | heldout all |" in lines
    assert "| questions (answerable / not) | 3 / 0 | 3 / 0 |" in lines
    assert "| precision (correct / given) | 50% | 50% |" in lines  # a right, e cites a.txt: wrong; f below 0.75
    assert "- heldout (fake): never fitted on; every question counts as report half" in lines


def test_bench_answers_merges_a_set_asked_over_many_corpora_into_one_report(monkeypatch):
    # the newsrooms set asks each question over a corpus of its own: one report per corpus, merged
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import answers

    asked = [("a-1", ["a"], "a.txt", 0.9), ("e-1", ["e"], "a.txt", 0.85), ("f-1", ["f"], "f.txt", 0.7)]
    items = [item(id, "en", gold, [["support"]]) for id, gold, _, _ in asked]
    cases = {
        f"question {id}?": ([cited], dataclasses.replace(answer("It SUPPORTS that [1].", [cited]), confidence=c))
        for id, _, cited, c in asked
    }
    whole = run_eval(FakeAssistant(cases), items)
    parts = [run_eval(FakeAssistant(cases), items[:1]), run_eval(FakeAssistant(cases), items[1:])]
    merged = answers.merged(parts)
    assert [row["id"] for row in merged["rows"]] == ["a-1", "e-1", "f-1"]
    assert merged["overall"] == whole["overall"] and merged["by_lang"] == whole["by_lang"]
    assert merged["meta"]["questions"] == 3 and merged["meta"]["corpus"] == "2 corpora"
    assert answers.merged(parts[:1]) is parts[0]


# -- bench/translations.py -----------------------------------------------------------------------------------------
def test_bench_translations_counts_every_problem_and_names_turkish_taken_for_azerbaijani(monkeypatch):
    root = Path(__file__).resolve().parent.parent
    monkeypatch.syspath_prepend(str(root / "bench"))
    import translations

    article = json.loads(translations.NTREX_ARTICLES.read_text(encoding="utf-8").splitlines()[0])
    line = article["az"].splitlines()[1]

    def attempt(target: str, problem: str, reply: str, quote: str = "Bayramov görüşüb.") -> dict:
        return {"target_lang": target, "ok": not problem, "problem": problem, "translation": reply, "quote": quote}

    attempts = [
        attempt("az", "language", "Bu, jury'a açıkladığında, Tellis'ın hayatını çözmek için telefon kayıtlarını"),
        attempt("az", "repeated", "Bayramov birlikte birlikte birlikte görüşüb"),
        attempt("ru", "", "Байрамов встретился с министром."),
        # a whole line of an NTREX article: its line in the asker's language is the human translation
        attempt("ru", "", article["ru"].splitlines()[1], quote=line),
        attempt("en", "alignment", "Something else entirely, said nobody.", quote=line),
    ]
    lines = translations.render(attempts, "fake", "python bench/translations.py --from-json", None)
    assert "| az | 2 | 0 (0%) | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in lines
    assert "| all | 5 | 2 (40%) | 1 | 1 | 0 | 1 | 0 | 0 | 0 | 0 | 0 |" in lines
    assert any("az without a letter Turkish lacks (ə, x, q) 1" in line for line in lines)
    # against the human translations: the copy of the reference is faithful, the unrelated reply is not
    assert any("2 of 5 quotes are one whole line" in line for line in lines)
    assert "| ru | 1 | 1 | 100 | 0 | 0 | - |" in lines
    assert "| en | 0 | 0 | - | 1 | 0 |" in " ".join(lines)


# -- bench/conversations.py ----------------------------------------------------------------------------------------
def test_bench_conversations_compares_each_new_question_in_a_conversation_with_it_alone(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import conversations

    right, wrong = answer("It SUPPORTS that [1].", ["a.txt"]), answer("Something else [1].", ["b.txt"])

    class Conversing(FakeAssistant):
        """Answers q2 right alone and, taking it for a follow-up in a conversation, wrongly."""

        def answer(self, question: str, history=None, model: str | None = None) -> Answer:
            if history and question == "question q2?":
                return dataclasses.replace(wrong, standalone_question="question q2? (question q1?)")
            return dataclasses.replace(right, standalone_question=question)

    items = [item(id, "en", ["a.txt"], [["support"]]) for id in ("q1", "q2", "q3")]
    rows = conversations.new_questions(Conversing({}), items, "fake")
    assert [r["id"] for r in rows] == ["q2", "q3"]  # the first question has nothing before it
    assert [r["taken_for_follow_up"] for r in rows] == [True, False]
    assert [(r["alone"]["correct"], r["in_chat"]["correct"]) for r in rows] == [(True, False), (True, True)]
    lines = conversations.render(
        {
            "new_questions": {"fake": rows},
            "follow_ups": [],
            "command": "c",
            "date": "d",
            "minutes": 0.1,
            "model": "fake",
            "git": "g",
            "min_confidence": 0.4,
        }  # fmt: skip
    )
    assert "| fake | 2 | 1 | 1 | 2 / 2 | 2 / 1 |" in lines
