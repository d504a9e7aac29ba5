"""Load: 8 threads calling `rag.answer` at once, then 4 HTTP clients of the running app at once.

Real models: the e5 embedding model and the small "test" chat model (SmolLM2-135M), over the seeds. The chat
model serves one answer at a time, so the callers queue for it; what is proved is that nothing breaks under
that queue: no call fails, every answer is well-formed (citations point at real passages with exact offsets,
a refusal says the refusal phrase of the question's language), and at temperature 0 every caller gets exactly
the answer a single caller gets. bench/soak.py runs the same for minutes and measures memory.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from relfakes import ROOT, SEEDS, make_config

import rag
from rag.prompts import REFUSAL
from tests.browser.app_harness import free_port, stop_process, wait_for_http

# (question, its language, whether the seeds answer it): each is asked by several callers at once.
QUESTIONS = [
    ("When did Blinken call Ilham Aliyev?", "en", True),
    ("Blinken İlham Əliyevə hansı tarixdə zəng edib?", "az", True),
    ("Когда Блинкен позвонил Ильхаму Алиеву?", "ru", True),
    ("What is the price of bananas in Peru?", "en", False),
    ("Marsda nə qədər su var?", "az", False),
    ("Какая погода будет завтра в Токио?", "ru", False),
]
THREADS = 8
QUESTIONS_PER_THREAD = 2
CLIENTS = 4
QUESTIONS_PER_CLIENT = 3
SETTINGS = {"generation": {"model": "test", "max_tokens": 24, "threads": 1}}


@pytest.fixture(scope="module")
def seeds_setup(tmp_path_factory):
    """The seeds indexed with the real model, the config, and each question's answer from a single caller."""
    work = tmp_path_factory.mktemp("load")
    corpus = work / "corpus"
    shutil.copytree(SEEDS, corpus)
    cfg = make_config(corpus, work / "index", **SETTINGS)
    rag.build_index(cfg)
    reference = {question: rag.answer(question, config=cfg) for question, _, _ in QUESTIONS}
    yield cfg, work, reference
    rag._assistants.pop(cfg, None)  # the shared Assistant holds both models: free them for the rest of the run


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def assert_well_formed(answer: rag.Answer, question: str, lang: str, texts: dict[str, str]) -> None:
    """The Answer's fields agree with each other and every offset points at the text it claims."""
    assert answer.question == question and answer.lang == lang and answer.model == "smollm2-135m"
    assert answer.mode in ("generated", "extractive", "refused") and answer.refused == (answer.mode == "refused")
    assert "total" in answer.timings
    for hit in answer.related:
        assert texts[hit.source][hit.start : hit.end] == hit.text
    if answer.refused:
        assert answer.text == REFUSAL[lang] and answer.citations == []
        return
    assert answer.citations, "an answer that is not a refusal cites its sources"
    for c in answer.citations:
        document = texts[c.source]
        assert document[c.start : c.end] == c.text
        assert c.start <= c.quote_start < c.quote_end <= c.end
        assert document[c.quote_start : c.quote_end] == c.quote
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} == {c.n for c in answer.citations}
    for sentence in _sentences(answer.text):
        assert re.search(r"\[\d+\]", sentence), f"uncited sentence {sentence!r} in {answer.text!r}"


def _comparable(answer: rag.Answer) -> dict:
    """Everything but the timings, which differ from call to call."""
    return {key: value for key, value in answer.to_dict().items() if key != "timings"}


def _run_all(workers: int, work) -> list[BaseException]:
    """Start `workers` threads together (a barrier), each running work(i); returns what they raised."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            work(i)
        except BaseException as exc:  # noqa: BLE001 - every failure of a worker is reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"caller-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a caller never returned"
    return errors


def test_first_calls_from_many_threads_share_one_assistant(monkeypatch, tmp_path):
    """Eight threads asking for the Assistant of one config at the same moment all get the same one, so the
    models are loaded once. (Before the fix `get_assistant` had no lock: with a constructor that takes a moment,
    each thread made its own Assistant and would have loaded its own models.)"""
    created = []

    class SlowAssistant(rag.Assistant):
        def __init__(self, *args, **kwargs):
            time.sleep(0.05)  # widens the window between "not cached yet" and "cached"
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(rag, "Assistant", SlowAssistant)
    monkeypatch.setattr(rag, "_assistants", {})
    cfg = make_config(tmp_path / "corpus", tmp_path / "index")
    got = []
    assert _run_all(THREADS, lambda i: got.append(rag.get_assistant(cfg))) == []
    assert len(created) == 1 and len(got) == THREADS and all(a is created[0] for a in got)


@pytest.mark.model
@pytest.mark.llm
def test_eight_threads_calling_rag_answer(seeds_setup):
    """8 threads start together and each asks 2 questions (each of the 6 az/ru/en questions, answerable or not,
    is asked by 2-3 threads at once) through `rag.answer`, sharing one Assistant: no call fails, every Answer
    is well-formed, and each equals the answer a single caller got, field for field (timings aside)."""
    cfg, _, reference = seeds_setup
    texts = {doc.source: doc.text for doc in rag.get_assistant(cfg).index().documents}
    for question, lang, answerable in QUESTIONS:
        assert_well_formed(reference[question], question, lang, texts)
        # so that both kinds of answer, and both branches of the checks, are exercised under load
        assert reference[question].refused is not answerable, f"{question!r}: {reference[question].text!r}"

    results: list[tuple[str, rag.Answer]] = []

    def caller(i: int) -> None:
        for j in range(QUESTIONS_PER_THREAD):
            question = QUESTIONS[(i + j) % len(QUESTIONS)][0]
            results.append((question, rag.answer(question, config=cfg)))

    errors = _run_all(THREADS, caller)
    assert errors == [], f"{len(errors)} calls failed: {errors[:3]!r}"
    assert len(results) == THREADS * QUESTIONS_PER_THREAD
    assert len({q for q, _ in results}) == len(QUESTIONS)
    langs = {question: lang for question, lang, _ in QUESTIONS}
    for question, answer in results:
        assert_well_formed(answer, question, langs[question], texts)
        assert _comparable(answer) == _comparable(reference[question]), f"answer to {question!r} differs"


# -- the app over HTTP -----------------------------------------------------------------------------------------


def _write_app_config(cfg: rag.Config, path: Path) -> Path:
    path.write_text(
        f'[corpus]\npath = "{cfg.corpus.path}"\n\n[index]\npath = "{cfg.index.path}"\n\n'
        "[generation]\n" + "".join(f"{key} = {value!r}\n" for key, value in SETTINGS["generation"].items()),
        encoding="utf-8",
    )
    return path


def _assistant_html(conversation: list[dict], question: str) -> str:
    assert [m["role"] for m in conversation] == ["user", "assistant"], conversation
    assert conversation[0]["content"][0]["text"] == question
    return conversation[1]["content"][0]["text"]


def assert_http_answer(result: tuple, question: str, lang: str, expected: rag.Answer) -> None:
    """What the app sent back for one question: the chat with the rendered answer, and the answer as Markdown.

    The Markdown must be exactly the single caller's Answer.to_markdown() (so the same citations, whose offsets
    the in-process test checks), and the HTML must be a final answer, not a draft or an error, whose highlighted
    quotes are those citations' quotes."""
    conversation, markdown, question_box = result
    page = _assistant_html(conversation, question)
    assert question_box == ""
    assert markdown == expected.to_markdown()
    assert 'class="rag-answer' in page
    assert not any(f"rag-{kind}" in page for kind in ("draft", "error", "stopped"))
    if expected.refused:
        assert "rag-refused" in page and html.escape(REFUSAL[lang]) in page
        assert "rag-source" not in page
        return
    sources = page.split('<li class="rag-source" ')[1:]
    assert len(sources) == len(expected.citations)
    for c, source in zip(expected.citations, sources, strict=True):
        anchor = re.match(rf'id="(src-[0-9a-f]+)-{c.n}">', source)
        assert anchor, f"source [{c.n}] missing from the page"
        assert f'href="#{anchor.group(1)}-{c.n}"' in page, f"marker [{c.n}] is not linked to its source"
        assert f"<code>{html.escape(c.source)}</code>" in source
        passage = re.search(r'<blockquote class="rag-passage">(.*?)</blockquote>', source, re.S).group(1)
        highlighted = re.search(r"<mark>(.*?)</mark>", passage, re.S).group(1)
        assert html.unescape(highlighted.replace("<br>", "\n")) == c.quote
        assert html.unescape(re.sub(r"</?mark>", "", passage).replace("<br>", "\n")) == c.text


@pytest.mark.model
@pytest.mark.llm
def test_four_http_clients_of_the_app(seeds_setup):
    """app.py runs in its own process on the same index; 4 gradio_client clients start together and each asks
    3 questions through the chat endpoint (/respond), a fresh session per question so none is taken as a
    follow-up (each question is asked by 2 clients at once): no request fails, every reply is a final,
    well-formed answer, identical to what one in-process caller gets."""
    from gradio_client import Client

    cfg, work, reference = seeds_setup
    config_file = _write_app_config(cfg, work / "app.toml")
    port = free_port()
    log_path = work / "app.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(work / "gradio-tmp"), PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "app.py"), "--config", str(config_file), "--port", str(port)]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url, process, log_path, timeout_s=180)
        k = cfg.answer.passages
        results: list[tuple[str, tuple]] = []

        def client(i: int) -> None:
            api = Client(url, verbose=False)
            for j in range(QUESTIONS_PER_CLIENT):
                question = QUESTIONS[(i + 2 * j) % len(QUESTIONS)][0]
                api.reset_session()  # a new conversation: the app would treat a second question as a follow-up
                results.append((question, api.predict(question, [], "", k, "", "", "", "", api_name="/respond")))

        errors = _run_all(CLIENTS, client)
        assert errors == [], f"{len(errors)} requests failed: {errors[:3]!r}\n{log_path.read_text()[-3000:]}"
        assert process.poll() is None, "the app exited under load"
    finally:
        stop_process(process)
    assert len(results) == CLIENTS * QUESTIONS_PER_CLIENT
    assert len({q for q, _ in results}) == len(QUESTIONS)
    langs = {question: lang for question, lang, _ in QUESTIONS}
    for question, result in results:
        assert_http_answer(result, question, langs[question], reference[question])
