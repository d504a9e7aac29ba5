"""Reading, chunking and embedding on Ray workers (Ray Data), for corpora one process indexes too slowly.

The only module that imports ray, and only inside its functions, so `import rag.distributed` works without it
(`pip install '.[ray]'` adds it). The work done on a worker is exactly the in-process work: `load_document`
and `chunk_spans` for a file, `Embedder.encode_passages` for passages. Embedding batches are whole multiples
of the in-process encoder's slices (`batch_size * 8` texts) and start on a slice boundary, so every actor
encodes the same slices the in-process encoder would, and the vectors are bit-identical to it.

A cluster given by address must have this package, its dependencies and the prepared model cache installed
on every node, at the same paths: only file paths and texts travel, never the model.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import numpy as np

from .chunking import chunk_spans
from .config import Config, ModelsConfig
from .documents import load_document
from .errors import DocumentSkipped, RagError
from .types import Document

# Ray would otherwise ask the user about, and send, usage statistics; nothing here may reach the network.
_USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"
# Seconds to wait for a cluster's address to answer: Ray itself retries an unreachable address for minutes.
_CONNECT_TIMEOUT_S = 5.0
# Files a read task handles per batch: small enough that one batch of large documents stays far below
# Ray's block size, large enough that the per-batch overhead (milliseconds) vanishes next to reading.
_READ_BATCH_FILES = 8
# Seconds Ray Data waits for every embedding actor to have loaded the model before it hands out batches;
# without the wait the first actor ready takes the first batches and a short run never reaches the second.
_ACTOR_START_TIMEOUT_S = 300


@dataclass(frozen=True)
class FileResult:
    """One file read and chunked on a worker: its document and passage spans, or why it was skipped."""

    source: str  # path relative to the corpus root, as given
    document: Document | None  # None when the file was skipped
    spans: list[tuple[int, int]]  # passage offsets into document.text, as chunk_spans returns them
    skip_reason: str | None = None  # what the user should know about a skipped file
    notes: list[str] = field(default_factory=list)  # warnings about a file indexed anyway (mixed encodings)


@dataclass(frozen=True)
class EmbedRun:
    """What `run_embedding` did: the vectors, in input order, and how the work was shared."""

    vectors: np.ndarray  # float32, one L2-normalised row per text
    rows_by_worker: dict[str, int]  # actor ("host:pid") -> texts it encoded
    busy_seconds_by_worker: dict[str, float]  # actor -> seconds it spent encoding
    seconds: float  # wall time of the Ray Data run (the actors' start-up and model loads included)


def _import_ray() -> ModuleType:
    os.environ.setdefault(_USAGE_STATS_ENV, "0")  # read by ray when it starts a cluster or connects to one
    try:
        import ray
        import ray.data  # noqa: F401  (the Data library is an extra of ray: `ray[data]`)
    except ImportError as exc:
        raise RagError(f"Distributed indexing needs Ray: pip install '.[ray]' ({exc}).") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens at. Ray's own connect retries for minutes, printing a
    warning every few seconds, before it gives up. "auto" (the cluster started on this machine) is checked
    by Ray itself, which answers at once."""
    if address == "auto":
        return
    host_port = address.split("://", 1)[-1]  # "ray://head:10001" (Ray Client) or "head:6379"
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise RagError(
            f"Could not connect to the Ray cluster at {address} (not HOST:PORT). Start it with `ray start --head` "
            "or drop --ray ADDRESS to use a local Ray."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RagError(
            f"Could not connect to the Ray cluster at {address} ({exc}). Start it with `ray start --head` "
            "or drop --ray ADDRESS to use a local Ray."
        ) from None


@contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[ModuleType]:
    """Ray, ready for work: the session already open in this process if there is one, else a connection to
    the cluster at `address` ($RAY_ADDRESS when None and set), else a local Ray on this machine's cores.
    Shuts Ray down on exit only when it started it here. Yields the ray module."""
    if workers < 1:
        raise RagError(f"Distributed indexing needs at least one worker, got {workers}.")
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Ray's own notices (it turned token authentication on, ...) would otherwise print at every build; workers'
    # output stays in Ray's log files, and what a worker has to say comes back in its results.
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RagError(
                f"Could not connect to the Ray cluster at {address} ({exc}). Start it with `ray start --head` "
                "or drop --ray ADDRESS to use a local Ray."
            ) from None
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
    try:
        yield ray
    finally:
        ray.shutdown()


def read_file(path: str, source: str, root: str, max_bytes: int, chunk_size: int, chunk_overlap: int) -> FileResult:
    """Read, clean and chunk one file: what every worker does for each of its files (and what a caller
    without Ray can do in-process). Never raises for a file that cannot be indexed; says why instead."""
    notes: list[str] = []
    try:
        doc = load_document(Path(path), Path(root), max_bytes, warn=notes.append)
    except DocumentSkipped as exc:
        return FileResult(source, None, [], str(exc), notes)
    except OSError as exc:
        return FileResult(source, None, [], f"disappeared while it was read ({exc})", notes)
    return FileResult(source, doc, chunk_spans(doc.text, chunk_size, chunk_overlap), None, notes)


def _read_batch(batch: dict[str, np.ndarray], **settings: object) -> dict[str, list]:
    # A FileResult crosses back pickled: its optional fields would give Arrow another column type in each
    # block (a block of skipped files has no dates at all), and the indexer wants the records, not columns.
    results = [
        pickle.dumps(read_file(os.fsdecode(path), os.fsdecode(source), **settings))
        for path, source in zip(batch["path"], batch["source"], strict=True)
    ]
    return {"i": list(batch["i"]), "result": results}


def read_and_chunk(
    items: list[tuple[str, str]],
    root: str,
    max_bytes: int,
    chunk_size: int,
    chunk_overlap: int,
    address: str | None = None,
    workers: int = 2,
) -> list[FileResult]:
    """Read and chunk (absolute path, source relative to root) files on `workers` Ray tasks at a time.
    Returns one FileResult per item, in the order of `items`."""
    if not items:
        return []
    # Paths travel as bytes: a file name that is not valid UTF-8 (which load_document reports as a skip)
    # would stop Arrow from building the block if it travelled as text.
    rows = [
        {"i": i, "path": os.fsencode(path), "source": os.fsencode(source)} for i, (path, source) in enumerate(items)
    ]
    settings = {"root": root, "max_bytes": max_bytes, "chunk_size": chunk_size, "chunk_overlap": chunk_overlap}
    results: list[FileResult | None] = [None] * len(items)
    with ray_session(address, workers) as ray:
        blocks = min(len(rows), workers * 4)  # several blocks per worker: a slow file delays only its block
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map_batches(
            _read_batch,
            fn_kwargs=settings,
            batch_size=_READ_BATCH_FILES,
            compute=ray.data.TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
        with _execution(ray, ds, workers):
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i, blob in zip(batch["i"], batch["result"], strict=True):
                    results[int(i)] = pickle.loads(blob)
    missing = [items[i][1] for i, r in enumerate(results) if r is None]
    if missing:  # cannot happen unless Ray lost rows; never return a build that silently lacks files
        raise RagError(f"Ray returned no result for {len(missing)} files (first: {missing[0]}); run the build again.")
    return results  # type: ignore[return-value]


class _WorkerError(Exception):
    """Carries a RagError from a worker back to the caller as it was. Ray Data appends advice about its own
    retry settings to an exception's message (when the message is its first argument); the user needs the fix
    the RagError names, nothing else."""


class _EmbedActor:
    """A Ray Data actor: loads the embedding model once, then encodes whole batches of passages."""

    def __init__(self, models: ModelsConfig):
        from .embeddings import Embedder

        self._name = f"{socket.gethostname()}:{os.getpid()}"
        self._embedder, self._error = None, None
        try:
            self._embedder = Embedder(models)
        except RagError as exc:
            # Raised again with the first batch: Ray hands an exception raised by a task back to the caller
            # as it was, but turns one raised while an actor starts into a traceback in a string.
            self._error = exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._error is not None:
            raise _WorkerError(self._error)
        # One row is one batch of consecutive texts (see run_embedding); out come one row per text.
        starts, vectors, elapsed = [], [], []
        for start, texts in zip(batch["start"], batch["texts"], strict=True):
            began = time.perf_counter()
            vectors.append(self._embedder.encode_passages([str(t) for t in texts]))
            elapsed.append(time.perf_counter() - began)
            starts.append(np.arange(int(start), int(start) + len(texts), dtype=np.int64))
        index = np.concatenate(starts)
        seconds = np.concatenate([np.full(len(s), e / max(len(s), 1)) for s, e in zip(starts, elapsed, strict=True)])
        return {
            "index": index,
            "vector": np.concatenate(vectors),
            "worker": np.full(len(index), self._name, dtype=object),
            "seconds": seconds,  # each text's share of its batch's time: summed per worker, its busy time
        }


def _actor_cpus(ray: ModuleType, workers: int) -> tuple[float, int]:
    """CPUs Ray reserves for each actor, and ONNX Runtime threads it runs: the cluster's cores shared out, so
    two actors on a 2-core machine both start (1 CPU each) and do not fight over the cores (1 thread each)."""
    cores = float(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    share = cores / workers
    return (float(int(share)) if share >= 1 else share), max(1, int(share))


def embed_passages(
    models: ModelsConfig,
    texts: list[str],
    address: str | None = None,
    workers: int = 2,
    batch_rows: int | None = None,
) -> np.ndarray:
    """Passage vectors from `workers` Ray actors, in input order: float32, L2-normalised, bit-identical to
    `Embedder(models).encode_passages(texts)`. `batch_rows` (texts per Ray batch) is rounded up to a multiple of
    `models.batch_size * 8`; the default is one such slice."""
    return run_embedding(models, texts, address, workers, batch_rows).vectors


def run_embedding(
    models: ModelsConfig,
    texts: Sequence[str],
    address: str | None = None,
    workers: int = 2,
    batch_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> EmbedRun:
    """`embed_passages`, with how the work was shared among the actors (for benchmarks and tests).
    `progress` receives the number of texts of each batch as it comes back."""
    if not texts:
        from .embeddings import Embedder

        # The model's width is needed even for no rows; loading it here costs less than starting actors.
        return EmbedRun(Embedder(models).encode_passages([]), {}, {}, 0.0)
    step = max(models.batch_size * 8, 1)  # the slice Embedder.encode_passages encodes at a time
    rows_per_batch = step * max(1, -(-(batch_rows or step) // step))
    rows = [
        {"start": start, "texts": list(texts[start : start + rows_per_batch])}
        for start in range(0, len(texts), rows_per_batch)
    ]
    out: np.ndarray | None = None
    rows_by_worker: dict[str, int] = {}
    busy: dict[str, float] = {}
    actors = min(workers, len(rows))  # an actor without a batch would load the model for nothing
    with ray_session(address, workers) as ray:
        num_cpus, threads = _actor_cpus(ray, actors)
        if models.threads:
            threads = min(threads, models.threads)
        began = time.perf_counter()
        # One block per batch: Ray Data hands an actor whole blocks, so fewer blocks than actors idles some.
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds.context.wait_for_min_actors_s = _ACTOR_START_TIMEOUT_S
        with warnings.catch_warnings():
            # max_restarts travels as one of Ray's "remote args", deprecated in 2.60 with no named replacement
            # yet; without it Ray restarts a dead actor forever and logs an error line at every start.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            ds = ds.map_batches(
                _EmbedActor,
                fn_constructor_args=(replace(models, threads=threads),),
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=num_cpus,
                max_restarts=0,  # see _execution
            )
        with _execution(ray, ds, workers):
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                if out is None:
                    out = np.zeros((len(texts), batch["vector"].shape[1]), dtype=np.float32)
                out[batch["index"]] = batch["vector"]
                for worker, seconds in zip(batch["worker"].tolist(), batch["seconds"].tolist(), strict=True):
                    rows_by_worker[worker] = rows_by_worker.get(worker, 0) + 1
                    busy[worker] = busy.get(worker, 0.0) + seconds
                if progress is not None:
                    progress(len(batch["index"]))
        seconds = time.perf_counter() - began
    done = sum(rows_by_worker.values())
    if out is None or done != len(texts):
        raise RagError(f"Ray returned {done} of {len(texts)} passage vectors; run the build again.")
    return EmbedRun(out, rows_by_worker, busy, seconds)


@contextmanager
def _execution(ray: ModuleType, ds: object, workers: int) -> Iterator[None]:
    """Ray Data run as a CLI wants it: no progress bars or log lines on the console (the CLI draws its own
    progress, and Ray Data's would interleave with it), and Ray's errors turned into the user's: a RagError
    raised on a worker (a model not prepared) comes out as itself, a dead worker as one line that says what
    to do. Actors are not restarted (max_restarts=0): one killed for memory would be, and be killed again."""
    ds.context.enable_progress_bars = False  # this dataset's own context, not Ray Data's global one
    ds.context.print_on_execution_start = False
    ds.context.raise_original_map_exception = True  # not Ray Data's "UDF failed", which loses our message
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.CRITICAL)  # its errors too: they come out below as the exception, once
    try:
        yield
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, _WorkerError):  # the exception the worker raised, unpickled
            raise exc.cause.args[0] from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise RagError(
            f"A Ray worker died while indexing ({str(exc).splitlines()[0]}). This is most often a lack of "
            f"memory: use fewer workers than {workers}."
        ) from None
    except ray.exceptions.GetTimeoutError:
        raise RagError(
            f"Ray could not start {workers} embedding workers within {_ACTOR_START_TIMEOUT_S} s: the cluster has "
            "too few free CPUs. Use fewer workers."
        ) from None
    finally:
        data_log.setLevel(level)


class RayWork:
    """Reading and embedding on Ray ([index] ray_address): Ray starts at the first use, so a build with
    nothing to read never starts it, and stops with the build."""

    def __init__(self, cfg: Config, cleanup: ExitStack):
        self._cfg, self._cleanup, self._started = cfg, cleanup, False
        address = cfg.index.ray_address
        self.address = None if address == "local" else address
        self.workers = cfg.index.ray_workers

    def _start(self) -> None:
        if not self._started:
            self._cleanup.enter_context(ray_session(self.address, self.workers))
            self._started = True

    def read(self, plan: list[tuple[Path, str, os.stat_result | None]], root: Path, max_bytes: int) -> list[FileResult]:
        self._start()
        items = [(str(path), source) for path, source, _ in plan]
        chunking = self._cfg.chunking
        return read_and_chunk(items, str(root), max_bytes, chunking.size, chunking.overlap, self.address, self.workers)

    def encode(self, texts: list[str], progress: Callable[[int], None]) -> np.ndarray:
        self._start()
        return run_embedding(self._cfg.models, texts, self.address, self.workers, progress=progress).vectors
