import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

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
        ({"answer": {"translate": 1}}, "[answer] translate must be true or false, got 1."),
        ({"answer": {"min_confidence": 1.5}}, "[answer] min_confidence must be at most 1"),
        ({"retrieval": {"k": True}}, "[retrieval] k must be a whole number, got True."),
        ({"retrieval": {"k": 0}}, "[retrieval] k must be at least 1, got 0."),
        ({"models": {"backend": "gpu"}}, '[models] backend must be "torch", "onnx" or "onnx-int8", got \'gpu\'.'),
        ({"corpus": {"extensions": [".txt", 3]}}, "[corpus] extensions must be a list of strings"),
        ({"corpus": {"path": 3}}, "[corpus] path must be a path string, got 3."),
        ({"index": {"milvus_collection": "9x"}}, "milvus_collection must be letters, digits and underscores"),
        ({"answer": {"refuse_below": 0.3}}, "[answer] refuse_below is no longer used"),
        ({"models": {"query_prefix": "query: "}}, "[models] query_prefix is no longer used: the query and passage"),
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


def test_a_changed_copy_is_checked_like_a_loaded_one():
    cfg = rag.load_config({})
    assert dataclasses.replace(cfg.retrieval, k=9).k == 9
    with pytest.raises(ValidationError):
        dataclasses.replace(cfg.retrieval, k="9")
    with pytest.raises(rag.ConfigError, match=r"\[chunking\] overlap \(700\) must be smaller than size \(600\)"):
        cfg.with_overrides(chunking={"overlap": 700})


def test_an_empty_cache_dir_means_the_default_and_toml_numbers_fill_float_keys():
    cfg = rag.load_config({"models": {"cache_dir": ""}, "corpus": {"max_file_mb": 2}})
    assert cfg.models.cache_dir is None and cfg.models.cache == default_model_cache()
    assert cfg.corpus.max_file_mb == 2.0 and isinstance(cfg.corpus.max_file_mb, float)
