"""app.py without a browser or models: rendering of answers, the upload's limits, launch settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

import rag

# app.py is a script at the repository root, not part of the installed package: import it from there also when
# pytest runs from elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import app  # noqa: E402
from rag.presentation import highlight_ranges
from rag.prompts import REFUSAL, RELATED_LABEL
from rag.types import Answer, Citation, Evidence, Hit, StreamEvent

DOC_TEXT = (
    "Intro sentence about the meeting. " * 30
    + "The minister said that Uzbekistan <always> supports territorial integrity. "
    + "Closing remarks & thanks. " * 30
)
QUOTE = "The minister said that Uzbekistan <always> supports territorial integrity."


def make_document(source: str = "004_uz.txt", text: str = DOC_TEXT) -> rag.Document:
    return rag.Document(
        doc_id="d1", source=source, title="Uzbek <talks>", date="2023-06", lang="az", text=text, content_hash="h"
    )


def make_citation(n: int = 1, source: str = "004_uz.txt") -> Citation:
    quote_start = DOC_TEXT.index(QUOTE)
    start, end = quote_start - 40, quote_start + len(QUOTE) + 30
    return Citation(
        n=n,
        source=source,
        title="Uzbek <talks>",
        lang="az",
        date="2023-06",
        text=DOC_TEXT[start:end],
        start=start,
        end=end,
        quote=QUOTE,
        quote_start=quote_start,
        quote_end=quote_start + len(QUOTE),
        score=0.9,
    )


def make_answer(**fields) -> Answer:
    values = dict(
        question="What did Uzbekistan say?",
        text="Uzbekistan supports territorial integrity [1]. It said more [2]. Unknown [7].",
        lang="en",
        refused=False,
        citations=[make_citation(1), make_citation(2)],
        standalone_question="What did Uzbekistan say?",
        model="test",
        timings={"total": 1.25},
    )
    values.update(fields)
    return Answer(**values)


def make_hit(source: str, title: str) -> Hit:
    text = "Some <passage> text."
    return Hit(source=source, title=title, date=None, lang="en", text=text, start=0, end=len(text), score=0.5)


# -- rendering ----------------------------------------------------------------------------------------------------


def test_markers_link_to_numbered_sources():
    out = app.render_answer_html(make_answer(), [make_document()], prefix="a1")
    assert '<a class="rag-cite" href="#a1-1">[1]</a>' in out
    assert '<a class="rag-cite" href="#a1-2">[2]</a>' in out
    assert 'id="a1-1"' in out and 'id="a1-2"' in out
    assert "Unknown [7]." in out and "#a1-7" not in out  # a number without a source stays text


def test_marker_lists_are_linked_one_by_one():
    assert app.link_markers("Both [1, 2].", {1, 2}, "p") == (
        'Both <a class="rag-cite" href="#p-1">[1]</a><a class="rag-cite" href="#p-2">[2]</a>.'
    )


def test_quote_is_highlighted_and_text_escaped():
    out = app.render_answer_html(make_answer(), [make_document()], prefix="a1")
    assert "<mark>The minister said that Uzbekistan &lt;always&gt; supports territorial integrity.</mark>" in out
    assert "<always>" not in out and "<talks>" not in out
    assert "Uzbek &lt;talks&gt;" in out and "<code>004_uz.txt</code>" in out and "2023-06" in out


def test_surrounding_text_is_a_window_of_the_document():
    out = app.render_answer_html(make_answer(citations=[make_citation(1)]), [make_document()], prefix="a1")
    assert '<details class="rag-context">' in out
    context = out.split('<details class="rag-context">')[1].split("</details>")[0]
    assert context.count("<mark>") == 1
    visible = context.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    assert 700 < len(visible) < 1100  # about 400 characters each side of the passage
    assert "…" in context  # cut at both ends: the document is longer


def test_no_surrounding_text_when_the_document_is_gone_or_changed():
    answer = make_answer(citations=[make_citation(1)])
    assert "rag-context" not in app.render_answer_html(answer, [], prefix="a1")
    changed = make_document(text="Entirely different text now. " * 50)
    assert "rag-context" not in app.render_answer_html(answer, [changed], prefix="a1")


def test_html_has_no_blank_lines():
    # a blank line would end the chatbot's HTML block and let Markdown rewrite the rest
    doc = make_document(text=DOC_TEXT.replace("Closing", "\n\nClosing"))
    answer = make_answer(text="Line one [1].\n\nLine two [2].")
    for out in (app.render_answer_html(answer, [doc]), app.render_refusal_html(make_answer(refused=True))):
        assert "\n" not in out


def test_refusal_looks_different_and_labels_related_as_closest_matches():
    related = [make_hit("001_a.txt", "Blinken <call>"), make_hit("002_b.txt", "OIC meeting")]
    answer = make_answer(text=REFUSAL["en"], refused=True, citations=[], related=related, mode="refused", lang="en")
    out = app.render_answer_html(answer, [make_document()], prefix="a1")
    assert 'class="rag-answer rag-refused"' in out
    assert REFUSAL["en"] in out
    label = out.index(RELATED_LABEL["en"])
    assert label < out.index("Blinken &lt;call&gt;") and label < out.index("OIC meeting")
    assert "rag-source" not in out and "rag-cite" not in out and "Sources" not in out


def test_refusal_marks_each_closest_sentence_in_its_passage():
    passage = "Opening words. " + "Filler text here. " * 20 + "Uzbekistan always <supported> it. " + "More. " * 40
    hit = Hit(source="004_a.txt", title="Consultations", date=None, lang="az", text=passage, start=1000,
              end=1000 + len(passage), score=0.9)  # fmt: skip
    quote = "Uzbekistan always <supported> it."
    at = 1000 + passage.index(quote)
    closest = [Evidence(n=1, hit=hit, quote=quote, quote_start=at, quote_end=at + len(quote), score=0.2)]
    answer = make_answer(text=REFUSAL["en"], refused=True, citations=[], related=[hit], closest=closest)
    out = app.render_answer_html(answer)
    assert out.index(RELATED_LABEL["en"]) < out.index("<mark>Uzbekistan always &lt;supported&gt; it.</mark>")
    assert "Opening words" not in out and "… " in out  # a window around the sentence, not the passage's start
    assert "rag-source" not in out and "rag-cite" not in out
    markdown = answer.to_markdown()
    assert markdown.splitlines()[2:] == [RELATED_LABEL["en"], f'- Consultations (004_a.txt): "{quote}"']
    # A second sentence of the same passage is marked in the same entry, not shown again in a window of its own.
    other = "Filler text here."
    at2 = 1000 + passage.index(other)
    both = closest + [Evidence(n=2, hit=hit, quote=other, quote_start=at2, quote_end=at2 + len(other), score=0.1)]
    out = app.render_answer_html(replace(answer, closest=both))
    assert out.count("<li>") == 1 and out.count("<mark>") == 2 and "Opening words" in out


def test_highlight_ranges_marks_each_range_once():
    marked = highlight_ranges("a <b> c d", [(6, 7), (0, 1), (1, 3)])
    assert marked == "<mark>a</mark><mark> &lt;</mark>b&gt; <mark>c</mark> d"
    assert highlight_ranges("abc", [(0, 2), (1, 3)]) == "<mark>ab</mark><mark>c</mark>"  # the overlap once


def test_refusal_label_follows_the_answer_language():
    answer = make_answer(text=REFUSAL["az"], refused=True, citations=[], related=[make_hit("x.txt", "X")], lang="az")
    assert RELATED_LABEL["az"] in app.render_answer_html(answer)
    no_related = make_answer(text=REFUSAL["ru"], refused=True, citations=[], related=[], lang="ru")
    assert RELATED_LABEL["ru"] not in app.render_answer_html(no_related)


def test_rewritten_follow_up_is_shown_folded_only_when_it_differs():
    same = app.render_answer_html(make_answer(), [])
    assert "rag-standalone" not in same
    rewritten = app.render_answer_html(
        make_answer(question="And when?", standalone_question="When did Uzbekistan <say> it?"), []
    )
    assert '<details class="rag-standalone">' in rewritten and "When did Uzbekistan &lt;say&gt; it?" in rewritten


def test_extractive_answers_say_they_are_quoted():
    assert "quoted from the documents" in app.render_answer_html(make_answer(mode="extractive"), [])


@pytest.mark.parametrize("lang, label", [("en", "machine translation"), ("ru", "машинный перевод")])
def test_a_translation_is_shown_under_its_quote_marked_as_machine_made(lang, label):
    translated = replace(make_citation(1), translation="Узбекистан <всегда> поддерживает территориальную целостность.")
    answer = make_answer(lang=lang, mode="generated", citations=[translated, make_citation(2)], confidence=0.62)
    html = app.render_answer_html(answer, [])
    quote_at, translation_at = html.index("supports territorial integrity"), html.index(f"{label}:")
    assert quote_at < translation_at  # under the quote it translates
    assert "Узбекистан &lt;всегда&gt;" in html and html.count(f"{label}:") == 1  # escaped; only where there is one
    assert "translated from the quoted sources" in html and "confidence 62%" in html


def test_a_quote_in_another_language_without_a_translation_says_so():
    """The reader should not wonder whether the translation was forgotten: none passed the check, or the model is
    not asked for that language."""
    answer = make_answer(lang="en", mode="extractive", citations=[make_citation(1)])
    html = app.render_answer_html(answer, [])
    assert html.index("supports territorial integrity") < html.index("(no checked machine translation)")
    assert "(no checked machine translation)" in answer.to_markdown()
    # a quote in the answer's own language needs none, and gets no note
    same = make_answer(lang="az", mode="extractive", citations=[make_citation(1)])
    assert "yoxlanılmış maşın tərcüməsi" not in app.render_answer_html(same, []) + same.to_markdown()
    translated = make_answer(lang="ru", citations=[replace(make_citation(1), translation="Узбекистан поддерживает.")])
    assert "проверенного машинного перевода нет" not in app.render_answer_html(translated, [])


# -- the stream, as the chat shows it -------------------------------------------------------------------------------


class FakeAssistant:
    def __init__(self, events):
        self.events = events
        self.calls = []

    def stream(self, question, history, **options):
        self.calls.append((question, history, options))
        yield from self.events

    def index(self):
        return SimpleNamespace(documents=[make_document()])


def test_stream_shows_draft_then_replaces_it_with_the_verified_answer():
    final = make_answer()
    fake = FakeAssistant(
        [
            StreamEvent("rewrite", text="What did Uzbekistan say?"),
            StreamEvent("queued", text="2"),
            StreamEvent("token", text="Uzbek"),
            StreamEvent("token", text="istan"),
            StreamEvent("answer", answer=final),
        ]
    )
    history = [{"role": "user", "content": "Earlier?"}, {"role": "assistant", "content": "Yes [1]."}]
    steps = list(app.answer_turns(fake, "And?", history, threading.Event(), {"model": "test", "k": 3}, "p"))
    assert "2 requests ahead" in steps[2][0]
    assert "Uzbekistan" in steps[-2][0] and "rag-draft" in steps[-2][0]
    body, answer = steps[-1]
    assert answer is final and "rag-draft" not in body and '<a class="rag-cite" href="#p-1">' in body
    assert all(answer is None for _, answer in steps[:-1])
    question, passed_history, options = fake.calls[0]
    assert passed_history == history and options["model"] == "test" and isinstance(options["cancel"], threading.Event)


def test_stopped_generation_is_not_shown_as_a_refusal():
    cancel = threading.Event()
    cancel.set()
    refused = make_answer(text=REFUSAL["en"], refused=True, citations=[], mode="refused")
    fake = FakeAssistant([StreamEvent("token", text="Partial"), StreamEvent("answer", answer=refused)])
    body, answer = list(app.answer_turns(fake, "Q?", [], cancel, {}, "p"))[-1]
    assert answer is None and "rag-stopped" in body and REFUSAL["en"] not in body and "Partial" in body


def test_stopped_generation_shows_only_the_verified_part_and_says_so():
    cancel = threading.Event()
    cancel.set()
    fake = FakeAssistant([StreamEvent("token", text="Partial"), StreamEvent("answer", answer=make_answer())])
    body, answer = list(app.answer_turns(fake, "Q?", [], cancel, {}, "p"))[-1]
    assert answer is not None and "stopped early" in body and "rag-cite" in body


def test_status_line_comes_from_stats():
    stats = {
        "documents": 5,
        "passages": 37,
        "languages": {"az": 3, "en": 1, "ru": 1},
        "model": "multilingual-e5-small",
        "built": "2025-11-23T16:22:45+00:00",
    }
    config = rag.load_config({"generation": {"model": "fast"}})
    fake = SimpleNamespace(stats=lambda: stats, config=config)
    line = app.status_markdown(fake)
    for part in ("5", "37", "az 3", "en 1", "ru 1", "fast", "multilingual-e5-small", "2025-11-23 16:22:45 UTC"):
        assert part in line
    assert "quality" in app.status_markdown(fake, "quality")


# -- uploads ------------------------------------------------------------------------------------------------------
# Saving and removing files is the library's: tests/test_corpus_files.py and tests/test_add_documents.py.


def test_upload_limits_come_from_the_corpus_config():
    config = rag.load_config({"corpus": {"extensions": [".TXT", ".md"], "max_file_mb": 2}})
    assert app.upload_limits(config) == ((".txt", ".md"), 2 * 1024 * 1024)
    big = rag.load_config({"corpus": {"max_file_mb": 10_000}})
    assert app.upload_limits(big)[1] == app.UPLOAD_CAP_MB * 1024 * 1024


# -- starting -----------------------------------------------------------------------------------------------------


def test_defaults_listen_on_loopback_without_auth():
    assert app.launch_settings(None, None, None, {}) == ("127.0.0.1", 7860, None)
    assert app.launch_settings("localhost", 9000, None, {}) == ("localhost", 9000, None)
    assert app.launch_settings("::1", None, None, {})[0] == "::1"


def test_other_addresses_need_credentials():
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(app.StartupError, match="Refusing to listen"):
            app.launch_settings(host, None, None, {})
    assert app.launch_settings("0.0.0.0", None, "ann:s3:cret", {}) == ("0.0.0.0", 7860, ("ann", "s3:cret"))
    env = {"RAG_APP_HOST": "0.0.0.0", "RAG_APP_PORT": "8080", "RAG_APP_USER": "ann", "RAG_APP_PASSWORD": "pw"}
    assert app.launch_settings(None, None, None, env) == ("0.0.0.0", 8080, ("ann", "pw"))
    with pytest.raises(app.StartupError, match="Refusing"):
        app.launch_settings(None, None, None, {"RAG_APP_HOST": "0.0.0.0"})


@pytest.mark.parametrize(
    ("auth", "env"),
    [("nopassword", {}), (":pw", {}), ("user:", {}), (None, {"RAG_APP_USER": "ann"}), (None, {"RAG_APP_PORT": "x"})],
)
def test_bad_settings_are_refused_with_a_message(auth, env):
    with pytest.raises(app.StartupError):
        app.launch_settings(None, None, auth, env)


def test_main_refuses_an_exposed_address_without_credentials(capsys, monkeypatch):
    for name in ("RAG_APP_USER", "RAG_APP_PASSWORD", "RAG_APP_HOST", "RAG_APP_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert app.main(["--host", "0.0.0.0"]) == 1
    assert "Refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_theme_and_css_fetch_nothing_from_elsewhere():
    assert "url(" not in app.CSS
    assert "googleapis" not in str(app.THEME._stylesheets)


def test_stop_and_clear_reach_the_running_answer_of_their_session_only():
    sessions = app.Sessions()
    mine, other = sessions.start("a"), sessions.start("b")
    sessions.stop("a")
    assert mine.cancel.is_set() and not mine.cleared and not other.cancel.is_set()
    sessions.stop("b", clear=True)
    assert other.cancel.is_set() and other.cleared
    sessions.finish("a", mine)
    sessions.stop("a", clear=True)  # nothing running any more: nothing to do
    assert not mine.cleared


def test_importing_the_app_keeps_hugging_face_offline():
    # gradio imports huggingface_hub, which reads HF_HUB_OFFLINE once, at import: rag must come first
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    code = (
        "import app, huggingface_hub.constants as c, gradio.analytics as a\n"
        "print(c.HF_HUB_OFFLINE, a.analytics_enabled())"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stderr[-2000:]
