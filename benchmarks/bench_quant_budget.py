"""Accuracy-budgeted int8 (issue 9) vs plain int8: accuracy drop, bytes, p50 latency at 1 thread, layers kept float,
search wall time. Cases: the outlier-channel CNN (tests/test_quant_budget.py) on .pte and .tflite, and the Keras
SimpleCNN on .tflite, all on held-out builtin:digits (calibration from the train split).

    python benchmarks/bench_quant_budget.py      -> benchmarks/results/quant_budget.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
from common import write  # noqa: E402


def _p50_tflite(data: bytes, x: np.ndarray, runs: int = 100) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    sr = it.get_signature_runner(next(iter(it.get_signature_list())))
    key, d = next(iter(sr.get_input_details().items()))
    sample = x[:1].astype(d["dtype"])
    for _ in range(10):
        sr(**{key: sample})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sr(**{key: sample})
        ts.append(time.perf_counter() - t)
    return round(1e3 * float(np.median(ts)), 4)


def _p50_pte(program, x: np.ndarray, runs: int = 100) -> float:
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(1)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.pte"
        p.write_bytes(program.buffer)
        method = Runtime.get().load_program(str(p)).load_method("forward")
        sample = [torch.from_numpy(np.array(x[:1], order="C", copy=True))]
        for _ in range(10):
            method.execute(sample)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            method.execute(sample)
            ts.append(time.perf_counter() - t)
    return round(1e3 * float(np.median(ts)), 4)


def _row(case, kind, facts, nbytes, p50):
    m = facts["measured"]
    return {"case": case, "variant": kind, "accuracy": m.get("accuracy"), "float_accuracy": m.get("float_accuracy"),
            "drop_pp": m.get("drop_pp"), "bytes": nbytes, "p50_ms_1thread": p50,
            "equalization": (facts.get("equalization") or {}).get("applied") or [],
            "float_layers": facts.get("float_layers"), "search_seconds": facts.get("search_seconds"),
            "candidates_tried": len(facts.get("search") or [])}


def main() -> dict:
    import torch

    import edgeport.registry as reg
    from edgeport.demo.datasets import digits_as_float
    from edgeport.converters.pte import budget as pte_budget
    from edgeport.converters.tflite import budget as tflite_budget
    from edgeport.quantization import budget as B
    from edgeport.signature import make_input
    from edgeport.sources import load_source
    from tests.test_quant_budget import BUDGET_PP, SCALE, outlier_cnn

    reg.matrix()
    rows = []
    xt, _ = digits_as_float("train", "NCHW")
    xh, yh = digits_as_float("heldout", "NCHW")
    calib = xt[::7][:200]
    src = load_source(outlier_cnn(SCALE), inputs=[make_input("x", "float32", (1, 1, 28, 28))])
    src.task = "classification"
    batches = B.torch_batches({"x": calib}, ["x"])
    kw = dict(task="classification", input_names=["x"], output_names=["logits"])
    budget = {"max_drop_pp": BUDGET_PP}
    # .pte: plain = budget infinite (no search), budgeted = 0.5 pp
    for kind, b, eq in (("plain int8", {"max_drop_pp": 100.0}, False), ("budgeted", budget, True)):
        res = pte_budget.search(src.model, batches[0], batches, {"x": xh, "y": yh}, budget=b, equalize=eq, **kw)
        rows.append(_row("outlier-cnn x1000 .pte", kind, res.facts, res.facts["bytes"], _p50_pte(res.program, xh)))
        print(rows[-1], file=sys.stderr)
    for kind, b, eq in (("plain int8", {"max_drop_pp": 100.0}, False), ("budgeted", budget, True)):
        res = tflite_budget.search(src, {"x": calib}, {"x": xh, "y": yh}, budget=b, equalize=eq)
        rows.append(_row("outlier-cnn x1000 .tflite", kind, res.facts, len(res.data), _p50_tflite(res.data, xh)))
        print(rows[-1], file=sys.stderr)
    k = load_source("builtin:simplecnn-keras")
    xtk, _ = digits_as_float("train", "NHWC")
    xhk, yhk = digits_as_float("heldout", "NHWC")
    for kind, b in (("plain int8", {"max_drop_pp": 100.0}), ("budgeted", {"max_drop_pp": 0.3})):
        res = tflite_budget.search(k, {"image": xtk[:200]}, {"image": xhk, "y": yhk}, budget=b)
        rows.append(_row("simplecnn-keras .tflite (AEQ)", kind, res.facts, len(res.data), _p50_tflite(res.data, xhk)))
        print(rows[-1], file=sys.stderr)
    torch.set_num_threads(1)
    return {"budget_pp": {"outlier-cnn": BUDGET_PP, "simplecnn-keras": 0.3}, "data": "builtin:digits heldout (360)",
            "calibration": "builtin:digits train, 200 rows", "rows": rows}


def minilm() -> dict:
    """`edgeport convert --model builtin:minilm --to pte,tflite --quant int8 --min-cosine 0.99` as a user runs it
    (calibration: builtin:sentences train, 118 rows; budget rows: its held-out 225), read back from the manifests."""
    import json
    import subprocess

    rows = []
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "edgeport", "convert", "--model", "builtin:minilm", "--to", "pte,tflite",
                            "--quant", "int8", "--min-cosine", "0.99", "--out", d], capture_output=True, text=True)
        wall = round(time.perf_counter() - t0, 1)
        for mp in sorted(Path(d).glob("*.manifest.json")):
            m = json.loads(mp.read_text())
            q = m["quantization"]
            rows.append({"artifact": m["name"], "bytes": sum(f["bytes"] for f in m["files"]),
                         "plain_int8_cosine": q.get("plain_int8"), "budgeted_cosine": q["measured"]["cosine"],
                         "measured_by": q.get("measured_by"), "equalization": (q.get("equalization") or {}).get("applied"),
                         "policy": q.get("policy"), "float_layers": len(q.get("float_layers") or []),
                         "search_seconds": q.get("search_seconds"), "candidates_tried": len(q.get("search") or []),
                         "budget_rows": q["budget"]["rows"]})
        failures = [ln for ln in p.stderr.splitlines() if "FAILED" in ln or ln.startswith("edgeport: error")]
    return {"budget": "min_cosine 0.99", "convert_wall_s": wall, "exit": p.returncode, "rows": rows, "failures": failures,
            "fp32_bytes": {"minilm.fp32.pte": 90354944, "minilm.fp32.tflite": 90112788}}


if __name__ == "__main__":
    if "--minilm" in sys.argv:  # minutes: MiniLM's search on .pte and .tflite, recorded beside the CNN cases
        import json

        prev = json.loads((ROOT / "results" / "quant_budget.json").read_text())
        write("quant_budget", {**{k: v for k, v in prev.items() if k not in ("benchmark", "when", "host", "left_out")},
                               "minilm": minilm()})
    else:
        write("quant_budget", main())
