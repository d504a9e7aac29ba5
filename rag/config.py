"""Configuration: one schema (these dataclasses, validated by pydantic), filled from config.toml, then overrides.

`load_config()` accepts nothing (./config.toml, or the built-in defaults when there is none), a path, a dict,
or a Config, plus keyword overrides (`corpus=`, `index=`) for the two keys people change most. Relative paths
are resolved against the folder of the config file, so the app works from any working directory.

The sections are pydantic dataclasses: types, ranges and choices are declared on the fields and checked by
pydantic whenever a section is made (also by `dataclasses.replace`), in strict mode, so `k = "5"` or
`translate = 1` is an error rather than a guess. `_message` turns pydantic's report into one sentence that
names the key, what it must be and what it got.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_type_hints

import platformdirs
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from .errors import ConfigError

MODEL_CACHE_ENV = "RAG_MODEL_CACHE"

_SCHEMA = ConfigDict(strict=True, extra="forbid")
# Counts and sizes are whole numbers and never negative unless a field says more.
Count = Annotated[int, Field(ge=0)]
# TOML has arrays, not tuples, and paths are strings there: those two accept the looser input.
Strings = Annotated[tuple[str, ...], Field(strict=False)]
PathValue = Annotated[Path, Field(strict=False)]


def default_model_cache() -> Path:
    """Per-user model cache, outside the repository: $RAG_MODEL_CACHE, else the platform's user cache folder
    (~/.cache/rag-assistant/models or $XDG_CACHE_HOME on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on
    Windows)."""
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("rag-assistant", appauthor=False)) / "models"


@dataclass(frozen=True, config=_SCHEMA)
class CorpusConfig:
    path: PathValue = Path("seeds")  # the folder of documents to index (searched recursively)
    extensions: Strings = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
    max_file_mb: Annotated[float, Field(gt=0)] = 200.0  # larger files are skipped with a warning


@dataclass(frozen=True, config=_SCHEMA)
class IndexConfig:
    path: PathValue = Path("index")  # where the built index lives
    on_mismatch: Literal["error", "rebuild"] = "error"  # what to do when the index was built with other settings
    approximate_above: Count = 200_000  # passages; above this an HNSW index replaces exact search
    hnsw_m: Annotated[int, Field(ge=2)] = 32
    hnsw_ef_search: Annotated[int, Field(ge=1)] = 128
    keep_generations: Annotated[int, Field(ge=1)] = 2  # complete index versions kept on disk (the newest is used)
    engine: Literal["faiss", "milvus"] = "faiss"  # "milvus" needs pip install '.[milvus]'
    milvus_uri: str = ""  # "" = milvus.db in the index folder (Milvus Lite); or http://host:19530 (a server)
    milvus_collection: str = ""  # collection name prefix; "" = one derived from the index folder's path
    milvus_token_env: str = "MILVUS_TOKEN"  # environment variable holding a Milvus server's token (user:password)
    ray_address: str = ""  # "" = embed in this process; "local" = a local Ray; else a Ray cluster address
    ray_workers: Annotated[int, Field(ge=1)] = 2  # Ray actors that embed (each loads the model once)

    def __post_init__(self) -> None:
        if self.milvus_collection and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.milvus_collection):
            raise ValueError(
                f"[index] milvus_collection must be letters, digits and underscores, not starting with a digit; "
                f"got {self.milvus_collection!r}."
            )


@dataclass(frozen=True, config=_SCHEMA)
class ChunkingConfig:
    size: Annotated[int, Field(ge=50)] = 600  # target maximum passage length in characters
    overlap: Count = 150  # characters of preceding sentences repeated at the start of the next passage

    def __post_init__(self) -> None:
        if self.overlap >= self.size:
            raise ValueError(f"[chunking] overlap ({self.overlap}) must be smaller than size ({self.size}).")


@dataclass(frozen=True, config=_SCHEMA)
class ModelsConfig:
    cache_dir: PathValue | None = None  # None: $RAG_MODEL_CACHE or ~/.cache/rag-assistant/models
    embedding: str = "multilingual-e5-small"  # a catalogue name, a sentence-transformers folder, or a cached hub name
    batch_size: Annotated[int, Field(ge=1)] = 32
    threads: Count = 0  # 0: all cores
    backend: Literal["torch", "onnx", "onnx-int8"] = "onnx"  # what runs the embedding model (onnx_encoder.py)

    @property
    def cache(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_model_cache()


@dataclass(frozen=True, config=_SCHEMA)
class RetrievalConfig:
    k: Annotated[int, Field(ge=1)] = 5  # passages returned
    candidates: Annotated[int, Field(ge=1)] = 100  # passages taken from each channel before fusion
    dense_weight: Annotated[float, Field(ge=0)] = 0.8  # share of the dense (meaning) score in the fused score
    lexical_weight: Annotated[float, Field(ge=0)] = 0.2  # share of the lexical (BM25) score
    language_centering: bool = True  # subtract each language's mean vector to remove same-language bias
    # Documents' worth of weight the prior language mean carries against a language's own mean (0: own mean only)
    language_prior_documents: Annotated[float, Field(ge=0)] = 3.0
    document_weight: Annotated[float, Field(ge=0, le=1)] = 0.8  # share of the document score in a passage's rank
    max_per_document: Count = 2  # diversity: at most this many passages of one document in the top k (0: no limit)


@dataclass(frozen=True, config=_SCHEMA)
class GenerationConfig:
    model: str = "quality"  # "quality", "fast", "test" (catalogue names) or a path to any .gguf file
    server_url: str = ""  # an OpenAI-compatible server (llama.cpp server, vLLM, Ollama) instead of the local model
    server_model: str = ""  # the model name to ask that server for
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the server's API key, if it needs one
    context_tokens: Annotated[int, Field(ge=256)] = 2048
    threads: Count = 0  # 0: all cores
    max_tokens: Annotated[int, Field(ge=1)] = 120  # answers are short; a long generation costs seconds on a laptop
    temperature: Annotated[float, Field(ge=0)] = 0.0
    timeout_s: Annotated[float, Field(gt=0)] = 120.0  # for the server


@dataclass(frozen=True, config=_SCHEMA)
class AnswerConfig:
    passages: Annotated[int, Field(ge=1)] = 10  # passages retrieved for a question
    evidence: Annotated[int, Field(ge=1)] = 4  # evidence sentences kept (the answer quotes one or two of them)
    # an answer whose calibrated confidence is below this is refused (see decision.py); a probability
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.40
    translate: bool = True  # quotes in another language than the question's are machine-translated and checked
    # how well a translation's words must line up with its quote's (grounding.word_alignment); 0: not checked
    translation_min_alignment: Annotated[float, Field(ge=0, le=1)] = 0.874
    rewrite_follow_ups: bool = True  # rewrite follow-up questions with the conversation before searching
    max_question_chars: Annotated[int, Field(ge=20)] = 1000  # longer questions are refused with a message, not cut


@dataclass(frozen=True, config=_SCHEMA)
class Config:
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)
    index: IndexConfig = dataclasses.field(default_factory=IndexConfig)
    chunking: ChunkingConfig = dataclasses.field(default_factory=ChunkingConfig)
    models: ModelsConfig = dataclasses.field(default_factory=ModelsConfig)
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    answer: AnswerConfig = dataclasses.field(default_factory=AnswerConfig)
    source: PathValue | None = None  # the config file this came from, if any

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """A copy with some keys replaced: `cfg.with_overrides(retrieval={"k": 10})`."""
        return _apply(self, sections, base_dir=Path.cwd())


_SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config) if f.name != "source"}


# Keys of earlier versions, with what replaced them, so an old config.toml fails with the fix rather than a guess.
_CALIBRATED = (
    "the raw-cosine thresholds refuse_below, quote_above and min_support were replaced by min_confidence, a "
    "calibrated probability (see config.toml). Delete this line; set min_confidence to answer more or fewer questions."
)
_PROMPTS = (
    "the query and passage prompts are the ones the embedding model records in its config_sentence_transformers.json "
    '(its "prompts"), as sentence-transformers\' encode_query / encode_document use them. Delete this line; to '
    "change a model's prompts, edit that file in the model's folder."
)
_RETIRED = {
    ("models", "query_prefix"): _PROMPTS,
    ("models", "passage_prefix"): _PROMPTS,
    ("answer", "refuse_below"): _CALIBRATED,
    ("answer", "quote_above"): _CALIBRATED,
    ("answer", "min_support"): _CALIBRATED,
}

# What a value of each kind must be, in the words of config.toml (pydantic's error type -> the sentence's end).
_KINDS = {
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "path_type": "must be a path string",
    "tuple_type": "must be a list of strings",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _message(section: str, cls: type, error: dict) -> str:
    """One pydantic error as the sentence a user of config.toml needs: the key, what it must be, what it got."""
    key = str(error["loc"][0]) if error["loc"] else ""
    where = f"[{section}] {key}"
    kind, value = error["type"], error.get("input")
    if kind == "unexpected_keyword_argument":
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        return f"Unknown key '{key}' in [{section}]; known keys: {known}."
    if kind == "value_error":  # a check across keys (__post_init__): its message is already written for the user
        return str(error["ctx"]["error"])
    if kind == "literal_error":  # pydantic lists the choices as 'a' or 'b'; config.toml writes strings "a"
        return f"{where} must be {error['ctx']['expected'].replace(chr(39), chr(34))}, got {value!r}."
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"{where} must be {words} {error['ctx'][name]}, got {value!r}."
    if len(error["loc"]) > 1 and kind == "string_type":  # an item of a list
        kind = "tuple_type"
    if kind in _KINDS:
        return f"{where} {_KINDS[kind]}, got {value!r}."
    return f"{where}: {error['msg']} (got {value!r})."


def _section(section: str, cls: type, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(_message(section, cls, exc.errors()[0])) from None


def _resolve_paths(cls: type, values: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Path keys as absolute paths, relative ones taken from the config file's folder; "" unsets an optional one."""
    out = dict(values)
    for key, hint in get_type_hints(cls).items():
        if key not in out or Path not in (hint, *get_args(hint)):
            continue
        value = out[key]
        if value == "" and type(None) in get_args(hint):
            out[key] = None
        elif isinstance(value, (str, Path)) and value != "":
            p = Path(value).expanduser()
            out[key] = p if p.is_absolute() else (base_dir / p).resolve()
    return out


def _apply(cfg: Config, data: dict[str, Any], base_dir: Path) -> Config:
    updates = {}
    for section, values in data.items():
        if section not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"Unknown config section [{section}]; known sections: {known}.")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys, got {values!r}.")
        for key in values:
            if (section, key) in _RETIRED:
                raise ConfigError(f"[{section}] {key} is no longer used: {_RETIRED[section, key]}")
        cls = _SECTIONS[section]
        current = dataclasses.asdict(getattr(cfg, section))
        updates[section] = _section(section, cls, {**current, **_resolve_paths(cls, values, base_dir)})
    return dataclasses.replace(cfg, **updates)


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
    elif isinstance(path, dict):
        cfg = _apply(Config(), path, base_dir=Path.cwd())
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
