"""The browser app: a chat over the news documents, a thin Gradio layer over rag.Assistant.

    python app.py [--config FILE] [--corpus DIR] [--index DIR] [--model NAME] [--build]
                  [--host 127.0.0.1] [--port 7860] [--auth USER:PASSWORD]

Nothing here retrieves, ranks or verifies: Assistant.stream() does. Nothing here writes or deletes a file:
Assistant.add_documents() and remove_document() do. rag.presentation turns the StreamEvents and the final Answer
into HTML; this file shows it, and passes uploads and removals on to the Assistant.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import rag
from rag import corpus_files
from rag.presentation import (  # the rendering helpers not used here are re-exported for tests and callers
    build_summary_text,
    context_html,  # noqa: F401
    document_rows,
    highlight,  # noqa: F401
    link_markers,  # noqa: F401
    render_answer_html,
    render_draft_html,
    render_error_html,
    render_refusal_html,  # noqa: F401
    render_stopped_html,
    status_markdown,
)
from rag.retrieval import clean_question
from rag.types import Answer

STARTED = time.perf_counter()  # the "ready to answer" message counts gradio's import as part of the start

# gradio only now: `import rag` has switched the Hugging Face libraries to local files only and Gradio's
# analytics off, and huggingface_hub (which gradio imports) reads that switch when it is imported.
import gradio as gr  # noqa: E402

# -- settings ------------------------------------------------------------------------------------------------

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
HOST_ENV, PORT_ENV = "RAG_APP_HOST", "RAG_APP_PORT"
USER_ENV, PASSWORD_ENV = "RAG_APP_USER", "RAG_APP_PASSWORD"

# Answers in flight at once. The chat model serves one at a time inside rag, so the others wait there and see
# their place in its queue; more than this wait in Gradio's queue, which shows its own position.
CHAT_CONCURRENCY = 4
# An upload larger than this, or than [corpus] max_file_mb, is refused by Gradio before it is written to its
# temporary folder: the corpus limit exists for whole archives on disk, a browser upload needs a tighter one.
UPLOAD_CAP_MB = 50

EXAMPLES = [
    "What did Armenia refuse to provide to Azerbaijan?",
    "Blinken İlham Əliyevə hansı tarixdə zəng edib?",
    "С каким министром Кыргызстана встретился Байрамов?",
    "Bayramov İƏT-in Baş katibi ilə nəyi müzakirə edib?",
]
LANGUAGE_CHOICES = [("All languages", ""), ("Azərbaycanca", "az"), ("Русский", "ru"), ("English", "en")]
MODEL_CHOICES = [("Fast (0.5B)", "fast"), ("Quality (1.5B)", "quality")]

# System fonts only: the default theme's web fonts, or a Google font, would be one more request (or a wait
# for a network that is not there) on an offline laptop.
THEME = gr.themes.Default(
    primary_hue="blue",
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace"],
)
# No url(...) anywhere: the page must render from this server alone.
CSS = """
.rag-answer { line-height: 1.5; }
.rag-answer p { margin: 0 0 .5em 0; }
.rag-text a.rag-cite { text-decoration: none; font-weight: 600; padding: 0 .1em; }
.rag-sources-label, .rag-related-label { font-weight: 600; margin-top: .6em; font-size: .92em; }
ol.rag-sources, ul.rag-related { list-style: none; padding-left: 0; margin: .3em 0 0 0; }
.rag-source, .rag-related li { border-left: 3px solid #93c5fd; padding: .3em .6em; margin: .4em 0;
  background: rgba(147, 197, 253, .08); border-radius: 4px; }
.rag-source:target { background: rgba(250, 204, 21, .25); }
.rag-meta { font-size: .85em; opacity: .8; }
.rag-passage { margin: .3em 0; font-size: .93em; }
.rag-translation { margin: 0 0 .3em 1.2em; font-size: .93em; font-style: italic; }
.rag-passage mark, .rag-context mark { background: #fde68a; color: #111; padding: 0 .1em; }
.rag-context summary, .rag-standalone summary { cursor: pointer; font-size: .85em; opacity: .85; }
.rag-context div { font-size: .9em; white-space: normal; padding: .3em 0; }
.rag-footer { font-size: .8em; opacity: .7; margin-top: .4em; }
.rag-refused { border-left: 4px solid #f59e0b; padding-left: .6em; }
.rag-refusal { font-weight: 600; }
.rag-icon { margin-right: .3em; }
.rag-related li { border-left-color: #d1d5db; background: rgba(209, 213, 219, .12); }
.rag-related mark { background: rgba(209, 213, 219, .6); color: inherit; }
.rag-draft .rag-draft-text { opacity: .75; font-style: italic; }
.rag-status { font-size: .85em; opacity: .8; }
.rag-error { border-left: 4px solid #ef4444; padding-left: .6em; }
.rag-stopped { border-left: 4px solid #9ca3af; padding-left: .6em; }
"""


# -- documents: what the upload accepts (the table of documents is rag.presentation.document_rows) --------------
# Saving and removing files is the Assistant's (Assistant.add_documents / remove_document): it checks the type,
# the size and the name again, whatever the browser let through.


def upload_limits(config: rag.Config) -> tuple[tuple[str, ...], int]:
    """The accepted extensions ([corpus] extensions) and the largest upload in bytes, for the upload's label and
    Gradio's own limit."""
    extensions, max_bytes = corpus_files.limits(config)  # what the library accepts: never offer more
    return extensions, min(max_bytes, UPLOAD_CAP_MB * 1024 * 1024)


# -- chat --------------------------------------------------------------------------------------------------------


def _filters(language: str, source: str, date_from: str, date_to: str) -> dict:
    return {
        "lang": language or None,
        "source": (source or "").strip() or None,
        "date_from": (date_from or "").strip() or None,
        "date_to": (date_to or "").strip() or None,
    }


@dataclass
class Turn:
    """One answer being produced: `cancel` is passed to Assistant.stream, `cleared` says the conversation was
    cleared meanwhile, so nothing of this answer may reappear in it."""

    cancel: threading.Event = field(default_factory=threading.Event)
    cleared: bool = False


class Sessions:
    """The Stop and Clear buttons' handle on each browser session's running answer.

    Stopping goes through the threading.Event rather than Gradio's `cancels`: the model then ends its reply
    after the current token and releases its lock, and a cancel cannot hit a question asked right after."""

    def __init__(self):
        self._lock = threading.Lock()
        self._turns: dict[str, Turn] = {}

    def start(self, session: str) -> Turn:
        turn = Turn()
        with self._lock:
            self._turns[session] = turn
        return turn

    def stop(self, session: str, *, clear: bool = False) -> None:
        with self._lock:
            turn = self._turns.get(session)
        if turn is not None:
            turn.cleared = turn.cleared or clear
            turn.cancel.set()

    def finish(self, session: str, turn: Turn) -> None:
        with self._lock:
            if self._turns.get(session) is turn:
                del self._turns[session]


def answer_turns(
    assistant: rag.Assistant,
    question: str,
    history: list[dict],
    cancel: threading.Event,
    options: dict,
    prefix: str,
) -> Iterator[tuple[str, Answer | None]]:
    """(HTML, final Answer or None) as the answer comes: status, the streamed draft, then the verified answer."""
    draft = ""
    standalone = ""
    yield render_draft_html("Searching the documents…"), None
    for event in assistant.stream(question, history, cancel=cancel, **options):
        if event.kind == "rewrite":
            standalone = event.text
            yield render_draft_html("Searching the documents…", standalone=standalone), None
        elif event.kind == "queued":
            ahead = int(event.text) if event.text.isdigit() else 1
            status = f"Waiting for the model: {ahead} request{'s' if ahead != 1 else ''} ahead of yours…"
            yield render_draft_html(status, standalone=standalone), None
        elif event.kind == "token":
            draft += event.text
            status = "Writing (a draft, checked against the sources when done)…"
            yield render_draft_html(status, draft, standalone), None
        elif event.kind == "answer" and event.answer is not None:
            if cancel.is_set() and event.answer.refused:
                # A stopped draft that failed verification is not the documents' verdict: say it was stopped.
                yield render_stopped_html(draft), None
                return
            documents = assistant.index().documents
            yield render_answer_html(event.answer, documents, prefix, stopped=cancel.is_set()), event.answer


def build_ui(assistant: rag.Assistant) -> gr.Blocks:
    config = assistant.config
    extensions, max_bytes = upload_limits(config)
    sessions = Sessions()
    configured = config.generation.model
    model_choices = [(f"Configured ({configured})", "")] + [c for c in MODEL_CHOICES if c[1] != configured]

    def respond(question, chat, turns, model, k, language, source, date_from, date_to, request: gr.Request):
        # Shown and kept as rag cleans it: a bidi override or an escape must not rewrite the page after it.
        question = clean_question(question or "")
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        session = request.session_hash or "anonymous"
        turn = sessions.start(session)
        chat = list(chat or []) + [{"role": "user", "content": question}]
        options = dict(model=model or None, k=int(k), **_filters(language, source, date_from, date_to))
        prefix = f"src-{uuid.uuid4().hex[:8]}"  # anchors unique on the page, whatever else the chat shows
        try:
            for body, answer in answer_turns(assistant, question, list(turns or []), turn.cancel, options, prefix):
                if turn.cleared:
                    return
                shown = chat + [{"role": "assistant", "content": body}]
                if answer is None:
                    yield shown, gr.skip(), gr.skip(), ""
                else:
                    # The conversation rag sees is plain text: the question and the verified answer, not the HTML.
                    new_turns = list(turns or []) + [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer.text},
                    ]
                    yield shown, new_turns, answer.to_markdown(), ""
        except (rag.RagError, ValueError) as exc:
            if not turn.cleared:
                error = render_error_html(str(exc))
                yield chat + [{"role": "assistant", "content": error}], gr.skip(), gr.skip(), ""
            return
        finally:
            sessions.finish(session, turn)

    def stop(request: gr.Request):
        sessions.stop(request.session_hash or "anonymous")

    def clear(request: gr.Request):
        sessions.stop(request.session_hash or "anonymous", clear=True)
        return [], [], ""

    def side_panel(model):
        rows = document_rows(assistant)
        sources = [row[0] for row in rows]
        return status_markdown(assistant, model or None), rows, gr.update(choices=sources, value=None)

    # Gradio recognises a progress parameter by its gr.Progress() default.
    def add_documents(files, model, progress=gr.Progress()):  # noqa: B008
        uploads = []
        for file in files or []:
            path = getattr(file, "name", file)
            uploads.append((getattr(file, "orig_name", None) or Path(path).name, Path(path)))
        if not uploads:
            yield "No file was uploaded.", gr.skip(), gr.skip(), gr.skip(), None
            return
        yield "Indexing… (you can keep asking questions meanwhile)", *([gr.skip()] * 3), None
        progress(0.2, desc=f"Indexing {len(uploads)} new document{'s' if len(uploads) > 1 else ''}")
        try:
            update = assistant.add_documents(uploads)
        except rag.RagError as exc:
            yield f"Indexing failed: {exc} The uploaded files were not kept.", *side_panel(model), None
            return
        messages = [added.message for added in update.added] + [rejected.reason for rejected in update.rejected]
        if update.summary is None:  # every file was refused: the index was left alone
            yield "\n\n".join(messages), gr.skip(), gr.skip(), gr.skip(), None
            return
        messages.append(build_summary_text(update.summary))
        yield "\n\n".join(messages), *side_panel(model), None

    def delete_document(source, model, progress=gr.Progress()):  # noqa: B008
        if not source:
            yield "Choose a document to remove first.", gr.skip(), gr.skip(), gr.skip()
            return
        if source not in {row[0] for row in document_rows(assistant)}:
            yield f"{source!r} is not an indexed document.", *side_panel(model)
            return
        yield f"Removing {source!r} and updating the index…", gr.skip(), gr.skip(), gr.skip()
        progress(0.3, desc="Updating the index")
        try:
            summary = assistant.remove_document(source)
        except rag.DocumentRejected as exc:  # refused before anything was deleted
            yield str(exc), *side_panel(model)
            return
        except rag.RagError as exc:
            yield f"Removed {source!r}, but the index update failed: {exc}", *side_panel(model)
            return
        yield f"Removed {source!r}. {build_summary_text(summary)}", *side_panel(model)

    with gr.Blocks(title="News assistant", analytics_enabled=False) as ui:
        turns = gr.State([])  # the conversation as plain text, for follow-up questions
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                gr.Markdown(
                    "## News assistant\nAsk in Azerbaijani, Russian or English. Every answer cites the passages it "
                    "rests on; when the documents do not hold the answer, it says so."
                )
                chatbot = gr.Chatbot(
                    elem_id="chat",
                    label="Conversation",
                    height="72vh",  # most of the window, whatever its size
                    min_height=420,
                    latex_delimiters=[],  # "$5 million" is money, not LaTeX
                    feedback_options=None,
                    placeholder="Ask a question about the news articles, or pick an example below.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="question",
                        show_label=False,
                        placeholder="Type a question and press Enter…",
                        scale=8,
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="ask")
                    stop_button = gr.Button("Stop", variant="stop", scale=1, min_width=70, elem_id="stop")
                    clear_button = gr.Button("Clear", scale=1, min_width=70, elem_id="clear")
                gr.Examples(EXAMPLES, inputs=question, label="Examples (az / ru / en)")
                with gr.Accordion("Copy the last answer with its sources (Markdown)", open=False):
                    markdown = gr.Textbox(
                        elem_id="answer-markdown", show_label=False, lines=6, interactive=False, buttons=["copy"]
                    )
            with gr.Column(scale=2, min_width=320):
                status = gr.Markdown(status_markdown(assistant), elem_id="status")
                with gr.Accordion("Filters and model", open=True):
                    language = gr.Dropdown(LANGUAGE_CHOICES, value="", label="Document language")
                    source = gr.Textbox(label="Source file or pattern", placeholder="e.g. 004_*.txt")
                    with gr.Row():
                        date_from = gr.Textbox(label="From date", placeholder="2023 or 2023-06")
                        date_to = gr.Textbox(label="To date", placeholder="2023-12-31")
                    model = gr.Dropdown(model_choices, value="", label="Chat model")
                    k = gr.Slider(
                        1, 20, value=config.answer.passages, step=1, label="Passages the answer may come from"
                    )
                with gr.Accordion("Documents", open=True):
                    upload = gr.File(
                        label=f"Add documents ({', '.join(extensions)}; up to {max_bytes / 1048576:g} MB each)",
                        file_count="multiple",
                        file_types=list(extensions),
                        elem_id="upload",
                    )
                    upload_status = gr.Markdown(elem_id="upload-status")
                    documents = gr.Dataframe(
                        headers=["File", "Title", "Date", "Lang"],
                        value=document_rows(assistant),
                        interactive=False,
                        wrap=True,
                        max_height=320,
                        column_widths=["32%", "44%", "12%", "12%"],
                        label="Indexed documents",
                        elem_id="documents",
                    )
                    with gr.Row():
                        to_remove = gr.Dropdown([], label="Remove a document", scale=3)
                        remove = gr.Button("Remove", variant="stop", scale=1)

        gr.on(
            [question.submit, send.click],
            respond,
            [question, chatbot, turns, model, k, language, source, date_from, date_to],
            [chatbot, turns, markdown, question],
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
            trigger_mode="once",  # one answer at a time per tab; a second Enter while one runs is ignored
            show_progress="minimal",
        )
        # Not queued: Stop and Clear must act at once, also when every worker is busy answering.
        stop_button.click(stop, None, None, queue=False)
        clear_button.click(clear, None, [chatbot, turns, markdown], queue=False)
        side_outputs = [status, documents, to_remove]
        # Indexing runs under its own concurrency id, so the chat keeps answering while a file is indexed.
        upload.upload(
            add_documents,
            [upload, model],
            [upload_status, *side_outputs, upload],
            concurrency_limit=1,
            concurrency_id="index",
        )
        remove.click(delete_document, [to_remove, model], [upload_status, *side_outputs], concurrency_id="index")
        model.change(lambda m: status_markdown(assistant, m or None), model, status, queue=False)
        ui.load(side_panel, model, side_outputs)
    return ui


# -- start -------------------------------------------------------------------------------------------------------


class StartupError(Exception):
    """The app refuses to start; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def launch_settings(
    host: str | None, port: int | None, auth: str | None, environ: Mapping[str, str]
) -> tuple[str, int, tuple[str, str] | None]:
    """(host, port, credentials) from the flags, else the environment, else the safe defaults.

    Listening on anything but the loopback address requires credentials: otherwise anyone on the network could
    read, add and delete documents."""
    host = host or environ.get(HOST_ENV) or DEFAULT_HOST
    if port is None:
        raw = environ.get(PORT_ENV) or str(DEFAULT_PORT)
        try:
            port = int(raw)
        except ValueError:
            raise StartupError(f"{PORT_ENV}={raw!r} is not a port number.") from None
    if not 0 < port < 65536:
        raise StartupError(f"Port {port} is out of range (1-65535).")
    credentials = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise StartupError("--auth must look like USER:PASSWORD, both non-empty.")
        credentials = (user, password)
    elif environ.get(USER_ENV) or environ.get(PASSWORD_ENV):
        if not (environ.get(USER_ENV) and environ.get(PASSWORD_ENV)):
            raise StartupError(f"Set both {USER_ENV} and {PASSWORD_ENV}, or neither.")
        credentials = (environ[USER_ENV], environ[PASSWORD_ENV])
    if not is_loopback(host) and credentials is None:
        raise StartupError(
            f"Refusing to listen on {host} without a password: anyone who can reach this machine could read, add "
            f"and delete your documents. Set {USER_ENV} and {PASSWORD_ENV} (or pass --auth USER:PASSWORD), or "
            f"listen on {DEFAULT_HOST}."
        )
    return host, port, credentials


def warm_up(assistant: rag.Assistant, started: float) -> None:
    """Load the embedding and chat models in the background, so the page is up at once and the first
    question does not pay for loading them."""
    try:
        assistant.embedder  # noqa: B018 - the property loads the model
        assistant.generator()
    except rag.RagError as exc:
        print(f"warning: {exc}", file=sys.stderr, flush=True)
        return
    print(f"Models loaded {time.perf_counter() - started:.1f} s after start: ready to answer.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the news assistant in the browser.")
    parser.add_argument("--config", help="config file (default: ./config.toml)")
    parser.add_argument("--corpus", help="folder of documents (overrides [corpus] path)")
    parser.add_argument("--index", help="index folder (overrides [index] path)")
    parser.add_argument("--model", help='chat model: "quality", "fast", "test" or a .gguf file ([generation] model)')
    parser.add_argument("--build", action="store_true", help="bring the index up to date before starting")
    parser.add_argument("--host", help=f"address to listen on (default: ${HOST_ENV} or {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port (default: ${PORT_ENV} or {DEFAULT_PORT})")
    parser.add_argument("--auth", help=f"USER:PASSWORD required to open the app (or ${USER_ENV} / ${PASSWORD_ENV})")
    args = parser.parse_args(argv)
    try:
        host, port, credentials = launch_settings(args.host, args.port, args.auth, os.environ)
        config = rag.load_config(args.config, corpus=args.corpus, index=args.index)
        if args.model:
            config = config.with_overrides(generation={"model": args.model})
        assistant = rag.Assistant(config)
        if args.build:
            print(build_summary_text(assistant.build_index()), flush=True)
        assistant.index()  # fail now, with the fix in the message, rather than on the first question
    except (StartupError, rag.RagError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _, max_bytes = upload_limits(config)
    ui = build_ui(assistant)  # before the warm-up, which holds the Assistant's lock while a model loads
    threading.Thread(target=warm_up, args=(assistant, STARTED), daemon=True).start()
    ui.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        auth=credentials,
        theme=THEME,
        css=CSS,
        ssr_mode=False,  # server-side rendering would need Node; the plain page needs nothing else
        show_error=True,
        max_file_size=max_bytes,  # refused by Gradio before the upload is written to its temporary folder
        mcp_server=False,
        pwa=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
