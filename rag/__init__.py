"""Offline multilingual (Azerbaijani, Russian, English) question answering over news archives.

    import rag
    cfg = rag.load_config()
    rag.build_index(cfg)
    hits = rag.search("What did Uzbekistan say about territorial integrity?", k=5)
    ans = rag.answer("What did Uzbekistan say about territorial integrity?")
    rag.get_assistant(cfg).add_document("report.txt", Path("report.txt"))  # into the corpus folder, indexed

Everything public is re-exported here; the modules below are the steps of the pipeline.
"""

from __future__ import annotations

import os
import threading

# Nothing may reach the network at run time: these switches make the Hugging Face libraries load only local
# files and keep Gradio from phoning home. Set before any of those libraries is imported. Their progress bars
# go too: a "Loading weights" bar at every model load would break the CLI's one-line errors and clutter logs.
for _name, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("GRADIO_ANALYTICS_ENABLED", "False"),
    ("TOKENIZERS_PARALLELISM", "false"),
):
    os.environ.setdefault(_name, _value)

from .assistant import Assistant  # noqa: E402
from .config import Config, load_config  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    DocumentNotFound,
    DocumentRejected,
    IndexLoadError,
    IndexMismatchError,
    ModelError,
    RagError,
)
from .types import (  # noqa: E402
    AddedDocument,
    Answer,
    BuildSummary,
    Citation,
    CorpusUpdate,
    Document,
    Hit,
    Passage,
    RejectedFile,
    SkippedFile,
    StreamEvent,
)

__all__ = [
    "AddedDocument",
    "Answer",
    "Assistant",
    "Citation",
    "StreamEvent",
    "answer",
    "BuildSummary",
    "Config",
    "ConfigError",
    "CorpusUpdate",
    "Document",
    "DocumentNotFound",
    "DocumentRejected",
    "Hit",
    "IndexLoadError",
    "IndexMismatchError",
    "ModelError",
    "Passage",
    "RagError",
    "RejectedFile",
    "SkippedFile",
    "build_index",
    "get_assistant",
    "load_config",
    "search",
]

_assistants: dict[Config, Assistant] = {}
# Threads making their first call at once must share one Assistant: two would each load the models.
_assistants_lock = threading.Lock()


def get_assistant(config: Config | None = None) -> Assistant:
    """The shared Assistant for a configuration, so repeated calls load the models once."""
    cfg = config if config is not None else load_config()
    with _assistants_lock:  # cheap to hold: an Assistant loads its models on first use, not here
        if cfg not in _assistants:
            _assistants[cfg] = Assistant(cfg)
        return _assistants[cfg]


def build_index(config: Config | None = None, *, rebuild: bool = False) -> BuildSummary:
    """Index the corpus folder incrementally; returns what was added, changed, removed and skipped."""
    return get_assistant(config).build_index(rebuild=rebuild)


def search(query: str, k: int = 5, *, config: Config | None = None, **filters: str | None) -> list[Hit]:
    """Hybrid cross-lingual search; filters: lang, source (file or glob), date_from, date_to."""
    return get_assistant(config).search(query, k, **filters)


def answer(question: str, history: list[dict] | None = None, *, config: Config | None = None, **options) -> Answer:
    """A short answer in the question's language with verified citations, or a plain refusal.

    history: earlier turns as [{"role": "user" | "assistant", "content": ...}]; options: model ("fast",
    "quality", a .gguf path), k, lang, source, date_from, date_to, reply_lang, cancel."""
    return get_assistant(config).answer(question, history, **options)
