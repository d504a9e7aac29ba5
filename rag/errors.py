"""The few errors the library raises on purpose. Each message names the problem and the fix;
the CLI prints it as one line and exits non-zero, the app shows it in the page."""


class RagError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ConfigError(RagError):
    """config.toml (or an override) is missing, malformed or names something that does not exist."""


class ModelError(RagError):
    """A model file is missing, damaged or not prepared: run `python -m rag models`."""


class IndexLoadError(RagError):
    """The index on disk is missing, damaged or was built with other settings."""


class IndexMismatchError(IndexLoadError):
    """The index was built with another embedding model or other chunking settings."""


class DocumentSkipped(RagError):
    """One file cannot be indexed (empty, binary, unsupported, unreadable...). The build skips it and goes on."""


class DocumentRejected(RagError):
    """A document that cannot be added or removed as asked (a type the index does not read, empty, too large, a
    name outside the corpus folder). Nothing was written or deleted."""


class DocumentNotFound(DocumentRejected):
    """The document to remove is not in the corpus folder."""
