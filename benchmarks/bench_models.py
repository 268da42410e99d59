"""Every target side by side, one run per model: for the built-in CNNs and all-MiniLM-L6-v2, each artifact's bytes,
quality (held-out accuracy, or cosine / nearest-neighbour agreement against float), p50 natively at 1 and 2
threads, and p50 in Chromium for the web formats with the browser/native ratio.

    python benchmarks/bench_models.py [simplecnn-torch simplecnn-keras minilm]

Writes benchmarks/results/models_<name>.json (one file per model, so a slow model can be rerun alone).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

MODELS = {
    "simplecnn-torch": ("builtin:simplecnn-torch", ["pte", "tflite", "onnx"], ["all"]),
    "simplecnn-keras": ("builtin:simplecnn-keras", ["tflite", "tfjs", "onnx"], ["all"]),
    "minilm": ("builtin:minilm", ["pte", "tflite", "onnx"], ["fp32", "dynamic-int8", "int8"]),
}


def run(name: str) -> dict:
    from edgeport.config import EvaluateOptions
    from edgeport.convert import convert
    from edgeport.evaluate import evaluate
    from edgeport.registry import targets

    spec, wanted, recipes = MODELS[name]
    wanted = [t for t in wanted if t in targets()]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        conv = {}
        for t in wanted:
            from edgeport.registry import get_converter

            fw = "keras" if "keras" in spec else "torch"
            rs = [r for r in (get_converter(fw, t).recipes if recipes == ["all"] else recipes) if r in get_converter(fw, t).recipes]
            for m in convert(spec, [t], rs, d):
                conv[m.name] = {"bytes": m.total_bytes, "convert_s": m.conversion.get("seconds"),
                                "parity": m.parity.get("outputs", [{}])[0] if m.parity.get("status") == "measured" else None}
        convert_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        report = evaluate([d], EvaluateOptions(threads=("1", "2")), browser="chromium")
        evaluate_s = time.perf_counter() - t1
    rows = []
    native = {(r.artifact, r.threads): r for r in report.rows if r.device == "local" and not r.error and not r.skipped}
    for r in sorted(report.rows, key=lambda r: (r.artifact, r.device, r.backend, r.threads or 0)):
        if r.skipped:
            continue
        d = {"artifact": r.artifact, "target": r.target, "recipe": r.recipe, "device": r.device,
             "runtime": f"{r.runtime}/{r.backend}", "threads": r.threads, "bytes": r.bytes, "error": r.error,
             "p50_ms": (r.latency_ms or {}).get("p50"), "load_ms": r.load_ms}
        if r.task == "classification":
            d.update(accuracy=r.accuracy, drop_pp=r.accuracy_drop_pp, agreement=r.agreement)
        else:
            d.update(cosine_mean=r.cosine_mean, cosine_min=r.cosine_min, nn_agreement=r.nn_agreement)
        if r.device == "chromium" and d["p50_ms"] is not None:
            nat = native.get((r.artifact, r.threads)) or native.get((r.artifact, 1))
            if nat and nat.latency_ms:
                d["native_p50_ms"] = nat.latency_ms["p50"]
                d["browser_over_native"] = round(d["p50_ms"] / nat.latency_ms["p50"], 2)
        rows.append(d)
    return {"model": spec, "convert_wall_s": round(convert_s, 1), "evaluate_wall_s": round(evaluate_s, 1),
            "float_baseline": report.float_baseline, "data": report.extra.get("data_by_source"), "conversion": conv,
            "rows": rows}


if __name__ == "__main__":
    for n in sys.argv[1:] or list(MODELS):
        write(f"models_{n}", run(n))
