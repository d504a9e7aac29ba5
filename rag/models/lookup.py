"""Run-time lookup, offline: a configured model name, alias or path becomes a local path that is safe to load.

Catalogue models must have been prepared by `python -m rag models` (install.py); a prepared folder is checked
against its stamp on every start (stamps.py `_load_check`), which costs a few `stat` calls. Anything else must
already be on disk: a local folder or file, or a model in the Hugging Face cache. Nothing here downloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from .. import onnx_export
from ..errors import ModelError
from .catalogue import ALIASES, CHAT_MODELS, EMBEDDING, FIX, ChatModel
from .convert import _embedding_recipe
from .stamps import SUMS_FILE, _load_check, _read_stamp, _read_sums, record_checksums, sha256_file


def canonical_name(name: str) -> str:
    """The catalogue name for a name or alias; ModelError listing the choices for anything else."""
    canonical = ALIASES.get(name, name)
    if canonical == EMBEDDING.name or canonical in CHAT_MODELS:
        return canonical
    choices = ", ".join([*ALIASES, EMBEDDING.name, *CHAT_MODELS])
    raise ModelError(f"Unknown model {name!r}. Choose from: {choices}.")


def translates(chat_model_name: str, source_lang: str, target_lang: str) -> bool:
    """Whether a chat model is asked to translate a quote from `source_lang` into `target_lang`: no where the
    catalogue measured it to translate nothing usable out of the one or into the other; yes for any other model
    (a user's GGUF or server is trusted to try until shown otherwise, and the check still judges what it
    writes)."""
    model = CHAT_MODELS.get(chat_model_name)
    return model is None or (
        source_lang not in model.cannot_translate_from and target_lang not in model.cannot_translate_into
    )


def _is_catalogued(name: str) -> bool:
    canonical = ALIASES.get(name, name)
    return canonical == EMBEDDING.name or canonical in CHAT_MODELS


def onnx_folder(cache_dir: Path, backend: str) -> Path:
    """Where the ONNX graph of the catalogue embedding model for `backend` ("onnx" or "onnx-int8") is kept."""
    return Path(cache_dir).expanduser() / f"{EMBEDDING.name}-{backend}"


def _hf_hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models (same environment variables, same defaults)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "huggingface" / "hub"


def _hub_repo(name: str) -> Path:
    """Where the Hugging Face cache keeps the model `name` ("owner/model")."""
    return _hf_hub_cache() / f"models--{name.replace('/', '--')}"


def _hub_snapshot(name: str) -> str | None:
    """The commit of a model in the Hugging Face cache (what an offline load would use), or None."""
    if name.count("/") != 1 or name.startswith(("/", ".", "~")):
        return None
    repo = _hub_repo(name)
    snapshots = repo / "snapshots"
    try:
        ref = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        ref = ""
    if ref and (snapshots / ref).is_dir():
        return ref
    found = sorted(p.name for p in snapshots.glob("*") if p.is_dir()) if snapshots.is_dir() else []
    return found[-1] if found else None


def resolve_embedding_model(models_cfg) -> str:
    """What to hand to SentenceTransformer() for `[models] embedding`: the prepared catalogue folder, a
    local folder, or a model name already in the Hugging Face cache. ModelError says how to fix anything else.
    """
    name = models_cfg.embedding
    if _is_catalogued(name):
        canonical = canonical_name(name)
        if canonical != EMBEDDING.name:
            raise ModelError(f"[models] embedding = {name!r} is a chat model, not an embedding model.")
        folder = Path(models_cfg.cache) / canonical
        reason = _load_check(folder, _embedding_recipe(EMBEDDING))
        if reason is not None:
            raise ModelError(f"The embedding model {canonical} in {folder} is {reason}. Run `{FIX}` to prepare it.")
        return str(folder)
    local = Path(name).expanduser()
    if local.is_dir():
        if not ((local / "modules.json").is_file() or (local / "config.json").is_file()):
            raise ModelError(
                f"[models] embedding = {name!r} is a folder without modules.json or config.json, so it is "
                "not a sentence-transformers or Hugging Face model folder."
            )
        return str(local)
    if _hub_snapshot(name) is not None:
        return name
    raise ModelError(
        f"[models] embedding = {name!r} is neither a prepared model, a local folder nor a model in the "
        f"Hugging Face cache ({_hf_hub_cache()}). Use one of: (1) {EMBEDDING.name!r}, prepared once "
        f"with `{FIX}`; (2) the path of a sentence-transformers folder; (3) the name of a model already "
        "downloaded to the Hugging Face cache (this program never downloads at run time)."
    )


# The prompt names sentence-transformers' encode_document looks for, in its order.
_DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


def recorded_prompts(reference: str) -> tuple[str, str]:
    """(query prompt, document prompt) that the model recorded in its config_sentence_transformers.json, as
    sentence-transformers' encode_query / encode_document use them; "" where it recorded none (a model trained
    without prompts). `reference` is what resolve_embedding_model returned."""
    folder = Path(reference).expanduser()
    if not folder.is_dir():
        snapshot = _hub_snapshot(reference)
        folder = _hub_repo(reference) / "snapshots" / str(snapshot)
    file = folder / "config_sentence_transformers.json"
    try:
        prompts = json.loads(file.read_text(encoding="utf-8")).get("prompts") or {} if file.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file} is not readable JSON ({exc}). Run `{FIX}` or restore the model folder.") from exc
    document = next((prompts[name] for name in _DOCUMENT_PROMPT_NAMES if name in prompts), "")
    return prompts.get("query", ""), document


def resolve_onnx_model(models_cfg) -> Path:
    """The ONNX graph file for `[models] backend` (run time, offline). Only the catalogue embedding model has
    one: it is exported from the prepared folder by `python -m rag models`."""
    backend = models_cfg.backend
    if not _is_catalogued(models_cfg.embedding) or canonical_name(models_cfg.embedding) != EMBEDDING.name:
        raise ModelError(
            f'[models] backend = "{backend}" runs the catalogue model {EMBEDDING.name} only; for '
            f'[models] embedding = {models_cfg.embedding!r} set backend = "torch".'
        )
    resolve_embedding_model(models_cfg)  # the source folder must be sound too: its tokenizer is read from it
    folder = onnx_folder(models_cfg.cache, backend)
    source = Path(models_cfg.cache) / EMBEDDING.name
    reason = _load_check(folder, onnx_export.recipe(backend, model_fingerprint(str(source))))
    if reason is not None:
        raise ModelError(
            f"The {backend} embedding graph in {folder} is {reason}. Run `{FIX}` to build it "
            '(about two minutes), or set [models] backend = "torch" in config.toml.'
        )
    return folder / onnx_export.MODEL_FILE


def _check_chat_file(model: ChatModel, path: Path) -> str | None:
    """Why a catalogue GGUF of the right size cannot be loaded (None when it can): the load-time check of
    `_load_check`. A file placed there by hand, without our stamp, is hashed once against the catalogue."""
    folder = path.parent
    if _read_sums(folder) is None or _read_stamp(folder) is None:
        digest = sha256_file(path)
        if digest != model.sha256:
            return f"damaged (its sha256 is not the catalogue's {model.sha256[:12]}...)"
        with contextlib.suppress(OSError):
            record_checksums(folder, model.sha256, known={model.filename: digest}, files=[model.filename])
        return None
    reason = _load_check(folder, model.sha256)
    return None if reason is None else f"not usable ({reason})"


def resolve_chat_model(name_or_path: str, cache_dir: Path) -> Path:
    """The .gguf file for a catalogue name or alias (prepared by `rag models`), or an existing .gguf path."""
    if _is_catalogued(name_or_path):
        canonical = canonical_name(name_or_path)
        if canonical not in CHAT_MODELS:
            raise ModelError(f"{name_or_path!r} is the embedding model, not a chat model.")
        model = CHAT_MODELS[canonical]
        path = Path(cache_dir).expanduser() / model.name / model.filename
        if not path.is_file():
            raise ModelError(
                f"The chat model {model.name} is not prepared ({path} is missing). Run `{FIX} {name_or_path}`."
            )
        if path.stat().st_size != model.size:
            raise ModelError(
                f"{path} has {path.stat().st_size} bytes instead of {model.size} (damaged). "
                f"Run `{FIX} {name_or_path}` to fetch it again."
            )
        reason = _check_chat_file(model, path)
        if reason is not None:
            raise ModelError(f"{path} is {reason}. Run `{FIX} {name_or_path}` to fetch it again.")
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        choices = ", ".join([a for a in ALIASES if a != "embedding"] + list(CHAT_MODELS))
        raise ModelError(
            f"Chat model {name_or_path!r} is neither a catalogue model ({choices}) nor an existing .gguf file."
        )
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF model file (it does not start with 'GGUF').")
    return path


def model_fingerprint(resolved: str) -> str:
    """A short, stable identifier of the embedding model's content, recorded in the index so a later run can
    tell whether its vectors came from the same model. It does not depend on where the folder lives."""
    folder = Path(resolved).expanduser()
    if folder.is_dir():
        sums = folder / SUMS_FILE
        if sums.is_file():
            return "sha256:" + hashlib.sha256(sums.read_bytes()).hexdigest()[:16]
        digest = hashlib.sha256()
        if (folder / "config.json").is_file():
            digest.update((folder / "config.json").read_bytes())
        weights = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf")
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix in weights:
                digest.update(f"{p.relative_to(folder).as_posix()}:{p.stat().st_size}\n".encode())
        return "files:" + digest.hexdigest()[:16]
    snapshot = _hub_snapshot(resolved)
    return f"{resolved}@{snapshot[:12]}" if snapshot else resolved
