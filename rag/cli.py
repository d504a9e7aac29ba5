"""Command line: a thin shell over the library. Reads arguments, calls rag, prints text or JSON.

    python -m rag index [--corpus DIR] [--index DIR] [--rebuild] [--ray [ADDRESS]] [--ray-workers N]
    python -m rag add FILE... [--json]
    python -m rag remove NAME... [--json]
    python -m rag search "question" [--k N] [--lang az] [--source GLOB] [--from DATE] [--to DATE] [--json]
    python -m rag ask "question" [--json] [--model fast|quality|PATH] [--lang az] [--reply-in ru]
    python -m rag eval FILE [--model ...] [--limit N] [--report PATH]
    python -m rag models [NAME ...] [--verify]
    python -m rag stats [--json]
    python -m rag serve [--host 127.0.0.1] [--port 8000] [--collection NAME=CONFIG ...] [--api-key KEY]

Every command takes --config FILE. Errors end with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from . import Assistant, BuildSummary, CorpusUpdate, RagError, load_config


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="config file (default: ./config.toml)")
    common.add_argument("--corpus", metavar="DIR", help="folder of documents (overrides [corpus] path)")
    common.add_argument("--index", metavar="DIR", help="index folder (overrides [index] path)")

    parser = argparse.ArgumentParser(prog="rag", description="Offline multilingual news question answering.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("index", parents=[common], help="index the corpus folder (incremental)")
    p.add_argument("--rebuild", action="store_true", help="rebuild from scratch (after a settings change)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="read, chunk and embed with Ray: a local Ray without ADDRESS, else the cluster at ADDRESS "
        "(overrides [index] ray_address; pip install '.[ray]')",
    )
    p.add_argument("--ray-workers", type=_positive, metavar="N", help="Ray workers (overrides [index] ray_workers)")

    p = commands.add_parser("add", parents=[common], help="copy documents into the corpus folder and index them")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to add (a type in [corpus] extensions)")
    p.add_argument("--json", action="store_true", help="print what was added and the index summary as JSON")

    p = commands.add_parser("remove", parents=[common], help="delete documents from the corpus folder and the index")
    p.add_argument("names", nargs="+", metavar="NAME", help="documents as search shows them, e.g. 2023/report.txt")
    p.add_argument("--json", action="store_true", help="print what was removed and the index summary as JSON")

    p = commands.add_parser("search", parents=[common], help="search the index")
    p.add_argument("query", help="the question or keywords, in any language")
    p.add_argument("--k", type=_positive, default=None, help="number of passages (default: [retrieval] k)")
    p.add_argument("--lang", help="only documents in these languages, e.g. az or az,ru")
    p.add_argument("--source", help="only these documents: a file path or a glob, e.g. '2023/*.txt'")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="only documents dated on/after DATE")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="only documents dated on/before DATE")
    p.add_argument("--json", action="store_true", help="print hits as JSON")

    p = commands.add_parser("ask", parents=[common], help="answer a question from the documents, with citations")
    p.add_argument("question", help="the question, in Azerbaijani, Russian or English")
    p.add_argument("--model", help="fast, quality, test or a .gguf path (default: [generation] model)")
    p.add_argument("--k", type=_positive, default=None, help="passages to retrieve (default: [answer] passages)")
    p.add_argument("--lang", help="only documents in these languages, e.g. az or az,ru")
    p.add_argument("--source", help="only these documents: a file path or a glob")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="only documents dated on/after DATE")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="only documents dated on/before DATE")
    p.add_argument("--reply-in", dest="reply_lang", choices=["az", "ru", "en"], help="answer language")
    p.add_argument("--json", action="store_true", help="print the answer and its citations as JSON")

    p = commands.add_parser("eval", parents=[common], help="run a question set and report quality and latency")
    p.add_argument("file", help="JSONL like ../shared/eval/seeds_dev.jsonl, or an XQuAD JSON file")
    p.add_argument("--model", help="fast, quality, test or a .gguf path (default: [generation] model)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N questions")
    p.add_argument("--paragraphs-from", metavar="FILE", help="XQuAD: take paragraphs from another language file")
    p.add_argument("--report", metavar="PATH", help="where to write the JSON report (default: bench/out/)")

    p = commands.add_parser("models", parents=[common], help="prepare the models in the local cache")
    p.add_argument(
        "names",
        nargs="*",
        help="models to prepare: embedding, test, fast, quality (default: embedding)",
    )
    p.add_argument("--verify", action="store_true", help="re-hash every model file against its sha256")

    p = commands.add_parser("stats", parents=[common], help="what the index holds")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = commands.add_parser("serve", parents=[common], help="an OpenAI-compatible HTTP API (rag/server.py)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="NAME=CONFIG",
        help="a collection served as model NAME, from config file CONFIG (repeatable; default: the --config one, "
        "named after its corpus folder)",
    )
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: $RAG_API_KEY)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config, corpus=args.corpus, index=args.index)
        return _COMMANDS[args.command](cfg, args)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def _index(cfg, args) -> int:
    if args.ray or args.ray_workers:
        ray = {"ray_address": args.ray or cfg.index.ray_address or "local"}
        if args.ray_workers:
            ray["ray_workers"] = args.ray_workers
        cfg = dataclasses.replace(cfg, index=dataclasses.replace(cfg.index, **ray))
    summary = Assistant(cfg).build_index(rebuild=args.rebuild, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        return 0
    _print_summary(summary)
    return 0


def _print_summary(summary: BuildSummary) -> None:
    what = "rebuilt" if summary.rebuilt else "updated"
    print(
        f"Index {what} in {summary.seconds:.1f} s: {summary.documents} documents, {summary.passages} passages "
        f"({len(summary.added)} added, {len(summary.changed)} changed, {len(summary.removed)} removed, "
        f"{summary.unchanged} unchanged; {summary.embedded_passages} passages embedded)."
    )
    for skipped in summary.skipped:
        print(f"  skipped {skipped.source}: {skipped.reason}")
    if summary.other_file_types:
        counts = ", ".join(f"{n} {ext}" for ext, n in summary.other_file_types.items())
        print(f"  not read (other file types): {counts}; add a type to [corpus] extensions if it holds text.")


def _add(cfg, args) -> int:
    return _print_update(Assistant(cfg).add_documents((Path(f).name, Path(f)) for f in args.files), args.json)


def _remove(cfg, args) -> int:
    return _print_update(Assistant(cfg).remove_documents(args.names), args.json)


def _print_update(update: CorpusUpdate, as_json: bool) -> int:
    """What was added or removed and the index summary; each refused file on stderr, and exit code 1 if any."""
    if as_json:
        print(json.dumps(update.to_dict(), ensure_ascii=False, indent=2))
    else:
        for added in update.added:
            print(f"{added.message} {added.passages} passage{'s' if added.passages != 1 else ''} indexed.")
        for name in update.removed:
            print(f"Removed {name!r}.")
        if update.summary is not None:
            _print_summary(update.summary)
    for rejected in update.rejected:
        print(f"error: {rejected.reason}", file=sys.stderr)
    return 1 if update.rejected else 0


def _search(cfg, args) -> int:
    assistant = Assistant(cfg)
    hits = assistant.search(
        args.query, args.k, lang=args.lang, source=args.source, date_from=args.date_from, date_to=args.date_to
    )
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print(_nothing_found(assistant, args))
    for n, hit in enumerate(hits, 1):
        date = f", {hit.date}" if hit.date else ""
        print(f"[{n}] {hit.title} ({hit.source}, {hit.lang}{date}) score {hit.score:.4f} chars {hit.start}-{hit.end}")
        print(textwrap.indent(textwrap.fill(hit.text, width=100), "    "))
    return 0


def _nothing_found(assistant: Assistant, args) -> str:
    """Why a search found nothing: an empty index, or filters that leave no document (a mistyped language code)."""
    held = assistant.stats()["languages"]
    if not held:
        return "No passages found: the index is empty. Add documents to the corpus folder, then `python -m rag index`."
    used = _filters_used(args)
    if not used:
        return "No passages found."
    languages = ", ".join(
        f"{lang} ({count} document{'s' if count != 1 else ''})" for lang, count in sorted(held.items())
    )
    return f"No passages found with {' '.join(used)}. The index holds documents in: {languages}."


def _filters_used(args) -> list[str]:
    """The filter options given, as typed: ["--lang xx", "--from 2023"]."""
    return [f"--{name} {value}" for name, value in (("lang", args.lang), ("source", args.source),
            ("from", args.date_from), ("to", args.date_to)) if value]  # fmt: skip


def _ask(cfg, args) -> int:
    assistant = Assistant(cfg)
    options = dict(
        model=args.model,
        k=args.k,
        lang=args.lang,
        source=args.source,
        date_from=args.date_from,
        date_to=args.date_to,
        reply_lang=args.reply_lang,
    )
    if args.json:
        print(json.dumps(assistant.answer(args.question, **options).to_dict(), ensure_ascii=False, indent=2))
        return 0
    streamed = False
    for event in assistant.stream(args.question, **options):
        if event.kind == "rewrite":
            print(f"(searching for: {event.text})", file=sys.stderr)
        elif event.kind == "token" and sys.stdout.isatty():
            # The draft streams so the wait is visible; the verified answer replaces it below.
            print(event.text, end="", flush=True, file=sys.stderr)
            streamed = True
        elif event.kind == "answer":
            if streamed:
                print("\r\033[K", end="", file=sys.stderr)
            print(event.answer.to_markdown(), end="")
            if event.answer.refused and not event.answer.related and _filters_used(args):
                sys.stdout.flush()  # the note follows the answer, also when both go to one terminal
                print(f"note: {_nothing_found(assistant, args)}", file=sys.stderr)
    return 0


def _eval(cfg, args) -> int:
    from . import evaluation

    path = Path(args.file)
    paragraphs_from = Path(args.paragraphs_from) if args.paragraphs_from else None
    items, corpus_dir = evaluation.load_items(path, paragraphs_from=paragraphs_from)
    if corpus_dir is not None:
        # A question set with its own paragraphs gets its own corpus and index, never the configured ones.
        cfg = load_config(cfg, corpus=corpus_dir, index=corpus_dir.parent / "index")
    assistant = Assistant(cfg)
    assistant.build_index(warn=lambda m: print(f"warning: {m}", file=sys.stderr))

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} questions", end="" if done < total else "\n", file=sys.stderr, flush=True)

    report = evaluation.run_eval(assistant, items, model=args.model, limit=args.limit, progress=progress, file=path)
    out = Path(args.report) if args.report else Path("bench/out") / f"eval-{path.stem}.json"
    evaluation.write_report(report, out)
    print(evaluation.format_report(report))
    print(f"report: {out}")
    return 0


def _models(cfg, args) -> int:
    from .models import prepare_models

    names = args.names or ["embedding"]
    paths = prepare_models(cfg.models.cache, names, verify=args.verify, backend=cfg.models.backend)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _stats(cfg, args) -> int:
    stats = Assistant(cfg).stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    langs = ", ".join(f"{k} {v}" for k, v in sorted(stats["languages"].items()))
    print(f"documents   {stats['documents']}")
    print(f"passages    {stats['passages']}")
    print(f"languages   {langs}")
    print(f"index size  {stats['index_bytes'] / 1e6:.1f} MB ({stats['index_type']}) in {stats['index']}")
    print(f"engine      {stats['engine']}")
    print(f"model       {stats['model']} ({stats['model_fingerprint']})")
    print(f"chunking    {stats['chunking']}")
    print(f"built       {stats['built']}")
    return 0


def _serve(cfg, args) -> int:
    import os

    from .server import check_binding, serve

    api_key = args.api_key or os.environ.get("RAG_API_KEY") or None
    check_binding(args.host, api_key)  # before any model loads: a refused address fails at once
    collections = {}
    for spec in args.collection:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise RagError(f"--collection {spec!r}: expected NAME=CONFIG, e.g. --collection news=config.toml.")
        if name in collections:
            raise RagError(f"--collection {name!r} is given twice; each collection needs its own name.")
        collections[name.strip()] = Assistant(load_config(path.strip()))
    if not collections:
        collections[Path(cfg.corpus.path).name or "default"] = Assistant(cfg)
    for name, assistant in collections.items():
        assistant.index()  # a missing or mismatched index is said now, not at the first request
        print(f"collection {name!r}: {assistant.config.corpus.path}", file=sys.stderr)
    serve(collections, args.host, args.port, api_key)
    return 0


_COMMANDS = {
    "index": _index,
    "add": _add,
    "remove": _remove,
    "search": _search,
    "ask": _ask,
    "eval": _eval,
    "models": _models,
    "stats": _stats,
    "serve": _serve,
}

if __name__ == "__main__":
    sys.exit(main())
