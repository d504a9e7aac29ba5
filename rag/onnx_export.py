"""Setup only: export the prepared e5 folder to ONNX (fp32) and quantise it to int8, offline, then check it.

`torch.onnx.export` writes the transformer's graph from the weights already on disk. For fp32, onnxruntime's
transformer optimizer then fuses each layer's attention, GELU and layer norms into onnxruntime's own operators
(`fuse_operators`); for int8, `onnxruntime.quantization.quantize_dynamic` stores most matrix weights as int8, one
scale per output channel (activations are quantised on the fly, so no calibration data is needed;
`quantize_int8` says what stays fp32). sentence-transformers' own ONNX backend would need `optimum`, whose
releases pin transformers below 5 and so break sentence-transformers 6; these calls need only torch and
onnxruntime.

The result is checked like every other model file (SHA256SUMS and a stamp, see models/stamps.py) and, before it is
installed, against the PyTorch model it came from: on AGREEMENT_TEXTS (news sentences in az, ru and en) the
mean cosine between the two models' vectors must reach MIN_AGREEMENT for its variant. Measured: fp32 mean
0.9999 on 120 NTREX passages (fused or not); int8 as exported now mean 0.9984 (lowest 0.9977) on
AGREEMENT_TEXTS (one scale per matrix, the first export, gave 0.984). A graph below these floors is broken, not
merely quantised.
Retrieval with each backend is measured in bench/RESULTS.md and compared across int8 graphs in bench/README.md.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import ModelError

# Bumped when a variant's export changes, so that a graph prepared by an older version is rebuilt at setup.
EXPORT_VERSION = {"onnx": 2, "onnx-int8": 2}  # onnx v2: fused operators; int8 v2: per channel, 7-bit, three fp32
OPSET = 17
VARIANTS = ("onnx", "onnx-int8")
MODEL_FILE = "model.onnx"
# Floors for the mean and the lowest cosine to the PyTorch vectors (see the module docstring for the measurements).
# Layers whose feed-forward output projection stays fp32 in the int8 graph. That projection reads the
# widest-ranging activations (after GELU, 1,536 wide); measured by bench/int8_sensitivity.py on NTREX articles of
# the fit half, quantising it alone costs 1 - cosine = 0.00196 in layer 4, 0.00026 in layer 5, 0.00020 in layer 0
# and at most 0.00008 in each other layer, so these three carry three quarters of the int8 error for a quarter of
# those projections' work.
KEPT_FP32_LAYERS = (0, 4, 5)
MIN_AGREEMENT = {"onnx": (0.999, 0.99), "onnx-int8": (0.995, 0.99)}

AGREEMENT_TEXTS = (
    "passage: Azərbaycan və Özbəkistan xarici işlər nazirlikləri arasında siyasi məsləhətləşmələr keçirilib.",
    "passage: Nazir bölgədə yaranmış yeni reallıqlar və bərpa işləri barədə məlumat verib.",
    "passage: Prezident telefon söhbətində mülki əhalinin təhlükəsizliyinin təmin edildiyini bildirib.",
    "passage: Zəlzələdən sonra xilasedicilər dağılmış binaların altında sağ qalanları axtarırlar.",
    "passage: Министр иностранных дел встретился с коллегой на полях Генеральной Ассамблеи ООН.",
    "passage: Стороны обсудили сотрудничество в экономической и гуманитарной сферах.",
    "passage: Число погибших после землетрясения и цунами превысило восемьсот человек.",
    "passage: Сборная Европы выиграла Кубок Райдера, опередив американцев на десять очков.",
    "passage: The foreign minister met ambassadors of the member states accredited in the country.",
    "passage: The Senate committee postponed the vote on the nomination until the investigation ends.",
    "passage: Rescue teams searched collapsed buildings for survivors after the earthquake.",
    "query: What did Uzbekistan say about territorial integrity?",
    "query: Когда состоялись политические консультации?",
    "query: Bayramov kimlə görüşüb?",
)


def recipe(variant: str, source_fingerprint: str) -> str:
    """The stamp of a prepared ONNX folder: which export, which variant, from which source model."""
    return f"onnx-export v{EXPORT_VERSION[variant]} {variant} from {source_fingerprint}"


def build(source: Path, variant: str, out_dir: Path, log: Callable[[str], None]) -> dict[str, float]:
    """Write `out_dir`/model.onnx for `variant` from the sentence-transformers folder `source`, check its
    agreement with the PyTorch model, and return the measured agreement (mean and lowest cosine)."""
    if variant not in VARIANTS:
        raise ModelError(f"Unknown ONNX variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".onnx-work-") as work:
        fp32 = Path(work) / MODEL_FILE
        started = time.perf_counter()
        # The fp32 graph is fused from the eager attention code, the only form onnxruntime's fusion recognises;
        # the int8 graph stays quantised from the plain export, as bench/int8_sensitivity.py measured it.
        export_graph(source, fp32, attention="eager" if variant == "onnx" else "sdpa")
        log(f"  exported to ONNX in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        if variant == "onnx-int8":
            quantize_int8(fp32, out_dir / MODEL_FILE)
            log(f"  quantised to int8 in {time.perf_counter() - started:.1f} s")
        elif fuse_operators(source, fp32, out_dir / MODEL_FILE):
            log(f"  attention, GELU and layer norms fused in {time.perf_counter() - started:.1f} s")
        else:
            log("  onnxruntime could not fuse this graph's operators; the plain graph is used (slower, same vectors)")
            shutil.move(str(fp32), out_dir / MODEL_FILE)
    agreement = check_agreement(source, out_dir / MODEL_FILE, variant)
    log(f"  agreement with the PyTorch model: mean cosine {agreement['mean']:.4f}, lowest {agreement['min']:.4f}")
    return agreement


def export_graph(source: Path, target: Path, *, attention: str = "sdpa") -> None:
    """Write `target`, the fp32 ONNX graph of the sentence-transformers folder `source` (inputs input_ids and
    attention_mask, output the token vectors). `attention` is the transformers attention code traced: "sdpa"
    (its default) or "eager", which onnxruntime's fusion recognises (see fuse_operators)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation=attention).eval()

    class TokenVectors(torch.nn.Module):
        """The transformer with the two inputs e5 needs, returning the token vectors that pooling averages."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    axes = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_vectors")}
    # The tracer warns about Python conditions in the attention code that it records as constants; they depend
    # only on the inputs' shapes, which stay symbolic here (dynamic axes), so the warnings are noise to a user.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenVectors(model),
            example,
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["token_vectors"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript, not installed
        )


def fuse_operators(source: Path, graph_file: Path, target: Path) -> bool:
    """Write `target`: the fp32 graph with each layer's attention, GELU and residual layer norms fused into
    onnxruntime's own operators (its transformer optimizer, part of the onnxruntime package). The arithmetic is
    the same (cosine to the plain graph 0.9999998 on 320 NTREX passages), in fewer, larger kernels: 6-16 % more
    passages per second on 2 cores (bench/fused_graph.py). False, writing nothing, when not every layer's attention
    was recognised: the plain graph is then used, slower but correct."""
    import json
    import logging

    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # it logs each fusion it applies
    fused = optimizer.optimize_model(
        str(graph_file),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        optimization_options=FusionOptions("bert"),
        opt_level=0,  # the fusions only; the session applies onnxruntime's own graph optimisations when it loads
        use_gpu=False,
    )
    if fused.get_fused_operator_statistics().get("Attention", 0) != int(config["num_hidden_layers"]):
        return False
    fused.save_model_to_file(str(target))
    return True


def quantize_int8(source: Path, target: Path, *, only: Sequence[str] | None = None) -> None:
    """Write `target`, the int8 graph of the fp32 graph `source`. With `only`, just those nodes are quantised
    and every other stays fp32 (bench/int8_sensitivity.py measures each matrix's share of the error that way)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs a suggestion to run its pre-processing first; that step only adds shape information
    # and changed nothing measurable here, so the warning is noise to a user preparing the model.
    logging.getLogger().setLevel(logging.ERROR)
    graph = onnx.load(str(source), load_external_data=False)
    if only is None:
        # The feed-forward output projections of the layers where int8 loses the most stay fp32 (see
        # KEPT_FP32_LAYERS); every other matrix is int8.
        kept_fp32 = feed_forward_outputs(graph, KEPT_FP32_LAYERS)
    else:
        kept_fp32 = [n.name for n in graph.graph.node if n.op_type in ("MatMul", "Gather") and n.name not in only]
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        # One scale per output channel of each weight matrix rather than one per matrix, and 7-bit weights so
        # that the int8 products cannot saturate on CPUs without VNNI instructions: the same kernels and speed.
        per_channel=True,
        reduce_range=True,
        nodes_to_exclude=kept_fp32,
    )


def feed_forward_outputs(graph, layers: Sequence[int]) -> list[str]:
    """The MatMul nodes of the feed-forward output projections of `layers` (`.../layer.N/output/dense/MatMul`),
    not the attention output projections (`.../layer.N/attention/output/dense/MatMul`)."""
    names = [node.name for node in graph.graph.node if node.op_type == "MatMul"]
    found = [
        name for name in names if "/attention/" not in name and any(f"/layer.{n}/output/dense/" in name for n in layers)
    ]
    if len(found) != len(layers):
        raise ModelError(
            f"The exported graph has {len(found)} of the {len(layers)} feed-forward output projections that the "
            f"int8 export keeps fp32 (MatMul nodes named .../layer.N/output/dense/...; {len(names)} MatMul nodes "
            "in all). Report this with the versions of torch and onnxruntime."
        )
    return found


def check_agreement(source: Path, model_file: Path, variant: str) -> dict[str, float]:
    """Cosines between the PyTorch model's vectors and the ONNX graph's on AGREEMENT_TEXTS; ModelError when
    they fall below the variant's floors."""
    from sentence_transformers import SentenceTransformer

    from .onnx_encoder import OnnxEncoder

    reference = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    expected = reference.encode(list(AGREEMENT_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    encoder = OnnxEncoder(
        model_file, source / "tokenizer.json", max_tokens=int(reference.max_seq_length), threads=0, batch_size=8
    )
    cosines = (encoder.encode(list(AGREEMENT_TEXTS)) * expected).sum(axis=1)
    mean, lowest = float(np.mean(cosines)), float(np.min(cosines))
    floor_mean, floor_min = MIN_AGREEMENT[variant]
    if mean < floor_mean or lowest < floor_min:
        raise ModelError(
            f"The {variant} export of {source.name} disagrees with the PyTorch model (mean cosine {mean:.4f}, "
            f"lowest {lowest:.4f}; at least {floor_mean} and {floor_min} are expected). Set [models] backend = "
            '"torch" in config.toml, and report this with your torch and onnxruntime versions.'
        )
    return {"mean": mean, "min": lowest}
