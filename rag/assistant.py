"""The one object that composes the steps: it loads models once and reuses them for every call.

`rag.search`, `rag.build_index`, the CLI and the app all go through an Assistant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from . import grounding, indexer, retrieval, store
from .config import Config, load_config
from .conversation import standalone_question
from .errors import IndexLoadError, IndexMismatchError, RagError
from .evidence import select_evidence
from .language import detect_language
from .lexical import tokenize
from .prompts import answer_messages
from .retrieval import Filters
from .types import Answer, BuildSummary, Hit, StreamEvent

ANSWER_LANGUAGES = ("az", "ru", "en")


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
        self._lock = threading.RLock()

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
                        f"The index in {index_dir} was built with another embedding model "
                        f"({data.manifest['settings']['model'].get('name')!r}) than the one configured "
                        f"({self.config.models.embedding!r}); its vectors cannot be searched with this model. "
                        "Run `python -m rag index --rebuild`."
                    )
                self._data = data
            return self._data

    # -- search -----------------------------------------------------------------------------------------------
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
        k = self.config.retrieval.k if k is None else int(k)
        if k < 1:
            raise ValueError("k must be at least 1.")
        data = self.index()
        vector, variants = self._encode_question(query)
        filters = Filters(lang=lang, source=source, date_from=date_from, date_to=date_to)
        return retrieval.search(
            data,
            vector,
            query,
            k,
            self.config.retrieval,
            filters,
            query_lang=detect_language(query),
            variant_vectors=variants,
            lexical_terms=data.aliases.lexical_terms(query),
        )

    def _encode_question(self, question: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The question's vector, and per language the vector of the question with its acronyms written that
        language's way (OIC -> İƏT), as the corpus's own definitions link them at build time: see aliases.py."""
        variants = self.index().aliases.query_variants(question)
        vectors = self.embedder.encode_queries([question, *variants.values()])
        return vectors[0], dict(zip(variants, vectors[1:], strict=True))

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
        (document filters), reply_lang (answer language, default: the question's), cancel (threading.Event).
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
        """Like `answer`, yielding StreamEvents: "rewrite", "queued", "token"s, then the final "answer"."""
        started = time.perf_counter()
        question = retrieval.validate_query(question, self.config.answer.max_question_chars)
        history = _clean_history(history)
        answer_lang = reply_lang or _answer_language(question)
        settings = self.config.answer
        generator = self.generator(model)
        generation = self.config.generation

        def generate(messages: list[dict]) -> str:
            return "".join(generator.chat(messages, max_tokens=60, temperature=0.0, cancel=cancel))

        standalone = question
        if history and settings.rewrite_follow_ups:
            standalone = _checked_rewrite(standalone_question(question, history, generate), question)
            if standalone != question:
                yield StreamEvent("rewrite", text=standalone)

        hits = self.search(
            standalone, k or settings.passages, lang=lang, source=source, date_from=date_from, date_to=date_to
        )
        query_vector, variants = self._encode_question(standalone)
        question_vectors = np.stack([query_vector, *variants.values()])
        evidence = select_evidence(
            standalone,
            hits,
            lambda sentences: (self.embedder.encode_passages(sentences) @ question_vectors.T).max(axis=1),
            settings.evidence,
        )
        timings = {"retrieval": round(time.perf_counter() - started, 3)}
        base = dict(question=question, lang=answer_lang, standalone_question=standalone, model=generator.name)

        if not evidence or max(e.score for e in evidence) < settings.refuse_below:
            timings["total"] = round(time.perf_counter() - started, 3)
            yield StreamEvent("answer", answer=_refusal(base, hits, timings))
            return

        waiting = getattr(generator, "queue_length", 0)
        if waiting:
            yield StreamEvent("queued", text=str(waiting))
        pieces = []
        for piece in generator.chat(
            answer_messages(standalone, answer_lang, evidence),
            max_tokens=generation.max_tokens,
            temperature=generation.temperature,
            cancel=cancel,
        ):
            if not pieces:
                timings["first_token"] = round(time.perf_counter() - started, 3)
            piece = retrieval.visible_text(piece)  # a model steered to emit escapes must not reach a terminal
            pieces.append(piece)
            yield StreamEvent("token", text=piece)
        raw = "".join(pieces)

        supported = grounding.verify(raw, evidence, None, self._support_matrix, settings.min_support)
        claims = [c for c in supported if grounding.in_language(c.text, answer_lang)]
        if claims:
            text, citations = grounding.compose(claims, evidence)
            mode = "generated"
        elif supported:
            # The model answered in the evidence's language instead of the question's (small models follow the
            # quotes' language), yet what it said is verified against that evidence: the evidence holds the
            # answer, so it is quoted, the sentences that support the model's answer first.
            text, citations = grounding.extractive(_supporting_first(evidence, supported), answer_lang)
            mode = "extractive"
        elif self._evidence_holds_answer(standalone, evidence):
            # The model's words could not be verified, or it said NOT FOUND while the evidence names everything
            # the question asks about: the evidence itself is the answer, quoted.
            text, citations = grounding.extractive(evidence, answer_lang)
            mode = "extractive"
        else:
            timings["total"] = round(time.perf_counter() - started, 3)
            yield StreamEvent("answer", answer=_refusal(base, hits, timings))
            return
        timings["total"] = round(time.perf_counter() - started, 3)
        yield StreamEvent(
            "answer", answer=Answer(text=text, refused=False, citations=citations, mode=mode, timings=timings, **base)
        )

    def _evidence_holds_answer(self, question: str, evidence: list) -> bool:
        """Whether to quote the evidence when the model's answer is unusable (or it said NOT FOUND).

        The small models' NOT FOUND is no guide (they say it for many questions the evidence answers, and the
        0.5B never says it), so the decision rests on the evidence: strong enough on its own, or at least
        naming everything the question asks about. "The Chinese foreign ministry" in a corpus without China
        is refused even when the rest of the question matches well."""
        if max(e.score for e in evidence) >= self.config.answer.quote_above:
            return True
        names = [n for n in grounding.question_names(question) if tokenize(n)]
        missing = grounding.missing_question_names(
            question, evidence, equivalents=self.index().aliases.equivalents(question)
        )
        return not names or len(missing) / len(names) < 0.5

    def _support_matrix(self, claims: list[str], quotes: list[str]) -> np.ndarray:
        """Cosine of each answer sentence (as a query) with each evidence sentence (as a passage)."""
        return self.embedder.encode_queries(claims) @ self.embedder.encode_passages(quotes).T


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


def _answer_language(question: str) -> str:
    lang = detect_language(question)
    return lang if lang in ANSWER_LANGUAGES else "en"


def _supporting_first(evidence: list, supported: list[grounding.SupportedClaim]) -> list:
    """The evidence reordered: the items supporting a claim first, in the claims' order, then the rest."""
    numbers = list(dict.fromkeys(c.evidence for c in supported))
    return sorted(evidence, key=lambda e: numbers.index(e.n) if e.n in numbers else len(numbers))


def _refusal(base: dict, hits: list[Hit], timings: dict) -> Answer:
    return Answer(
        text=grounding.refusal(base["lang"]),
        refused=True,
        citations=[],
        related=hits[:3],
        mode="refused",
        timings=timings,
        **base,
    )
