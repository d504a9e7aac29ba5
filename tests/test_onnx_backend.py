"""The ONNX Runtime backends of the embedding model: configuration, fingerprints, and (with the real model)
agreement with PyTorch, search quality and the index's refusal to mix backends."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import rag
from rag.assistant import _backend_of
from rag.embeddings import backend_fingerprint
from rag.errors import ConfigError, ModelError
from rag.models import resolve_onnx_model
from tests.conftest import EVAL, SEEDS


def test_backend_must_be_one_of_three():
    with pytest.raises(ConfigError, match='backend must be "torch", "onnx" or "onnx-int8"'):
        rag.load_config({"models": {"backend": "int8"}})
    assert rag.load_config({"models": {"backend": "onnx-int8"}}).models.backend == "onnx-int8"


def test_the_backend_is_part_of_the_fingerprint_an_index_records():
    # fp32 ONNX computes PyTorch's vectors (see test_fp32_onnx_vectors_are_torchs): one fingerprint for both.
    assert backend_fingerprint("sha256:abc", "torch") == "sha256:abc"
    assert backend_fingerprint("sha256:abc", "onnx") == "sha256:abc"
    # each int8 export computes other vectors: an index built with the first (per-tensor) graph is not searched
    # with the current one
    assert backend_fingerprint("sha256:abc", "onnx-int8") == "sha256:abc+onnx-int8.v2"
    assert backend_fingerprint("sha256:abc", "onnx-int8") != "sha256:abc+onnx-int8"
    assert _backend_of("sha256:abc+onnx-int8.v2") == "onnx-int8.v2"
    assert _backend_of("sha256:abc").startswith("fp32")
    assert _backend_of(None).startswith("fp32")


def test_onnx_backend_refuses_a_model_it_cannot_export(tmp_path):
    cfg = rag.load_config({"models": {"backend": "onnx", "embedding": str(tmp_path)}})
    with pytest.raises(ModelError, match='set backend = "torch"'):
        resolve_onnx_model(cfg.models)


def test_an_unprepared_onnx_graph_names_the_command_that_builds_it(tmp_path):
    cfg = rag.load_config({"models": {"backend": "onnx-int8", "cache_dir": str(tmp_path)}})
    with pytest.raises(ModelError, match="python -m rag models"):
        resolve_onnx_model(cfg.models)


def test_a_graph_whose_attention_is_not_recognised_is_not_fused(tmp_path):
    """The setup then installs the plain graph (same vectors, slower) instead of a half-fused one."""
    import onnx
    from onnx import TensorProto, helper

    from rag.onnx_export import fuse_operators

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.0] * 16)
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="only_matmul")
    graph = helper.make_graph(
        [node],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[weight],
    )
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(plain))
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text(
        json.dumps({"num_attention_heads": 12, "hidden_size": 384, "num_hidden_layers": 12}), encoding="utf-8"
    )
    assert fuse_operators(source, plain, tmp_path / "fused.onnx") is False
    assert not (tmp_path / "fused.onnx").exists()


def test_preparing_int8_also_prepares_the_fp32_graph_the_questions_use(tmp_path, monkeypatch):
    from rag.models import install

    built = []
    monkeypatch.setattr(install, "_prepare_embedding", lambda cache, model, verify, log: cache / model.name)
    monkeypatch.setattr(install, "_prepare_onnx", lambda cache, variant, verify, log: built.append(variant))
    install.prepare_models(tmp_path, ["embedding"], backend="onnx-int8", log=lambda _: None)
    assert built == ["onnx", "onnx-int8"]
    built.clear()
    install.prepare_models(tmp_path, ["embedding"], backend="torch", log=lambda _: None)
    assert built == []


# -- with the real model ---------------------------------------------------------------------------------------

DEV = [json.loads(line) for line in (EVAL / "seeds_dev.jsonl").read_text(encoding="utf-8").splitlines() if line]


BACKENDS = ("torch", "onnx", "onnx-int8")


@pytest.fixture(scope="module")
def embedders():
    from rag.embeddings import Embedder
    from rag.models import prepare_models

    cfg = rag.load_config()
    for backend in BACKENDS[1:]:
        prepare_models(cfg.models.cache, ["embedding"], backend=backend, log=lambda _: None)
    return {backend: Embedder(replace(cfg.models, backend=backend)) for backend in BACKENDS}


@pytest.mark.model
def test_the_fp32_graph_runs_onnxruntimes_fused_transformer_operators(embedders):
    """The speed the fp32 export is for (bench/README.md, "Embedding backends"): every layer's attention is one
    fused operator, not the dozen small ones torch.onnx.export writes."""
    import onnx

    models = replace(rag.load_config().models, backend="onnx")
    graph = onnx.load(str(resolve_onnx_model(models)), load_external_data=False)
    operators = [node.op_type for node in graph.graph.node]
    assert operators.count("Attention") == 12
    assert operators.count("SkipLayerNormalization") == 24
    assert "Softmax" not in operators


@pytest.mark.model
def test_fp32_onnx_vectors_are_torchs(embedders):
    """What lets "torch" and "onnx" share an index: the same vectors, to float rounding."""
    texts = [p.read_text(encoding="utf-8")[:600] for p in sorted(SEEDS.glob("*.txt"))]
    cosines = (embedders["torch"].encode_passages(texts) * embedders["onnx"].encode_passages(texts)).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    assert embedders["torch"].fingerprint == embedders["onnx"].fingerprint


@pytest.mark.model
def test_int8_vectors_agree_with_torch_on_every_seed_language(embedders):
    passages = [p.read_text(encoding="utf-8")[:600] for p in sorted(SEEDS.glob("*.txt"))]
    torch_vectors = embedders["torch"].encode_passages(passages)
    int8_vectors = embedders["onnx-int8"].encode_passages(passages)
    cosines = (torch_vectors * int8_vectors).sum(axis=1)
    assert cosines.min() >= 0.99 and cosines.mean() >= 0.995, cosines  # the per-tensor v1 graph: 0.98 / 0.97
    assert np.allclose(np.linalg.norm(int8_vectors, axis=1), 1.0, atol=1e-4)


@pytest.mark.model
def test_int8_encodes_questions_with_the_fp32_graph(embedders):
    """Questions are short and few: in fp32 a score carries the int8 error of the passage side only."""
    queries = [item["q"] for item in DEV]
    np.testing.assert_allclose(
        embedders["onnx-int8"].encode_queries(queries), embedders["onnx"].encode_queries(queries), atol=1e-6
    )
    passages = [p.read_text(encoding="utf-8")[:600] for p in sorted(SEEDS.glob("*.txt"))]
    assert not np.allclose(
        embedders["onnx-int8"].encode_passages(passages), embedders["onnx"].encode_passages(passages)
    )


@pytest.mark.model
def test_indexing_with_int8_never_loads_the_fp32_graph(embedders):
    """The fp32 graph is most of the memory; a process that only indexes does without it."""
    from rag.embeddings import Embedder

    embedder = Embedder(replace(rag.load_config().models, backend="onnx-int8"))
    embedder.encode_passages(["passage one", "passage two"])
    assert embedder._onnx_queries is None
    embedder.encode_queries(["a question"])
    assert embedder._onnx_queries is not None


@pytest.mark.model
def test_int8_search_ranks_the_dev_answers_like_torch(embedders, tmp_path):
    hits_at_1 = {}
    for backend in ("torch", "onnx-int8"):
        embedder = embedders[backend]
        cfg = rag.load_config({"corpus": {"path": str(SEEDS)}, "index": {"path": str(tmp_path / backend)}})
        assistant = rag.Assistant(replace(cfg, models=replace(cfg.models, backend=backend)), embedder=embedder)
        assistant.build_index()
        answerable = [item for item in DEV if item["gold"]]
        firsts = [assistant.search(item["q"], k=5)[0].source in item["gold"] for item in answerable]
        tops = [any(h.source in item["gold"] for h in assistant.search(item["q"], k=5)) for item in answerable]
        assert all(tops), backend
        hits_at_1[backend] = sum(firsts)
    assert hits_at_1["onnx-int8"] >= hits_at_1["torch"] - 1, hits_at_1


@pytest.mark.model
def test_an_index_built_with_torch_is_not_searched_with_int8(embedders, tmp_path):
    cfg = rag.load_config({"corpus": {"path": str(SEEDS)}, "index": {"path": str(tmp_path / "index")}})
    rag.Assistant(cfg, embedder=embedders["torch"]).build_index()
    int8 = rag.Assistant(replace(cfg, models=replace(cfg.models, backend="onnx-int8")), embedder=embedders["onnx-int8"])
    with pytest.raises(rag.IndexMismatchError, match="onnx-int8"):
        int8.search("Bayramov", k=1)


def test_the_prompts_are_the_ones_the_model_folder_records(tmp_path):
    from rag.models import recorded_prompts

    folder = tmp_path / "model"
    folder.mkdir()
    assert recorded_prompts(str(folder)) == ("", "")  # a model trained without prompts gets none
    settings = {"prompts": {"query": "Q> ", "corpus": "C> ", "passage": "P> "}, "default_prompt_name": None}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(settings), encoding="utf-8")
    assert recorded_prompts(str(folder)) == ("Q> ", "P> ")  # sentence-transformers' order: document, passage, corpus
    (folder / "config_sentence_transformers.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelError, match="not readable JSON"):
        recorded_prompts(str(folder))


@pytest.mark.model
def test_both_backends_apply_the_recorded_e5_prompts(embedders):
    """encode_query / encode_document (torch) and the ONNX path must both put "query: " / "passage: " first,
    as e5 was trained: the vectors equal those of the prefixed text encoded with no prompt at all."""
    texts = ["Xələfov met Usmanov in Baku.", "Министр обсудил вопросы региональной безопасности."]
    model = embedders["torch"]._model
    plain = {
        kind: model.encode([f"{kind}: {t}" for t in texts], prompt="", normalize_embeddings=True)
        for kind in ("query", "passage")
    }
    for backend in ("torch", "onnx"):
        embedder = embedders[backend]
        assert (embedder.query_prompt, embedder.document_prompt) == ("query: ", "passage: ")
        assert (embedder.encode_queries(texts) * plain["query"]).sum(1).min() >= 0.999, backend
        assert (embedder.encode_passages(texts) * plain["passage"]).sum(1).min() >= 0.999, backend
        assert (embedder.encode_queries(texts) * plain["passage"]).sum(1).max() < 0.999, backend


@pytest.mark.model
def test_token_vectors_are_the_texts_own_tokens_on_both_backends(embedders):
    """What word_alignment compares: one unit vector per token of the text, without the "passage: " prompt and
    the special tokens, the same from fp32 ONNX as from PyTorch."""
    texts = ["Özbəkistanın hər zaman Azərbaycanın ərazi bütövlüyünü dəstəklədiyini bildirib.", "Tokyo"]
    torch_vectors = embedders["torch"].passage_token_vectors(texts)
    onnx_vectors = embedders["onnx"].passage_token_vectors(texts)
    for text, t, o in zip(texts, torch_vectors, onnx_vectors, strict=True):
        assert len(t) == len(o) == len(embedders["onnx"]._onnx.tokens(text))
        assert np.allclose(np.linalg.norm(o, axis=1), 1.0, atol=1e-5)
        assert float((t * o).sum(axis=1).min()) > 0.999
