"""The browser app: a thin Gradio layer over rag.Assistant (no retrieval logic lives here).

python app.py [--config FILE] [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import argparse
import html
import sys

import gradio as gr

import rag

EXAMPLES = [
    "What did Uzbekistan say about territorial integrity?",
    "Blinken İlham Əliyevə hansı tarixdə zəng edib?",
    "С каким министром Кыргызстана встретился Байрамов?",
]
LANGUAGES = {"all": None, "Azərbaycan": "az", "Русский": "ru", "English": "en"}


def render_hits(hits: list[rag.Hit]) -> str:
    if not hits:
        return "No passages found."
    blocks = []
    for n, hit in enumerate(hits, 1):
        date = f" · {html.escape(hit.date)}" if hit.date else ""
        blocks.append(
            f"**[{n}] {html.escape(hit.title)}**  \n"
            f"`{html.escape(hit.source)}` · {hit.lang}{date} · characters {hit.start}–{hit.end}\n\n"
            f"> {html.escape(hit.text)}"
        )
    return "\n\n---\n\n".join(blocks)


def build_ui(assistant: rag.Assistant) -> gr.Blocks:
    def search(question: str, k: int, language: str) -> str:
        try:
            return render_hits(assistant.search(question, int(k), lang=LANGUAGES.get(language)))
        except rag.RagError as exc:
            return f"**{html.escape(str(exc))}**"

    with gr.Blocks(title="News assistant", analytics_enabled=False) as ui:
        gr.Markdown("## News assistant\nAsk in Azerbaijani, Russian or English; passages come from any language.")
        with gr.Row():
            question = gr.Textbox(label="Question", placeholder=EXAMPLES[0], scale=4)
            k = gr.Slider(1, 20, value=assistant.config.retrieval.k, step=1, label="Passages", scale=1)
            language = gr.Dropdown(list(LANGUAGES), value="all", label="Document language", scale=1)
        button = gr.Button("Search", variant="primary")
        results = gr.Markdown()
        gr.Examples(EXAMPLES, inputs=question)
        button.click(search, [question, k, language], results)
        question.submit(search, [question, k, language], results)
    return ui


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the news assistant in the browser.")
    parser.add_argument("--config", help="config file (default: ./config.toml)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    try:
        assistant = rag.Assistant(rag.load_config(args.config))
        assistant.index()  # fail now, with the fix in the message, rather than on the first question
    except rag.RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    build_ui(assistant).launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
