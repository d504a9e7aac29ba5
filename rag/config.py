"""Configuration: one schema (these dataclasses), filled from config.toml, then from overrides.

`load_config()` accepts nothing (./config.toml, or the built-in defaults when there is none), a path, a dict,
or a Config, plus keyword overrides (`corpus=`, `index=`) for the two keys people change most. Relative paths
are resolved against the folder of the config file, so the app works from any working directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError

MODEL_CACHE_ENV = "RAG_MODEL_CACHE"


def default_model_cache() -> Path:
    """Per-user model cache, outside the repository: $RAG_MODEL_CACHE, else the platform's user cache folder
    (~/.cache/rag-assistant/models or $XDG_CACHE_HOME on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on
    Windows)."""
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("rag-assistant", appauthor=False)) / "models"


@dataclass(frozen=True)
class CorpusConfig:
    path: Path = Path("seeds")  # the folder of documents to index (searched recursively)
    extensions: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
    max_file_mb: float = 200.0  # larger files are skipped with a warning


@dataclass(frozen=True)
class IndexConfig:
    path: Path = Path("index")  # where the built index lives
    on_mismatch: str = "error"  # "error" or "rebuild": what to do when the index was built with other settings
    approximate_above: int = 200_000  # passages; above this an HNSW index replaces exact search
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    keep_generations: int = 2  # complete index versions kept on disk (the newest is used)
    engine: str = "faiss"  # "faiss" (files in the index folder) or "milvus" (pip install '.[milvus]')
    milvus_uri: str = ""  # "" = milvus.db in the index folder (Milvus Lite); or http://host:19530 (a server)
    milvus_collection: str = ""  # collection name prefix; "" = one derived from the index folder's path
    milvus_token_env: str = "MILVUS_TOKEN"  # environment variable holding a Milvus server's token (user:password)
    ray_address: str = ""  # "" = embed in this process; "local" = a local Ray; else a Ray cluster address
    ray_workers: int = 2  # Ray actors that embed (each loads the model once) and tasks that read at a time


@dataclass(frozen=True)
class ChunkingConfig:
    size: int = 600  # target maximum passage length in characters
    overlap: int = 150  # characters of preceding sentences repeated at the start of the next passage


@dataclass(frozen=True)
class ModelsConfig:
    cache_dir: Path | None = None  # None: $RAG_MODEL_CACHE or ~/.cache/rag-assistant/models
    embedding: str = "multilingual-e5-small"  # a catalogue name, a sentence-transformers folder, or a cached hub name
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    batch_size: int = 32
    threads: int = 0  # 0: all cores
    backend: str = "onnx"  # "onnx" (fp32), "onnx-int8" or "torch": what runs the embedding model (onnx_encoder.py)

    @property
    def cache(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_model_cache()


@dataclass(frozen=True)
class RetrievalConfig:
    k: int = 5  # passages returned
    candidates: int = 100  # passages taken from each channel before fusion
    dense_weight: float = 0.8  # share of the dense (meaning) score in the fused score
    lexical_weight: float = 0.2  # share of the lexical (BM25) score
    language_centering: bool = True  # subtract each language's mean vector to remove same-language bias
    document_weight: float = 0.8  # share of the passage's document score in its rank (see retrieval.py)
    max_per_document: int = 2  # diversity: at most this many passages of one document in the top k (0: no limit)


@dataclass(frozen=True)
class GenerationConfig:
    model: str = "quality"  # "quality", "fast", "test" (catalogue names) or a path to any .gguf file
    server_url: str = ""  # an OpenAI-compatible server (llama.cpp server, vLLM, Ollama) instead of the local model
    server_model: str = ""  # the model name to ask that server for
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the server's API key, if it needs one
    context_tokens: int = 2048
    threads: int = 0  # 0: all cores
    max_tokens: int = 120  # answers are short; a long generation costs seconds on a laptop
    temperature: float = 0.0
    timeout_s: float = 120.0  # for the server


@dataclass(frozen=True)
class AnswerConfig:
    passages: int = 10  # passages retrieved for a question
    evidence: int = 4  # evidence sentences kept (the answer quotes one or two of them)
    min_confidence: float = 0.44  # an answer whose calibrated confidence is below this is refused (see decision.py)
    translate: bool = True  # quotes in another language than the question's are machine-translated and checked
    rewrite_follow_ups: bool = True  # rewrite follow-up questions with the conversation before searching
    max_question_chars: int = 1000  # longer questions are refused with a message, not cut (see retrieval.py)


@dataclass(frozen=True)
class Config:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    source: Path | None = None  # the config file this came from, if any

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """A copy with some keys replaced: `cfg.with_overrides(retrieval={"k": 10})`."""
        return _apply(self, sections, base_dir=Path.cwd())


_SECTIONS = {f.name: f for f in fields(Config) if f.name != "source"}


def _coerce(section: str, key: str, value: Any, default: Any, base_dir: Path) -> Any:
    where = f"[{section}] {key}"
    if isinstance(default, Path) or key in ("path", "cache_dir"):
        if value is None or value == "":
            return None if key == "cache_dir" else default
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where} must be a path string, got {value!r}.")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base_dir / p).resolve()
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}.")
        if value < 0:
            raise ConfigError(f"{where} must not be negative, got {value}.")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}.")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return value
    return value


# Keys of earlier versions, with what replaced them, so an old config.toml fails with the fix rather than a guess.
_CALIBRATED = (
    "the raw-cosine thresholds refuse_below, quote_above and min_support were replaced by min_confidence, a "
    "calibrated probability (see config.toml). Delete this line; set min_confidence to answer more or fewer questions."
)
_RETIRED = {
    ("answer", "refuse_below"): _CALIBRATED,
    ("answer", "quote_above"): _CALIBRATED,
    ("answer", "min_support"): _CALIBRATED,
}


def _apply(cfg: Config, data: dict[str, Any], base_dir: Path) -> Config:
    updates = {}
    for section, values in data.items():
        if section not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"Unknown config section [{section}]; known sections: {known}.")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys, got {values!r}.")
        current = getattr(cfg, section)
        known_keys = {f.name: f for f in fields(current)}
        changes = {}
        for key, value in values.items():
            if (section, key) in _RETIRED:
                raise ConfigError(f"[{section}] {key} is no longer used: {_RETIRED[section, key]}")
            if key not in known_keys:
                raise ConfigError(f"Unknown key '{key}' in [{section}]; known keys: {', '.join(sorted(known_keys))}.")
            default = getattr(current, key)
            if default is None and key != "cache_dir":
                changes[key] = value
            else:
                changes[key] = _coerce(section, key, value, default, base_dir)
        updates[section] = replace(current, **changes)
    cfg = replace(cfg, **updates)
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    if cfg.index.on_mismatch not in ("error", "rebuild"):
        raise ConfigError(f'[index] on_mismatch must be "error" or "rebuild", got {cfg.index.on_mismatch!r}.')
    if cfg.chunking.size < 50:
        raise ConfigError(f"[chunking] size must be at least 50 characters, got {cfg.chunking.size}.")
    if cfg.chunking.overlap >= cfg.chunking.size:
        raise ConfigError(
            f"[chunking] overlap ({cfg.chunking.overlap}) must be smaller than size ({cfg.chunking.size})."
        )
    if cfg.index.engine not in ("faiss", "milvus"):
        raise ConfigError(f'[index] engine must be "faiss" or "milvus", got {cfg.index.engine!r}.')
    if cfg.index.milvus_collection and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", cfg.index.milvus_collection):
        raise ConfigError(
            f"[index] milvus_collection must be letters, digits and underscores, not starting with a digit; "
            f"got {cfg.index.milvus_collection!r}."
        )
    if cfg.index.ray_workers < 1:
        raise ConfigError(f"[index] ray_workers must be at least 1, got {cfg.index.ray_workers}.")
    if cfg.models.backend not in ("torch", "onnx", "onnx-int8"):
        raise ConfigError(f'[models] backend must be "torch", "onnx" or "onnx-int8", got {cfg.models.backend!r}.')
    if cfg.retrieval.k < 1:
        raise ConfigError("[retrieval] k must be at least 1.")
    if not 0.0 <= cfg.answer.min_confidence <= 1.0:
        raise ConfigError(
            f"[answer] min_confidence must be between 0 and 1 (a probability), got {cfg.answer.min_confidence}."
        )
    if cfg.answer.max_question_chars < 20:
        raise ConfigError(f"[answer] max_question_chars must be at least 20, got {cfg.answer.max_question_chars}.")


def load_config(
    path: str | os.PathLike | dict | Config | None = None,
    *,
    corpus: str | os.PathLike | None = None,
    index: str | os.PathLike | None = None,
    **sections: dict[str, Any],
) -> Config:
    """Load the configuration.

    >>> cfg = load_config()                                # ./config.toml if present, else defaults
    >>> cfg = load_config("config.toml", corpus="~/news")  # override the corpus folder
    """
    if isinstance(path, Config):
        cfg = path
        base_dir = Path.cwd()
    elif isinstance(path, dict):
        cfg = _apply(Config(), path, base_dir=Path.cwd())
        base_dir = Path.cwd()
    else:
        file = Path(path) if path is not None else Path("config.toml")
        if path is not None and not file.is_file():
            raise ConfigError(f"Config file not found: {file}. Pass an existing file or omit --config.")
        base_dir = file.resolve().parent
        if file.is_file():
            try:
                data = tomllib.loads(file.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"{file} is not valid TOML ({exc}). Fix the line named, or restore it from git."
                ) from exc
            cfg = _apply(Config(), data, base_dir=base_dir)
            cfg = dataclasses.replace(cfg, source=file.resolve())
        else:
            cfg = _apply(Config(), {"corpus": {"path": "seeds"}, "index": {"path": "index"}}, base_dir=base_dir)
    overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in sections.items()}
    if corpus is not None:
        overrides.setdefault("corpus", {})["path"] = str(corpus)
    if index is not None:
        overrides.setdefault("index", {})["path"] = str(index)
    if overrides:
        cfg = _apply(cfg, overrides, base_dir=Path.cwd())
    return cfg
