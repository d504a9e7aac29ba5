"""Citation markers are read alike wherever they are read: the app links exactly the sources that the evaluation
counts as cited, for every form a reader takes for a citation, and both read the form the answer is written in."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from rag import citations
from rag.evaluation import unsupported_sentences
from rag.grounding import answer_from_quotes
from rag.types import Answer, Citation, Evidence, Hit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # app.py is a script at the repository root
import app  # noqa: E402

SOURCES = 60  # more than the longest range read ([1-9999] is read as 1..51)
FORMS = {
    "[2]": {2},
    "[1, 2]": {1, 2},
    "[1,3]": {1, 3},
    "[1; 3]": {1, 3},
    "[1-2]": {1, 2},
    "[1 - 3]": {1, 2, 3},
    "[1–3]": {1, 2, 3},
    "[2-3, 5]": {2, 3, 5},
    "[1][3]": {1, 3},
    "[3-1]": set(),
    "[1-9999]": set(range(1, 52)),
    "[x]": set(),
    "(1)": set(),
}


def _citation(n: int) -> Citation:
    return Citation(n=n, source=f"{n}.txt", title="t", lang="en", date=None, text="passage", start=0, end=7,
                    quote="passage", quote_start=0, quote_end=7, score=1.0)  # fmt: skip


def linked_by_app(text: str) -> set[int]:
    html = app.link_markers(text, range(1, SOURCES + 1), "p")
    return {int(n) for n in re.findall(r'href="#p-(\d+)"', html)}


def counted_by_evaluation(text: str) -> set[int]:
    """The sources n for which the evaluation takes the sentence as supported when n is the answer's only one."""
    return {
        n
        for n in range(1, SOURCES + 1)
        if not unsupported_sentences(Answer(question="", text=text, lang="en", refused=False, citations=[_citation(n)]))
    }


@pytest.mark.parametrize("form", FORMS)
def test_the_app_and_the_evaluation_read_every_marker_form_alike(form):
    text = f"Baku hosted the talks {form}."
    assert citations.cited_numbers(text) == FORMS[form]
    assert linked_by_app(text) == FORMS[form]
    assert counted_by_evaluation(text) == FORMS[form]


def test_a_range_is_linked_to_each_source_it_names():
    assert app.link_markers("Both [1-2].", {1, 2}, "p") == (
        'Both <a class="rag-cite" href="#p-1">[1]</a><a class="rag-cite" href="#p-2">[2]</a>.'
    )
    assert app.link_markers("Both [1-3].", {1, 2}, "p") == "Both [1-3]."  # [3] is no source: left as written


def test_the_markers_the_answer_is_written_with_are_read_back():
    hits = [Hit(source=f"{n}.txt", title="t", date=None, lang="en", text=f"Sentence {n} of the news.", start=0,
                end=24, score=1.0) for n in (1, 2)]  # fmt: skip
    quotes = [Evidence(n=n, hit=h, quote=h.text, quote_start=0, quote_end=24, score=0.9) for n, h in enumerate(hits, 1)]
    for translations in ({}, {1: None}):  # quoted in the answer's language; quoted behind the extractive phrase
        text, cited, _ = answer_from_quotes(quotes, translations, "en")
        assert citations.cited_numbers(text) == {c.n for c in cited} == {1, 2}
        assert linked_by_app(text) == {1, 2}
        answer = Answer(question="", text=text, lang="en", refused=False, citations=cited)
        assert unsupported_sentences(answer) == []
