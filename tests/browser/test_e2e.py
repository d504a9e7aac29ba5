"""The app end to end: a real server (app.py with the small "test" chat model) driven by headless Chromium.

One server for the module, the tests in order: an answer with its sources, a follow-up, an upload that then
gets cited and its removal, a refusal, two tabs at once, and last the check that no request left 127.0.0.1.
Screenshots of each step go to tests/screenshots/. Needs /usr/bin/chromium (`make test` installs it) and the
test chat model (`python -m rag models test`).
"""

from __future__ import annotations

import time

import pytest
from app_harness import CHROMIUM, SCREENSHOTS, ask, clear, is_loopback_url, launch_chromium, running_app

from rag.prompts import REFUSAL, RELATED_LABEL

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install it with `apt-get install chromium` (`make test` does, as root)",
        allow_module_level=True,
    )

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make test`")

# An English question whose answer is an Azerbaijani sentence: the quote, its document, its surrounding text.
BLINKEN = "When did Blinken call Ilham Aliyev?"
BLINKEN_FILE = "001_44aa1b61c723b359.txt"
BLINKEN_TITLE = "Entoni Blinken İlham Əliyevə zəng edib"
BLINKEN_QUOTE = "Sentyabrın 26-da"  # the sentence that holds the date
NOT_IN_DOCUMENTS = "What did the Chinese foreign ministry say about the OIC summit?"
UPLOADED_NAME = "wind farm 'agreement'.txt"  # saved under a sanitised name: wind_farm_agreement.txt
UPLOADED_TEXT = (
    "Azerbaijan and Norway agree on a wind farm in the Caspian Sea\n\n"
    "Baku, 12 March 2024. Azerbaijan and Norway signed an agreement in Baku on building a joint offshore wind farm "
    "in the Caspian Sea. The wind farm in the Caspian Sea will have a capacity of 500 megawatts and should start "
    "producing electricity in 2027, the Ministry of Energy said.\n"
)
UPLOAD_QUESTION = "What capacity will the wind farm in the Caspian Sea have?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app")) as (url, corpus):
        yield url, corpus


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def context(requests_seen):
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.on("request", lambda request: requests_seen.append(request.url))
        yield context
        browser.close()


@pytest.fixture(scope="module")
def page(server, context):
    url, _ = server
    page = context.new_page()
    page.goto(url)
    page.locator("#question textarea").wait_for(timeout=60_000)
    return page


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_answer_shows_sources_with_the_quote_highlighted(page):
    answer = ask(page, BLINKEN)
    shot(page, "1-answer")
    assert not page.locator("#chat .rag-refused").count(), answer.inner_text()
    source = answer.locator("li.rag-source", has_text=BLINKEN_FILE).first
    assert BLINKEN_TITLE in source.inner_text()
    quote = source.locator("blockquote mark").first
    assert BLINKEN_QUOTE in quote.inner_text()
    # [n] markers link to the numbered sources of this answer
    link = answer.locator("a.rag-cite").first
    target = link.get_attribute("href")
    assert target and target.startswith("#") and answer.locator(target).count() == 1
    # the surrounding text opens on request, with the quote highlighted in it
    details = source.locator("details.rag-context")
    details.locator("summary").click()
    assert details.get_attribute("open") is not None
    assert BLINKEN_QUOTE in details.locator("mark").first.inner_text()
    link.click()
    shot(page, "2-sources-open")
    # the Markdown to copy holds the answer and its sources
    page.get_by_text("Copy the last answer with its sources").click()
    markdown = page.locator("#answer-markdown textarea").input_value()
    assert BLINKEN_FILE in markdown and "[1]" in markdown


def test_follow_up_uses_the_conversation(page):
    answer = ask(page, "And when did he call him?")
    shot(page, "3-follow-up")
    # the question was rewritten with the conversation before searching; the rewrite can be unfolded
    standalone = answer.locator("details.rag-standalone")
    assert standalone.count() == 1, answer.inner_text()
    standalone.locator("summary").click()
    assert standalone.locator("div").inner_text().strip()


def test_uploaded_document_is_indexed_and_cited(page, server, tmp_path):
    _, corpus = server
    upload = tmp_path / UPLOADED_NAME
    upload.write_text(UPLOADED_TEXT, encoding="utf-8")
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    status = page.locator("#upload-status")
    status.filter(has_text="Index updated").wait_for(timeout=120_000)
    assert "wind_farm_agreement.txt" in status.inner_text()
    assert (corpus / "wind_farm_agreement.txt").read_text(encoding="utf-8") == UPLOADED_TEXT
    page.locator("#documents", has_text="wind_farm_agreement.txt").wait_for(timeout=10_000)
    shot(page, "4-uploaded")
    clear(page)
    answer = ask(page, UPLOAD_QUESTION)
    shot(page, "5-upload-answer")
    assert answer.locator("li.rag-source", has_text="wind_farm_agreement.txt").count() >= 1, answer.inner_text()
    assert "500" in answer.inner_text()


def test_removed_document_leaves_the_corpus_and_the_index(page, server):
    _, corpus = server
    page.get_by_label("Remove a document").click()
    page.get_by_role("option", name="wind_farm_agreement.txt").click()
    page.get_by_role("button", name="Remove").click()
    status = page.locator("#upload-status")
    status.filter(has_text="removed wind_farm_agreement.txt").wait_for(timeout=60_000)
    assert not (corpus / "wind_farm_agreement.txt").exists()
    assert "wind_farm_agreement.txt" not in page.locator("#documents").inner_text()
    assert (corpus / BLINKEN_FILE).exists()


def test_question_the_documents_do_not_answer_is_refused(page):
    clear(page)
    answer = ask(page, NOT_IN_DOCUMENTS)
    shot(page, "6-refusal")
    text = answer.inner_text()
    assert "rag-refused" in (answer.get_attribute("class") or ""), text
    assert REFUSAL["en"] in text
    assert RELATED_LABEL["en"] in text
    assert answer.locator("li.rag-source").count() == 0  # closest matches are never shown as sources
    assert answer.locator("ul.rag-related li mark").count() >= 1  # each closest sentence marked in its passage


def test_two_tabs_asking_at_once_both_get_answers(server, context):
    url, _ = server
    questions = ["Blinken İlham Əliyevə hansı tarixdə zəng edib?", "С каким министром Кыргызстана встретился Байрамов?"]
    pages = []
    for _ in questions:
        tab = context.new_page()
        tab.goto(url)
        tab.locator("#question textarea").wait_for(timeout=60_000)
        pages.append(tab)
    started = time.monotonic()
    for tab, question in zip(pages, questions, strict=True):
        tab.locator("#question textarea").fill(question)
        tab.locator("#question textarea").press("Enter")
    for tab in pages:
        tab.wait_for_function(
            "() => document.querySelectorAll('#chat .rag-answer:not(.rag-draft)').length >= 1", timeout=180_000
        )
    elapsed = time.monotonic() - started
    for n, tab in enumerate(pages, 1):
        shot(tab, f"7-tab{n}")
        assert tab.locator("#chat .rag-error").count() == 0, tab.locator("#chat").inner_text()
    print(f"two answers at once: {elapsed:.1f} s")


def test_no_request_left_the_machine(requests_seen):
    assert requests_seen, "the browser recorded no requests at all"
    outside = sorted({url for url in requests_seen if not is_loopback_url(url)})
    assert not outside, f"requests to other hosts: {outside}"
