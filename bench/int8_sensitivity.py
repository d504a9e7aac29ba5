"""Where int8 loses: the error each feed-forward output projection adds when it alone is quantised.

    .venv/bin/python bench/int8_sensitivity.py

Measures what rag/onnx_export.py's KEPT_FP32_LAYERS rests on. For each of the 12 layers of the e5 graph, the
fp32 graph is quantised as `quantize_int8` does it (per channel, 7-bit weights) but in that one matrix only,
and the 60 texts below are encoded with it: 20 NTREX articles of the fit half (split by article with
rag.evaluation's rule) in az, ru and en, their first 1,500 characters. The loss is 1 - the mean cosine to the
fp32 vectors. The fp32 graph is the plain export that the int8 export quantises (`onnx_export.export_graph`,
written to a temporary folder), not the installed "onnx" graph, whose fused operators quantise differently.
Prints one line per layer, about 3 minutes on 2 cores. Needs the prepared embedding model (`python -m rag models`).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402

import rag  # noqa: E402
from rag.evaluation import half_of  # noqa: E402
from rag.models import resolve_embedding_model  # noqa: E402
from rag.onnx_encoder import OnnxEncoder  # noqa: E402
from rag.onnx_export import MODEL_FILE, export_graph, feed_forward_outputs, quantize_int8  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
ARTICLES = 20
LAYERS = 12


def calibration_texts() -> list[str]:
    rows = [json.loads(line) for line in (EVAL / "ntrex_az_ru_en_docs.jsonl").read_text(encoding="utf-8").splitlines()]
    fit = [r for r in rows if half_of(str(r["doc_id"])) == "fit"][:ARTICLES]
    return ["passage: " + r[lang][:1500] for r in fit for lang in ("az", "ru", "en")]


def main() -> int:
    cfg = rag.load_config(ROOT / "config.toml")
    source = Path(resolve_embedding_model(cfg.models))
    tokenizer = source / "tokenizer.json"
    texts = calibration_texts()
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / MODEL_FILE
        export_graph(source, fp32)
        reference = OnnxEncoder(fp32, tokenizer, max_tokens=512, threads=0, batch_size=32).encode(texts)
        graph = onnx.load(str(fp32), load_external_data=False)
        for layer in range(LAYERS):
            (node,) = feed_forward_outputs(graph, [layer])
            target = Path(work) / f"layer{layer}.onnx"
            quantize_int8(fp32, target, only=[node])
            vectors = OnnxEncoder(target, tokenizer, max_tokens=512, threads=0, batch_size=32).encode(texts)
            cosines = (vectors * reference).sum(axis=1)
            print(f"layer {layer:2d}: loss {1 - cosines.mean():.5f}, lowest cosine {cosines.min():.4f}", flush=True)
            target.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
