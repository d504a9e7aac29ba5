from pathlib import Path

import pytest

import rag
from rag.config import default_model_cache


def test_project_config_loads_and_resolves_paths_against_its_folder():
    root = Path(__file__).resolve().parent.parent
    cfg = rag.load_config(root / "config.toml")
    assert cfg.corpus.path == root / "seeds"
    assert cfg.index.path == root / "index"
    assert cfg.models.embedding == "multilingual-e5-small"
    assert cfg.source == root / "config.toml"


def test_every_key_in_config_toml_is_documented_with_a_comment():
    root = Path(__file__).resolve().parent.parent
    lines = (root / "config.toml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            previous = lines[i - 1].strip()
            assert previous.startswith("#") or "=" in previous, f"undocumented key: {line}"


def test_keyword_overrides(tmp_path):
    cfg = rag.load_config(corpus=tmp_path / "docs", index=tmp_path / "idx")
    assert cfg.corpus.path == tmp_path / "docs"
    assert cfg.index.path == tmp_path / "idx"


def test_dict_and_section_overrides():
    cfg = rag.load_config({"retrieval": {"k": 9}}, chunking={"size": 300, "overlap": 0})
    assert cfg.retrieval.k == 9
    assert cfg.chunking.size == 300


@pytest.mark.parametrize(
    "data, message",
    [
        ({"retrieval": {"kk": 3}}, "Unknown key 'kk' in [retrieval]"),
        ({"nope": {}}, "Unknown config section [nope]"),
        ({"retrieval": {"k": "five"}}, "[retrieval] k must be a whole number"),
        ({"chunking": {"size": 100, "overlap": 100}}, "overlap (100) must be smaller than size (100)"),
        ({"index": {"on_mismatch": "ignore"}}, "on_mismatch must be"),
        ({"answer": {"max_question_chars": 5}}, "[answer] max_question_chars must be at least 20"),
    ],
)
def test_bad_values_get_messages_that_name_the_key(data, message):
    with pytest.raises(rag.ConfigError) as err:
        rag.load_config(data)
    assert message in str(err.value)


def test_broken_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[corpus\npath = 1", encoding="utf-8")
    with pytest.raises(rag.ConfigError, match="not valid TOML"):
        rag.load_config(bad)
    with pytest.raises(rag.ConfigError, match="Config file not found"):
        rag.load_config(tmp_path / "missing.toml")


def test_model_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path / "cache"))
    assert default_model_cache() == tmp_path / "cache"
    assert rag.load_config({}).models.cache == tmp_path / "cache"
    cfg = rag.load_config({"models": {"cache_dir": str(tmp_path / "other")}})
    assert cfg.models.cache == tmp_path / "other"
