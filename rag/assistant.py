"""The one object that composes the steps: it loads models once and reuses them for every call.

`rag.search`, `rag.build_index`, the CLI and the app all go through an Assistant.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import corpus_files, grounding, indexer, retrieval, store
from .config import Config, load_config
from .conversation import conversation_language, standalone_question
from .corpus_files import FileData, SavedFile
from .decision import closest_matches, decide
from .errors import DocumentRejected, IndexLoadError, IndexMismatchError, RagError
from .evidence import EvidenceModel, select_evidence
from .instructions import InstructionScreen
from .language import detect_language
from .models import translates
from .prompts import translate_messages
from .question import ANSWER_LANGUAGES, Question, answer_language
from .retrieval import Filters
from .types import AddedDocument, Answer, BuildSummary, CorpusUpdate, Evidence, Hit, RejectedFile, StreamEvent


class Assistant:
    """Search (and, later, answer) over one corpus and its index.

    >>> assistant = Assistant(load_config())
    >>> hits = assistant.search("What did Uzbekistan say about territorial integrity?", k=3)
    """

    def __init__(
        self,
        config: Config | str | Path | dict | None = None,
        *,
        embedder: object | None = None,
        generator: object | None = None,
    ):
        self.config = config if isinstance(config, Config) else load_config(config)
        self._embedder = embedder  # tests pass a fast fake with the same methods
        self._generators: dict[str, object] = {}
        if generator is not None:
            self._generators[self._generator_key(None)] = generator
        self._data: store.IndexData | None = None
        self._evidence_model: EvidenceModel | None = None
        self._instruction_screen: InstructionScreen | None = None
        self._lock = threading.RLock()
        # One change of the corpus folder at a time in this process: its files are saved (or deleted) and indexed
        # together, and a failed index update takes back the files saved for it, not another thread's.
        self._corpus_lock = threading.Lock()

    # -- models -----------------------------------------------------------------------------------------------
    @property
    def embedder(self):
        with self._lock:
            if self._embedder is None:
                from .embeddings import Embedder

                self._embedder = Embedder(self.config.models)
            return self._embedder

    def _generator_key(self, model: str | None) -> str:
        gen = self.config.generation
        return f"server:{gen.server_url}:{gen.server_model}" if gen.server_url else (model or gen.model)

    def generator(self, model: str | None = None):
        """The chat model ("fast", "quality", "test", a .gguf path, or the configured server), loaded once."""
        key = self._generator_key(model)
        with self._lock:
            if key not in self._generators:
                from .generation import make_generator

                self._generators[key] = make_generator(self.config.generation, self.config.models.cache, model)
            return self._generators[key]

    def _fingerprint(self) -> str:
        if self._embedder is not None:
            return self._embedder.fingerprint
        return indexer.configured_model_fingerprint(self.config)

    # -- index ------------------------------------------------------------------------------------------------
    def build_index(self, *, rebuild: bool = False, warn: Callable[[str], None] | None = None) -> BuildSummary:
        """Bring the index up to date with the corpus folder; only changed files are embedded again."""
        summary = indexer.build(self.config, lambda: self.embedder, self._fingerprint(), rebuild=rebuild, warn=warn)
        with self._lock:
            self._data = None  # the next search picks up the new generation
        return summary

    # -- documents --------------------------------------------------------------------------------------------
    def add_document(self, name: str, data: FileData) -> AddedDocument:
        """Put one document into the corpus folder and index it; raises DocumentRejected, keeping nothing, when
        it is refused (see add_documents).

        >>> assistant.add_document("report.txt", Path("~/Downloads/report.txt").expanduser())
        """
        with self._corpus_lock:
            saved = corpus_files.save_file(data, name, self.config.corpus.path, *corpus_files.limits(self.config))
            update = self._index_saved([saved], [])
        if update.rejected:
            raise DocumentRejected(update.rejected[0].reason)
        return update.added[0]

    def add_documents(self, files: Iterable[tuple[str, FileData]]) -> CorpusUpdate:
        """Put documents into the corpus folder, then bring the index up to date once for all of them.

        `files` are (name, data) pairs: data is the bytes, a pathlib.Path or an open binary file. Each is saved
        under a plain name made from `name`, never over an existing document (a "-2", "-3", ... suffix instead).
        A file of a type not in [corpus] extensions, empty, over [corpus] max_file_mb or that the index cannot
        read is listed in `rejected` and leaves nothing behind; the others go in. When the index update fails,
        the files saved for it are deleted again and the error is raised: nothing was added."""
        extensions, max_bytes = corpus_files.limits(self.config)
        with self._corpus_lock:
            saved: list[SavedFile] = []
            rejected: list[RejectedFile] = []
            try:
                for name, data in files:
                    try:
                        saved.append(corpus_files.save_file(data, name, self.config.corpus.path, extensions, max_bytes))
                    except DocumentRejected as exc:
                        rejected.append(RejectedFile(name, str(exc)))
            except BaseException:  # data of the wrong kind, an interrupt: the files saved so far go too
                _discard(saved)
                raise
            return self._index_saved(saved, rejected)

    def remove_document(self, name: str) -> BuildSummary:
        """Delete a document's file from the corpus folder (`name` as search results show it, e.g. "2023/a.txt")
        and update the index, so it is never found again. Raises DocumentNotFound when there is no such file,
        DocumentRejected for a name outside the corpus folder or of a type the index does not read."""
        extensions, _ = corpus_files.limits(self.config)
        with self._corpus_lock:
            corpus_files.delete_file(name, self.config.corpus.path, extensions)
            return self.build_index()

    def remove_documents(self, names: Iterable[str]) -> CorpusUpdate:
        """Delete several documents' files, then update the index once; a name that cannot be removed is listed
        in `rejected` and the others still go."""
        extensions, _ = corpus_files.limits(self.config)
        with self._corpus_lock:
            removed, rejected = [], []
            for name in names:
                try:
                    corpus_files.delete_file(name, self.config.corpus.path, extensions)
                    removed.append(name)
                except DocumentRejected as exc:
                    rejected.append(RejectedFile(name, str(exc)))
            summary = self.build_index() if removed else None
        return CorpusUpdate(removed=tuple(removed), rejected=tuple(rejected), summary=summary)

    def _index_saved(self, saved: list[SavedFile], rejected: list[RejectedFile]) -> CorpusUpdate:
        """Index the files just saved; a file the build could not read is deleted again and rejected, since it
        would only be skipped at every later build."""
        if not saved:
            return CorpusUpdate(rejected=tuple(rejected))
        try:
            summary = self.build_index()
        except BaseException:
            _discard(saved)
            raise
        unreadable = {skipped.source: skipped.reason for skipped in summary.skipped}
        manifest = store.read_manifest(Path(self.config.index.path)) or {"files": {}}
        added = []
        for file in saved:
            source = file.path.name  # saved files lie at the top of the corpus folder
            if source in unreadable:
                file.path.unlink(missing_ok=True)
                reason = unreadable[source].rstrip(". ")
                rejected.append(
                    RejectedFile(file.original, f"{file.original!r} was not added: it could not be read ({reason}).")
                )
                continue
            passages = manifest["files"].get(source, {}).get("passages", 0)
            added.append(AddedDocument(source, file.original, file.renamed, passages, file.message()))
        return CorpusUpdate(added=tuple(added), rejected=tuple(rejected), summary=summary)

    def index(self) -> store.IndexData:
        """The index in use, reloaded when a build (here or in another process) switched generations."""
        index_dir = Path(self.config.index.path)
        with self._lock:
            folder = store.current_generation(index_dir)
            if folder is None:
                raise IndexLoadError(
                    f"There is no index in {index_dir} yet. Build it with `python -m rag index` "
                    f"(it indexes {self.config.corpus.path})."
                )
            if self._data is None or self._data.folder != folder:
                data = store.load(index_dir)
                assert data is not None
                built_with = data.manifest.get("settings", {}).get("model", {}).get("fingerprint")
                if built_with != self._fingerprint():
                    raise IndexMismatchError(
                        f"The index in {index_dir} was built with another embedding model or backend "
                        f"({data.manifest['settings']['model'].get('name')!r}, {_backend_of(built_with)}) than "
                        f"the one configured ({self.config.models.embedding!r}, {self.config.models.backend}); its "
                        "vectors cannot be searched with this model. Run `python -m rag index --rebuild`, or set "
                        "[models] embedding and backend back to what the index was built with."
                    )
                data.engine.ef_search = self.config.index.hnsw_ef_search
                self._data = replace(data, centroids=self._language_means(data, built_with))
            return self._data

    def _language_means(self, data: store.IndexData, model_fingerprint: str) -> dict:
        """The index's per-language mean vectors, shrunk towards the shipped prior (retrieval.language_means)."""
        return retrieval.language_means(
            data.centroids,
            {lang: len(rows) for lang, rows in data.rows_by_lang.items()},
            Counter(doc.lang for doc in data.documents),
            retrieval.language_offsets(model_fingerprint),
            self.config.retrieval.language_prior_documents,
        )

    # -- search -----------------------------------------------------------------------------------------------
    def question(self, text: str, *, asked: str = "", reply_lang: str | None = None) -> Question:
        """`text` (already cleaned) as a Question: its language, its answer language and its vectors, computed
        once. The vectors include, per language, the question with its acronyms written that language's way
        (OIC -> İƏT), as the corpus's own definitions link them at build time: see aliases.py."""
        aliases = self.index().aliases
        variants = aliases.query_variants(text)
        vectors = self.embedder.encode_queries([text, *variants.values()])
        lang = detect_language(text)
        return Question(
            text=text,
            lang=lang,
            answer_lang=reply_lang or (lang if lang in ANSWER_LANGUAGES else "en"),
            vector=vectors[0],
            variants=dict(zip(variants, vectors[1:], strict=True)),
            asked=asked or text,
            equivalents=aliases.equivalents(text),
        )

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        lang: str | None = None,
        source: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> list[Hit]:
        """Passages that best answer `query`, best first, from any language of the corpus."""
        query = retrieval.validate_query(query)
        k = _passage_count(k, self.config.retrieval.k)
        filters = Filters(lang=lang, source=source, date_from=date_from, date_to=date_to)
        return self._search(self.question(query), k, filters)

    def _search(self, question: Question, k: int, filters: Filters) -> list[Hit]:
        data = self.index()
        return retrieval.search(
            data,
            question.vector,
            question.text,
            k,
            self.config.retrieval,
            filters,
            query_lang=question.lang,
            variant_vectors=question.variants,
            lexical_terms=data.aliases.lexical_terms(question.text),
        )

    def stats(self) -> dict:
        """What the index holds: documents, passages, languages, size on disk, model, when it was built."""
        index_dir = Path(self.config.index.path)
        manifest = store.read_manifest(index_dir)
        if manifest is None:
            raise IndexLoadError(f"There is no index in {index_dir} yet. Build it with `python -m rag index`.")
        folder = store.current_generation(index_dir)
        assert folder is not None
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        return {
            "documents": manifest["documents"],
            "passages": manifest["passages"],
            "languages": manifest.get("languages", {}),
            "index_bytes": size,
            "index_type": manifest.get("index_type"),
            "engine": _engine_description(manifest.get("engine", {"kind": "faiss"})),
            "model": manifest["settings"]["model"]["name"],
            "model_fingerprint": manifest["settings"]["model"]["fingerprint"],
            "chunking": manifest["settings"]["chunking"],
            "built": manifest.get("created"),
            "index": str(index_dir),
            "corpus": str(self.config.corpus.path),
        }

    # -- answers ----------------------------------------------------------------------------------------------
    def answer(self, question: str, history: list[dict] | None = None, **options) -> Answer:
        """A short answer in the question's language, every sentence backed by a cited passage, or a refusal.

        Options: model ("fast", "quality", a .gguf path), k (passages), lang / source / date_from / date_to
        (document filters), reply_lang (answer language, default: the question's, or for a follow-up of one or two
        words the conversation's), cancel (threading.Event).
        """
        final = None
        for event in self.stream(question, history, **options):
            if event.kind == "answer":
                final = event.answer
        assert final is not None
        return final

    def stream(
        self,
        question: str,
        history: list[dict] | None = None,
        *,
        model: str | None = None,
        k: int | None = None,
        lang: str | None = None,
        source: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        reply_lang: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[StreamEvent]:
        """Like `answer`, yielding StreamEvents: "rewrite", "queued", "token"s (a translation as it is written),
        then the final "answer"."""
        started = time.perf_counter()
        asked = retrieval.validate_query(question, self.config.answer.max_question_chars)
        passages = _passage_count(k, self.config.answer.passages)
        if reply_lang is not None and reply_lang not in ANSWER_LANGUAGES:
            raise ValueError(
                f"reply_lang must be one of {', '.join(ANSWER_LANGUAGES)}, or None for the question's language; "
                f"got {reply_lang!r}."
            )
        history = _clean_history(history)
        settings = self.config.answer
        generator = self.generator(model)

        standalone = asked
        if history and settings.rewrite_follow_ups:

            def generate(messages: list[dict]) -> str:
                return "".join(generator.chat(messages, max_tokens=60, temperature=0.0, cancel=cancel))

            standalone = _checked_rewrite(standalone_question(asked, history, generate), asked)
            if standalone != asked:
                yield StreamEvent("rewrite", text=standalone)

        reply_lang = reply_lang or conversation_language(asked, history)
        q = self.question(standalone, asked=asked, reply_lang=reply_lang or answer_language(asked))
        filters = Filters(lang=lang, source=source, date_from=date_from, date_to=date_to)
        # At least as many passages as the evidence model was fitted over, which scale its features; the answer
        # may only come from the first `passages`.
        hits = self._search(q, max(passages, self.evidence_model.passages), filters)
        evidence = select_evidence(
            q,
            hits,
            self.embedder.encode_passages,
            settings.evidence,
            self.evidence_model,
            screen=self.instruction_screen,
            answer_passages=passages,
        )
        decision = decide(evidence, settings.min_confidence)
        timings = {"retrieval": round(time.perf_counter() - started, 3)}
        base = dict(
            question=asked,
            lang=q.answer_lang,
            standalone_question=standalone,
            model=generator.name,
            confidence=decision.confidence,
            closest=list(closest_matches(evidence)),
        )
        if decision.action == "refuse":
            timings["total"] = round(time.perf_counter() - started, 3)
            yield StreamEvent("answer", answer=_refusal(base, hits, timings))
            return

        foreign = [item for item in decision.quotes if quote_language(item) != q.answer_lang]
        translations: dict[int, str | None] = {item.n: None for item in foreign}
        translatable = [item for item in foreign if translates(generator.name, quote_language(item), q.answer_lang)]
        if translatable and settings.translate:
            waiting = getattr(generator, "queue_length", 0)
            if waiting:
                yield StreamEvent("queued", text=str(waiting))
            others = [e.quote for e in evidence]
            for item in translatable:
                pieces = []
                reply = generator.chat(
                    translate_messages(item.quote, quote_language(item), q.answer_lang),
                    max_tokens=_translation_tokens(item.quote),
                    temperature=0.0,
                    cancel=cancel,
                )
                with contextlib.closing(reply):  # closing stops the model at once, before max_tokens
                    for piece in reply:
                        timings.setdefault("first_token", round(time.perf_counter() - started, 3))
                        # a model steered to emit escapes must not reach a terminal
                        piece = retrieval.visible_text(piece)
                        pieces.append(piece)
                        yield StreamEvent("token", text=piece)
                        if _has_translation_line("".join(pieces)):
                            break  # a translation of one sentence is one line; small models ramble on after it
                if pieces:
                    yield StreamEvent("token", text=" ")
                translation = _translation_line("".join(pieces))
                check = grounding.check_translation(
                    item.quote,
                    translation,
                    q.answer_lang,
                    [o for o in others if o != item.quote],
                    self._similarity,
                    self.evidence_model.translation_min_similarity,
                    self._word_alignment if settings.translation_min_alignment > 0 else None,
                    settings.translation_min_alignment,
                )
                translations[item.n] = translation if check.ok else None
        text, citations, mode = grounding.answer_from_quotes(decision.quotes, translations, q.answer_lang)
        timings["total"] = round(time.perf_counter() - started, 3)
        yield StreamEvent(
            "answer", answer=Answer(text=text, refused=False, citations=citations, mode=mode, timings=timings, **base)
        )

    @property
    def evidence_model(self) -> EvidenceModel:
        with self._lock:
            if self._evidence_model is None:
                self._evidence_model = EvidenceModel.load()
            return self._evidence_model

    @property
    def instruction_screen(self) -> InstructionScreen:
        """What keeps sentences that address the assistant out of evidence (instructions.py), for this embedder."""
        with self._lock:
            if self._instruction_screen is None:
                self._instruction_screen = InstructionScreen.for_embedder(self.embedder.fingerprint)
            return self._instruction_screen

    def _word_alignment(self, text: str, translation: str) -> float:
        """How well the tokens of a text and of its translation line up (grounding.word_alignment)."""
        first, second = self.embedder.passage_token_vectors([text, translation])
        return grounding.word_alignment(first, second)

    def _similarity(self, texts: list[str], others: list[str]) -> np.ndarray:
        """Cosine of each text with each other text, both encoded as passages (a translation and its quote)."""
        return self.embedder.encode_passages(texts) @ self.embedder.encode_passages(others).T


def _discard(saved: list[SavedFile]) -> None:
    """Take back files saved for an index update that did not happen."""
    for file in saved:
        file.path.unlink(missing_ok=True)


def quote_language(item: Evidence) -> str:
    """The language of an evidence sentence: its document's, unless the sentence itself is long enough to tell
    and is clearly in another of the answer languages (a quoted statement in an article)."""
    if len(item.quote.split()) >= 6:
        detected = detect_language(item.quote)
        if detected in ANSWER_LANGUAGES:
            return detected
    return item.hit.lang


def _translation_line(reply: str) -> str:
    """The translation in the model's reply, whitespace normalised; nothing when the model only announced it
    ("Here is the translation:"), which then fails the check."""
    lines = [" ".join(line.split()) for line in reply.splitlines()]
    lines = [line for line in lines if line and not line.endswith(":")]
    return lines[0].strip("\"'«»“”") if lines else ""


def _has_translation_line(reply: str) -> bool:
    """Whether the reply so far holds a finished line that `_translation_line` takes. Not simply the first line
    break: small models often announce first ("Вот перевод текста на русский язык:"), then translate."""
    finished, newline, _ = reply.rpartition("\n")
    return bool(newline) and bool(_translation_line(finished))


def _translation_tokens(quote: str) -> int:
    """Room for the translation of one sentence: about one token per three characters, and some slack."""
    return min(300, len(quote) // 3 + 24)


def _clean_history(history: list[dict] | None) -> list[dict]:
    """The conversation as the rewrite prompt may see it: each turn cleaned like a question, so on one line (a
    line break in a turn could pass for a new "User:" line of the prompt)."""
    return [
        {**turn, "content": retrieval.clean_question(str(turn.get("content", "")))}
        for turn in history or []
        if isinstance(turn, dict)
    ]


def _checked_rewrite(rewrite: str, question: str) -> str:
    """The model's standalone question, cleaned like any question; the question itself when nothing of the
    rewrite is left (the model wrote only signs), so search never fails on the model's words."""
    try:
        return retrieval.validate_query(rewrite)
    except RagError:
        return question


def _passage_count(k: object, default: int) -> int:
    """`k` as a number of passages: the default when None, else a whole number of at least 1."""
    if k is None:
        return default
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, got {k!r}.")
    return int(k)


def _refusal(base: dict, hits: list[Hit], timings: dict) -> Answer:
    # The passages of the closest sentences, best first; the best passages when no sentence was usable.
    related = list({(e.hit.source, e.hit.start): e.hit for e in base["closest"]}.values()) or hits[:3]
    return Answer(
        text=grounding.refusal(base["lang"]),
        refused=True,
        citations=[],
        related=related,
        mode="refused",
        timings=timings,
        **base,
    )


def _backend_of(fingerprint: str | None) -> str:
    """The weights an index's model fingerprint records (embeddings.backend_fingerprint): int8 or fp32."""
    return fingerprint.rsplit("+", 1)[1] if fingerprint and "+" in fingerprint else "fp32: torch or onnx"


def _engine_description(engine: dict) -> str:
    if engine.get("kind") == "milvus":
        return f"milvus ({engine['collection']} at {engine['uri']})"
    return "faiss (files in the index folder)"
