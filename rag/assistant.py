"""The one object that composes the steps: it loads models once and reuses them for every call.

`rag.search`, `rag.build_index`, the CLI and the app all go through an Assistant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from . import indexer, retrieval, store
from .config import Config, load_config
from .errors import IndexLoadError, IndexMismatchError
from .language import detect_language
from .retrieval import Filters
from .types import BuildSummary, Hit


class Assistant:
    """Search (and, later, answer) over one corpus and its index.

    >>> assistant = Assistant(load_config())
    >>> hits = assistant.search("What did Uzbekistan say about territorial integrity?", k=3)
    """

    def __init__(self, config: Config | str | Path | dict | None = None, *, embedder: object | None = None):
        self.config = config if isinstance(config, Config) else load_config(config)
        self._embedder = embedder  # tests pass a fast fake with the same methods
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
        vector = self.embedder.encode_queries([query])[0]
        filters = Filters(lang=lang, source=source, date_from=date_from, date_to=date_to)
        return retrieval.search(
            data, vector, query, k, self.config.retrieval, filters, query_lang=detect_language(query)
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
            "model": manifest["settings"]["model"]["name"],
            "model_fingerprint": manifest["settings"]["model"]["fingerprint"],
            "chunking": manifest["settings"]["chunking"],
            "built": manifest.get("created"),
            "index": str(index_dir),
            "corpus": str(self.config.corpus.path),
        }
