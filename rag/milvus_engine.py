"""The Milvus index engine: a generation's passages as one Milvus collection, searched by the engine.

`[index] engine = "milvus"`. `[index] milvus_uri` says where: a file path is Milvus Lite (the Milvus API
served from a local file, no server to install), `http://host:19530` a Milvus server or cluster. The client
code is the same for both and uses only what both support (see docs/SCALE.md for the server versions).

One collection per generation, named `<milvus_collection>_gen_<time>`, with per passage row:
  row (primary key), doc, lang, source, date_lo / date_hi   the filter fields, evaluated by Milvus
  dense                                                      the e5 vector (FLAT below [index]
                                                             approximate_above passages, HNSW above)
  lexical                                                    the passage's BM25 term weights, a sparse vector

The lexical channel is stored as weights computed here rather than with Milvus's own BM25 function, for two
measured reasons: Milvus Lite computes BM25 statistics per segment, so the same passage scores differently
by where it was written; and this project's tokeniser (Azerbaijani folding, transliteration, name keys,
lexical.py) is not one of Milvus's analysers. Weights from bm25s make the sparse inner product equal, to
float precision, to the FAISS engine's BM25 score. The cost: a corpus change re-weights every passage, which
the per-generation collection rewrites anyway.

Consistency: a build writes a new collection and a new generation folder and only then switches the index's
CURRENT pointer (store.py), so readers see the previous generation, complete, until the switch. A build that
dies midway leaves a collection no generation names; the next build drops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import IndexLoadError, RagError
from .filters import Filters, PassageRows, date_bounds, source_matches
from .lexical import LexicalIndex, query_term_counts
from .types import Document

try:
    from pymilvus import DataType, MilvusClient, MilvusException
except ImportError as exc:  # an optional extra: say how to get it, once, where it is needed
    raise RagError(
        "[index] engine = \"milvus\" needs the Milvus client: pip install '.[milvus]' (or run `make test`), "
        'or set [index] engine = "faiss".'
    ) from exc

VOCABULARY_FILE = "lexical_vocabulary.json"
INSERT_BATCH = 2000
FETCH_BATCH = 10_000
_MAX_SOURCE = 2048


def default_collection(index_dir: Path) -> str:
    """A collection prefix of its own per index folder, so two indexes sharing one Milvus never collide."""
    digest = hashlib.sha256(str(Path(index_dir).resolve()).encode()).hexdigest()[:10]
    return f"rag_{digest}"


def resolve_uri(uri: str, index_dir: Path) -> str:
    """ "" -> milvus.db in the index folder; a relative file path -> absolute; a server address unchanged."""
    if not uri:
        return str(Path(index_dir).resolve() / "milvus.db")
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


def connect(uri: str, token_env: str) -> MilvusClient:
    token = os.environ.get(token_env, "") if token_env else ""
    local = "://" not in uri
    if local:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        # Milvus Lite logs a traceback of its own when it cannot open the file; the error below says it once.
        with _quiet("milvus_lite.server_manager"):
            return MilvusClient(uri=uri, token=token)
    except MilvusException as exc:
        if local:
            raise RagError(
                f"Could not open the Milvus Lite database {uri} ({exc.message}). Milvus Lite serves one process at "
                "a time: if the app, `rag serve` or another build has it open, stop that process or index from "
                'within it; for several processes use a Milvus server ([index] milvus_uri = "http://host:19530").'
            ) from exc
        raise RagError(
            f"Could not connect to Milvus at {uri} ({exc.message}). Start the server, fix [index] milvus_uri in "
            f"config.toml, or set {token_env or 'the token variable'} if the server needs a token."
        ) from exc


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _collection_name(prefix: str, generation: str) -> str:
    return f"{prefix}_{generation.replace('-', '_')}"


class MilvusChannels:
    """Writes one generation's vectors and lexical weights into a new collection."""

    kind = "milvus"

    def __init__(
        self,
        uri: str,
        token_env: str,
        prefix: str,
        vectors: np.ndarray,
        lexical: LexicalIndex,
        documents: list[Document],
        table: np.ndarray,
        *,
        approximate: bool,
        hnsw_m: int,
    ):
        self.uri, self.token_env, self.prefix = uri, token_env, prefix
        self._vectors, self._lexical, self._documents, self._table = vectors, lexical, documents, table
        self.dim = int(vectors.shape[1])
        self.index_type = "hnsw" if approximate else "flat"
        self._hnsw_m = hnsw_m

    def write(self, folder: Path, generation: str) -> dict:
        (folder / VOCABULARY_FILE).write_text(json.dumps(self._lexical.vocabulary(), ensure_ascii=False), "utf-8")
        name = _collection_name(self.prefix, generation)
        client = connect(self.uri, self.token_env)
        try:
            if client.has_collection(name):
                client.drop_collection(name)
            client.create_collection(name, schema=self._schema(client), index_params=self._index_params(client))
            for batch in self._rows():
                client.insert(name, batch)
            client.flush(name)
            client.load_collection(name)
        except MilvusException as exc:
            raise RagError(f"Milvus at {self.uri} refused the new index ({exc.message}).") from exc
        finally:
            client.close()
        return {
            "kind": "milvus",
            "uri": self.uri,
            "collection": name,
            "prefix": self.prefix,
            "token_env": self.token_env,
        }

    def discard(self, generation: str) -> None:
        """Drop the collection of a generation whose folder could not be written."""
        client = connect(self.uri, self.token_env)
        try:
            name = _collection_name(self.prefix, generation)
            if client.has_collection(name):
                client.drop_collection(name)
        finally:
            client.close()

    def _schema(self, client: MilvusClient):
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("doc", DataType.INT64)
        schema.add_field("lang", DataType.VARCHAR, max_length=16)
        schema.add_field("source", DataType.VARCHAR, max_length=_MAX_SOURCE)
        schema.add_field("date_lo", DataType.VARCHAR, max_length=16)
        schema.add_field("date_hi", DataType.VARCHAR, max_length=16)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("lexical", DataType.SPARSE_FLOAT_VECTOR)
        return schema

    def _index_params(self, client: MilvusClient):
        params = client.prepare_index_params()
        if self.index_type == "hnsw":
            params.add_index(
                "dense", index_type="HNSW", metric_type="IP", params={"M": self._hnsw_m, "efConstruction": 80}
            )
        else:
            params.add_index("dense", index_type="FLAT", metric_type="IP")
        params.add_index("lexical", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        return params

    def _rows(self) -> Iterator[list[dict]]:
        indptr, terms, weights = self._lexical.passage_weights()
        # Milvus refuses an empty sparse vector, and a passage of stopwords and punctuation has no terms: it gets
        # one weight on a term id outside the vocabulary, which no question can contain, so it scores 0 as in bm25s.
        no_terms = {len(self._lexical.vocabulary()): 1.0}
        fields = []
        for doc in self._documents:
            low, high = date_bounds(doc.date) if doc.date else ("", "")
            fields.append((doc.lang, doc.source[:_MAX_SOURCE], low, high))
        batch = []
        for row, doc_number in enumerate(self._table[:, 0].tolist()):
            lang, source, low, high = fields[doc_number]
            span = slice(int(indptr[row]), int(indptr[row + 1]))
            batch.append(
                {
                    "row": row,
                    "doc": doc_number,
                    "lang": lang,
                    "source": source,
                    "date_lo": low,
                    "date_hi": high,
                    "dense": self._vectors[row],
                    "lexical": dict(zip(terms[span].tolist(), weights[span].tolist(), strict=True)) or no_terms,
                }
            )
            if len(batch) == INSERT_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


class MilvusEngine:
    """Searches one generation's collection; filters are Milvus expressions over the collection's fields.

    Retrieval searches each passage language apart (language centring, retrieval.py), and a Milvus call has a
    fixed cost (about 30 ms in Milvus Lite at 41k passages, whatever it returns). So the passages of languages
    with few of them (a corpus in English with a few passages detected as German) are kept in memory and searched
    here, by the same scores from the same stored vectors and weights, and the passages that reach fusion are
    fetched once per question, vectors and lexical weights together."""

    kind = "milvus"
    local_language_rows = 2000  # a language with at most this many passages is searched in memory
    row_cache = 4096  # candidate passages whose vectors and weights are kept between calls

    def __init__(self, client: MilvusClient, collection: str, vocabulary: dict[str, int], rows: PassageRows, dim: int):
        self._client = client
        self.collection = collection
        self._vocabulary = vocabulary
        self._rows = rows
        self._sources = [doc.source for doc in rows.documents]
        self._size = len(rows.passage_doc)
        self._dim = dim
        self.ef_search = 128  # HNSW search breadth; the assistant sets [index] hnsw_ef_search
        self._cache: dict[int, tuple[np.ndarray, dict[int, float]]] = {}
        self._pinned: set[int] = set()
        self._local_rows = {
            lang: lang_rows for lang, lang_rows in rows.by_lang.items() if len(lang_rows) <= self.local_language_rows
        }
        local = np.concatenate(list(self._local_rows.values())) if self._local_rows else np.zeros(0, np.int64)
        self._fetch(local, keep=True)

    @classmethod
    def load(cls, folder: Path, engine: dict, rows: PassageRows, dim: int) -> MilvusEngine:
        try:
            vocabulary = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexLoadError(f"{folder / VOCABULARY_FILE} is missing or damaged ({exc}).") from exc
        client = connect(engine["uri"], engine.get("token_env", ""))
        name = engine["collection"]
        try:
            if not client.has_collection(name):
                raise IndexLoadError(
                    f"The Milvus collection {name} at {engine['uri']} is gone (dropped, or another milvus_uri)."
                )
            client.load_collection(name)
            stored = int(client.get_collection_stats(name).get("row_count", -1))
        except MilvusException as exc:
            raise IndexLoadError(f"Milvus at {engine['uri']} cannot open {name} ({exc.message}).") from exc
        if stored != len(rows.passage_doc):
            raise IndexLoadError(
                f"The Milvus collection {name} holds {stored} passages, the index {len(rows.passage_doc)}."
            )
        return cls(client, name, vocabulary, rows, dim)

    @property
    def size(self) -> int:
        return self._size

    @property
    def dim(self) -> int:
        return self._dim

    def dense_search(
        self, query: np.ndarray, n: int, *, lang: str | None, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if lang in self._local_rows:
            rows = self._passing(self._local_rows[lang], filters)
            vectors = np.stack([self._cache[r][0] for r in rows.tolist()]) if len(rows) else np.zeros((0, self._dim))
            return _top(np.asarray(vectors @ query, dtype=np.float32), rows, n)
        expression = filter_expression(lang, filters, self._sources)
        if expression is None or n <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        params = {"metric_type": "IP", "params": {"ef": max(self.ef_search, n)}}
        return self._search(query.tolist(), "dense", n, expression, params)

    def lexical_search(
        self, query: str, n: int, *, lang: str | None, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        counts = query_term_counts(query, self._vocabulary)
        if lang in self._local_rows:
            rows = self._passing(self._local_rows[lang], filters)
            scores = np.array([_weight(counts, self._cache[r][1]) for r in rows.tolist()], dtype=np.float32)
            scores, rows = _top(scores, rows, n)
            return scores[scores > 0], rows[scores > 0]
        expression = filter_expression(lang, filters, self._sources)
        terms = _sparse(counts)
        if expression is None or not terms or n <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores, rows = self._search(terms, "lexical", n, expression, {"metric_type": "IP"})
        keep = scores > 0
        return scores[keep], rows[keep]

    def _passing(self, rows: np.ndarray, filters: Filters) -> np.ndarray:
        return rows if filters.is_empty() else rows[self._rows.passing(filters)[rows]]

    def _fetch(self, rows: np.ndarray, *, keep: bool = False) -> None:
        """Bring the vectors and weights of `rows` into the cache, in one call for those not there yet."""
        wanted = list(dict.fromkeys(np.asarray(rows, dtype=np.int64).tolist()))
        missing = [r for r in wanted if r not in self._cache]
        if not keep and len(self._cache) + len(missing) > self.row_cache + len(self._pinned):
            # Start over with the in-memory languages and this call's rows (all of them: the caller reads them).
            self._cache = {r: self._cache[r] for r in self._pinned}
            missing = [r for r in wanted if r not in self._cache]
        for start in range(0, len(missing), FETCH_BATCH):
            chunk = missing[start : start + FETCH_BATCH]
            try:
                found = self._client.get(self.collection, ids=chunk, output_fields=["dense", "lexical"])
            except MilvusException as exc:
                raise RagError(f"Milvus could not return stored passages ({exc.message}).") from exc
            for item in found:
                vector = np.asarray(item["dense"], dtype=np.float32)
                self._cache[int(item["row"])] = (vector, {int(t): float(w) for t, w in item["lexical"].items()})
        if keep:
            self._pinned = set(self._cache)

    def lexical_scores_at(self, query: str, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        counts = query_term_counts(query, self._vocabulary)
        if not counts or not len(rows):
            return np.zeros(len(rows), dtype=np.float32)
        self._fetch(rows)
        return np.array([_weight(counts, self._cache[r][1]) for r in rows.tolist()], dtype=np.float32)

    def _search(self, data, field: str, n: int, expression: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
        try:
            result = self._client.search(
                self.collection,
                data=[data],
                anns_field=field,
                limit=n,
                filter=expression,
                search_params=params,
                output_fields=["row"],  # [] means every field to Milvus Lite: the vectors, 3x slower
            )
        except MilvusException as exc:
            raise RagError(f"Milvus search failed ({exc.message}).") from exc
        hits = result[0] if result else []
        rows = np.array([int(hit["row"]) for hit in hits], dtype=np.int64)
        scores = np.array([float(hit["distance"]) for hit in hits], dtype=np.float32)
        return _top(scores, rows, len(rows))

    def vectors_at(self, rows: list[int]) -> np.ndarray:
        if not rows:
            return np.zeros((0, self._dim), dtype=np.float32)
        self._fetch(np.asarray(rows, dtype=np.int64))
        return np.stack([self._cache[r][0] for r in rows])

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        wanted = np.arange(self._size, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(wanted), self._dim), dtype=np.float32)
        if not len(wanted):
            return out
        position = {}
        for i, row in enumerate(wanted.tolist()):
            position.setdefault(row, []).append(i)
        unique = sorted(position)
        for start in range(0, len(unique), FETCH_BATCH):
            chunk = unique[start : start + FETCH_BATCH]
            try:
                found = self._client.get(self.collection, ids=chunk, output_fields=["dense"])
            except MilvusException as exc:
                raise RagError(f"Milvus could not return stored vectors ({exc.message}).") from exc
            for item in found:
                for i in position[int(item["row"])]:
                    out[i] = item["dense"]
        return out

    def close(self) -> None:
        self._client.close()


def _weight(counts: dict[int, int], weights: dict[int, float]) -> float:
    """The sparse inner product Milvus computes: the question's term counts times the passage's BM25 weights."""
    return sum(count * weights.get(term, 0.0) for term, count in counts.items())


def _top(scores: np.ndarray, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best (scores, rows), ties by row, as the FAISS engine orders them."""
    order = np.lexsort((rows, -scores))[: max(n, 0)]
    return scores[order].astype(np.float32), rows[order].astype(np.int64)


def _sparse(counts: dict[int, int]) -> dict[int, float]:
    return {term: float(count) for term, count in counts.items()}  # Milvus takes float weights only


def filter_expression(lang: str | None, filters: Filters, sources: list[str]) -> str | None:
    """The Milvus expression for a language and the filters; None when nothing can pass.

    The same rules as filters.document_mask: a source matches exactly, as a glob, or as the end of a path; a
    date range keeps documents whose date, at its own precision, can fall inside it; undated documents fail
    any date range."""
    parts = []
    langs = filters.languages()
    if lang is not None:
        if langs is not None and lang not in langs:
            return None
        langs = {lang}
    if langs is not None:
        parts.append(f"lang in {json.dumps(sorted(langs))}")
    if filters.source:
        parts.append(_source_expression(filters.source, sources))
    if filters.date_from:
        parts.append(f"date_hi >= {json.dumps(date_bounds(filters.date_from)[0])}")
    if filters.date_to:
        parts.append(f'date_lo != "" and date_lo <= {json.dumps(date_bounds(filters.date_to)[1])}')
    return " and ".join(f"({p})" for p in parts) if parts else ""


def _source_expression(pattern: str, sources: list[str]) -> str:
    pattern = pattern.strip().lstrip("./")
    exact = f"source == {json.dumps(pattern)}"
    if not any(ch in pattern for ch in "%_\\[*?"):
        return f"{exact} or source like {json.dumps('%/' + pattern)}"
    if not any(ch in pattern for ch in "%_\\["):
        return f"{exact} or source like {json.dumps(pattern.replace('*', '%').replace('?', '_'))}"
    # LIKE knows only % and _, with escapes that differ between Milvus versions: a pattern it cannot say
    # exactly becomes the list of the sources it matches, decided by the same rule as the FAISS engine.
    matching = [source for source in sources if source_matches(source, pattern)]
    return f"source in {json.dumps(matching, ensure_ascii=False)}"


def drop_unreferenced(uri: str, token_env: str, prefix: str, keep: set[str]) -> None:
    """Drop this index's collections that no kept generation names (older generations, interrupted builds)."""
    client = connect(uri, token_env)
    try:
        for name in client.list_collections():
            if name.startswith(prefix + "_gen_") and name not in keep:
                client.drop_collection(name)
    finally:
        client.close()
