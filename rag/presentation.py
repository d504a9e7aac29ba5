"""What a reader sees: the assistant's records (Answer, Hit, Citation, BuildSummary, the documents) turned into
HTML for the chat and plain text or Markdown for the side panel.

Pure string work: nothing here retrieves, writes a file or knows about Gradio. app.py shows what these return.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rag import citations
from rag.errors import RagError
from rag.prompts import MACHINE_TRANSLATION, NO_TRANSLATION, RELATED_LABEL
from rag.types import Answer, BuildSummary, Document, Hit

if TYPE_CHECKING:
    from rag.assistant import Assistant

CONTEXT_CHARS = 400  # surrounding text shown on each side of a cited passage (about 800 characters in all)
RELATED_SNIPPET_CHARS = 240
TITLE_CHARS = 90  # in the table of documents


# -- rendering ------------------------------------------------------------------------------------------------
# Everything below returns one HTML block without blank lines: the chatbot renders messages as Markdown, and a
# blank line would end the HTML block and let Markdown rewrite the rest.


def _esc(text: str) -> str:
    return html.escape(text).replace("\r", "").replace("\n", "<br>")


def _meta(source: str, date: str | None, lang: str) -> str:
    parts = [f"<code>{_esc(source)}</code>"]
    if date:
        parts.append(_esc(date))
    parts.append(_esc(lang))
    return " · ".join(parts)


def link_markers(text: str, numbers: Iterable[int], prefix: str) -> str:
    """Escape the answer text and turn each citation marker whose sources are all known into links to them:
    "[1, 2]" and the range "[1-2]" both become a link [1] and a link [2] (rag.citations reads the forms)."""
    known = set(numbers)

    def link(match: re.Match) -> str:
        ns = citations.marker_numbers(match.group(1))
        if not ns or not all(n in known for n in ns):
            return match.group(0)
        return "".join(f'<a class="rag-cite" href="#{prefix}-{n}">{citations.marker(n)}</a>' for n in ns)

    return citations.MARKER.sub(link, _esc(text))


def highlight(text: str, start: int, end: int) -> str:
    """Escape `text` with text[start:end] wrapped in <mark> (offsets clamped to the text)."""
    return highlight_ranges(text, [(start, end)])


def highlight_ranges(text: str, ranges: Iterable[tuple[int, int]]) -> str:
    """Escape `text` with each text[start:end] wrapped in <mark>; offsets are clamped to the text, and what an
    earlier range already marks is not marked again."""
    parts, at = [], 0
    for start, end in sorted(ranges):
        start, end = max(at, min(start, len(text))), max(0, min(end, len(text)))
        if end <= start:
            continue
        parts.append(f"{_esc(text[at:start])}<mark>{_esc(text[start:end])}</mark>")
        at = end
    return "".join(parts) + _esc(text[at:])


def context_html(document: Document, citation) -> str:
    """About CONTEXT_CHARS of the document on each side of the cited passage, the quote highlighted.

    Empty when the document changed since the answer (its text no longer holds the quote where it was)."""
    text = document.text
    if text[citation.quote_start : citation.quote_end] != citation.quote:
        return ""
    quote = (citation.quote_start, citation.quote_end)
    return window_html(text, citation.start, citation.end, [quote], CONTEXT_CHARS)


def window_html(text: str, start: int, end: int, marks: Sequence[tuple[int, int]], chars: int) -> str:
    """text[start:end] with up to `chars` more on each side, each text[a:b] of `marks` highlighted; "…" marks
    where the window cuts the text."""
    lo = max(0, start - chars)
    hi = min(len(text), end + chars)
    # Start and end on a word boundary, so the window does not open or close mid-word.
    if lo > 0 and (space := text.find(" ", lo, start)) != -1:
        lo = space + 1
    if hi < len(text) and (space := text.rfind(" ", end, hi)) != -1:
        hi = space
    body = highlight_ranges(text[lo:hi], [(a - lo, b - lo) for a, b in marks])
    return ("… " if lo > 0 else "") + body + (" …" if hi < len(text) else "")


def _by_source(documents: Iterable[Document] | Mapping[str, Document]) -> Mapping[str, Document]:
    return documents if isinstance(documents, Mapping) else {doc.source: doc for doc in documents}


def render_answer_html(
    answer: Answer,
    documents: Iterable[Document] | Mapping[str, Document] = (),
    prefix: str = "src",
    *,
    stopped: bool = False,
) -> str:
    """The final answer as one HTML block: text with linked [n] markers, then the numbered sources.

    A refusal gets its own look and lists Answer.closest (or Answer.related) only under the "closest matches"
    label, so the passages never read as an answer. `prefix` keeps the anchors of different answers on one
    page apart."""
    if answer.refused:
        return render_refusal_html(answer)
    docs = _by_source(documents)
    parts = [f'<div class="rag-answer rag-{_esc(answer.mode)}">']
    parts.append(_standalone_html(answer))
    parts.append(f'<p class="rag-text">{link_markers(answer.text, (c.n for c in answer.citations), prefix)}</p>')
    if answer.citations:
        parts.append('<div class="rag-sources-label">Sources</div><ol class="rag-sources">')
        for c in answer.citations:
            passage = highlight(c.text, c.quote_start - c.start, c.quote_end - c.start)
            parts.append(
                f'<li class="rag-source" id="{prefix}-{c.n}">'
                f'<div><span class="rag-n">[{c.n}]</span> <b>{_esc(c.title)}</b></div>'
                f'<div class="rag-meta">{_meta(c.source, c.date, c.lang)}</div>'
                f'<blockquote class="rag-passage">{passage}</blockquote>'
            )
            if c.translation:
                label = MACHINE_TRANSLATION.get(answer.lang, MACHINE_TRANSLATION["en"])
                parts.append(
                    f'<div class="rag-translation"><span class="rag-meta">{_esc(label)}:</span> '
                    f"{_esc(c.translation)}</div>"
                )
            elif c.lang != answer.lang:
                note = NO_TRANSLATION.get(answer.lang, NO_TRANSLATION["en"])
                parts.append(f'<div class="rag-translation rag-meta">({_esc(note)})</div>')
            document = docs.get(c.source)
            context = context_html(document, c) if document is not None else ""
            if context:
                parts.append(
                    '<details class="rag-context"><summary>Show the surrounding text</summary>'
                    f"<div>{context}</div></details>"
                )
            parts.append("</li>")
        parts.append("</ol>")
    parts.append(_footer_html(answer, stopped))
    parts.append("</div>")
    return "".join(parts)


def render_refusal_html(answer: Answer) -> str:
    label = RELATED_LABEL.get(answer.lang, RELATED_LABEL["en"])
    parts = ['<div class="rag-answer rag-refused">', _standalone_html(answer)]
    parts.append(f'<p class="rag-refusal"><span class="rag-icon" aria-hidden="true">⊘</span>{_esc(answer.text)}</p>')
    if answer.closest or answer.related:
        parts.append(f'<div class="rag-related-label">{_esc(label)}</div><ul class="rag-related">')
        for hit, snippet in _closest_snippets(answer):
            parts.append(
                f"<li><b>{_esc(hit.title)}</b>"
                f'<div class="rag-meta">{_meta(hit.source, hit.date, hit.lang)}</div>'
                f'<div class="rag-passage">{snippet}</div></li>'
            )
        parts.append("</ul>")
    parts.append(_footer_html(answer))
    parts.append("</div>")
    return "".join(parts)


def _closest_snippets(answer: Answer) -> list[tuple[Hit, str]]:
    """(passage, HTML) for each passage of a refusal's closest matches, best first: its closest sentences marked,
    with some of the passage around them; the start of each related passage when there are no sentences."""
    if answer.closest:
        passages: dict[tuple[str, int], tuple[Hit, list[tuple[int, int]]]] = {}
        for e in answer.closest:  # sentences of one passage are shown together, in one window
            hit, marks = passages.setdefault((e.hit.source, e.hit.start), (e.hit, []))
            marks.append((e.quote_start - hit.start, e.quote_end - hit.start))
        return [
            (hit, window_html(hit.text, min(marks)[0], max(b for _, b in marks), marks, RELATED_SNIPPET_CHARS // 2))
            for hit, marks in passages.values()
        ]
    return [
        (hit, _esc(hit.text if len(hit.text) <= RELATED_SNIPPET_CHARS else hit.text[:RELATED_SNIPPET_CHARS] + "…"))
        for hit in answer.related
    ]


def _standalone_html(answer: Answer) -> str:
    # Shown folded: the rewrite explains what was searched for, but most people never need to look.
    standalone = answer.standalone_question
    if not standalone or standalone == answer.question:
        return ""
    return (
        '<details class="rag-standalone"><summary>Understood as a standalone question</summary>'
        f"<div>{_esc(standalone)}</div></details>"
    )


def _footer_html(answer: Answer, stopped: bool = False) -> str:
    notes = ["stopped early: only what was verified is shown"] if stopped else []
    if answer.mode == "extractive":
        notes.append("quoted from the documents")
    elif answer.mode == "generated":
        notes.append("translated from the quoted sources by " + _esc(answer.model or "the chat model"))
    if answer.confidence is not None:
        notes.append(f"confidence {answer.confidence:.0%}")
    if answer.model:
        notes.append(_esc(answer.model))
    if "total" in answer.timings:
        notes.append(f"{answer.timings['total']:.1f} s")
    return f'<div class="rag-footer">{" · ".join(notes)}</div>' if notes else ""


def render_draft_html(status: str, draft: str = "", standalone: str = "") -> str:
    """What is shown while the answer is on its way: a status line and the unverified draft."""
    parts = ['<div class="rag-answer rag-draft">']
    if standalone:
        parts.append(f'<p class="rag-status">Searching for: {_esc(standalone)}</p>')
    parts.append(f'<p class="rag-status">{_esc(status)}</p>')
    if draft:
        parts.append(f'<p class="rag-draft-text">{_esc(draft)} ▍</p>')
    parts.append("</div>")
    return "".join(parts)


def render_error_html(message: str) -> str:
    return f'<div class="rag-answer rag-error"><span class="rag-icon" aria-hidden="true">⚠</span>{_esc(message)}</div>'


def render_stopped_html(draft: str) -> str:
    note = "Stopped before the answer was checked against the documents."
    extra = f"<details><summary>Unchecked draft</summary><div>{_esc(draft)}</div></details>" if draft else ""
    return f'<div class="rag-answer rag-stopped"><p>{note}</p>{extra}</div>'


def status_markdown(assistant: Assistant, model: str | None = None) -> str:
    """The side panel's status line, from assistant.stats()."""
    try:
        stats = assistant.stats()
    except RagError as exc:
        return f"**Index unavailable:** {exc}"
    languages = ", ".join(f"{lang} {count}" for lang, count in sorted(stats["languages"].items())) or "none"
    built = str(stats.get("built") or "unknown").replace("T", " ").replace("+00:00", " UTC")
    chat_model = model or assistant.config.generation.model
    if assistant.config.generation.server_url:
        chat_model = f"server {assistant.config.generation.server_model or assistant.config.generation.server_url}"
    return (
        f"**{stats['documents']}** documents · **{stats['passages']}** passages · languages: {languages}  \n"
        f"Chat model: {chat_model} · embeddings: {stats['model']}  \n"
        f"Index built: {built}"
    )


# -- documents and index updates ----------------------------------------------------------------------------------


def document_rows(assistant: Assistant) -> list[list[str]]:
    """The indexed documents as table rows: file, title, date, language."""
    try:
        documents = assistant.index().documents
    except RagError:
        return []
    rows = []
    for doc in sorted(documents, key=lambda d: d.source):
        # A file without a headline gets its first paragraph as title: keep the table readable.
        title = doc.title if len(doc.title) <= TITLE_CHARS else doc.title[:TITLE_CHARS].rstrip() + "…"
        rows.append([doc.source, title, doc.date or "", doc.lang])
    return rows


def build_summary_text(summary: BuildSummary) -> str:
    changes = []
    for label, items in (("added", summary.added), ("updated", summary.changed), ("removed", summary.removed)):
        if items:
            changes.append(f"{label} {', '.join(items)}")
    done = "; ".join(changes) or "nothing changed"
    totals = f"{summary.documents} documents, {summary.passages} passages"
    return f"Index updated in {summary.seconds:.1f} s: {done}. {totals}."
