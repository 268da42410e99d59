"""int8 vs fp32 latency at 1 thread: the built-in models and MobileNetV2, TFLite and ExecuTorch side by side.

Each artifact is timed in its own worker process (the evaluator's), at 1 thread, >=10 warm-ups and >=100 runs."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402


def _time(manifests, folder: Path, data: Path) -> dict:
    from edgeport.evaluate import _run_worker

    out = {}
    for m in manifests:
        job = {"manifest": str(m.path), "data": str(data), "reference": None, "threads": [1], "verify": True,
               "warmup": 10, "min_runs": 100, "min_seconds": 2.0}
        res = _run_worker(job, folder, 900)
        res = res[0] if isinstance(res, list) else res
        if res.get("error"):
            raise RuntimeError(f"{m.name}: {res['error']}")
        out[m.name] = res["latency_ms"]["p50"]
        print(f"  {m.name}: p50 {out[m.name]:.3f} ms", file=sys.stderr)
    return out


def main() -> dict:
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert
    from edgeport.signature import parse_input_spec

    import mobilenet

    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        # Built-ins, on held-out digits.
        from edgeport.demo.datasets import digits_as_float

        ms = convert("builtin:simplecnn-torch", ["pte", "tflite"], ["fp32", "int8"], d / "a")
        ms += convert("builtin:simplecnn-keras", ["tflite"], ["fp32", "int8"], d / "a")
        lat = {}
        for layout, name, group in (("NCHW", "x", "simplecnn-torch"), ("NHWC", "image", "simplecnn-keras")):
            x, y = digits_as_float("heldout", layout)
            np.savez(d / f"{group}.npz", **{f"in:{name}": x}, y=y)
            lat.update(_time([m for m in ms if m.name.startswith(group)], d, d / f"{group}.npz"))
        # MobileNetV2 (3.5 M parameters, 224x224x3), one torch model through both ExecuTorch and litert-torch.
        rng = np.random.default_rng(0)
        calib = rng.random((16, 3, 224, 224), dtype=np.float32)
        np.savez(d / "calib.npz", x=calib)
        np.savez(d / "mnv2.npz", **{"in:x": calib[:4]}, y=np.zeros(4, np.int64))
        mm = convert(mobilenet.build(), ["pte", "tflite"], ["fp32", "int8"], d / "m", ConvertOptions(calib=str(d / "calib.npz")),
                     inputs=[parse_input_spec("x:float32[1,3,224,224]")], name="mobilenetv2", task="classification")
        lat.update(_time(mm, d, d / "mnv2.npz"))
        for m in ms + mm:
            if m.recipe != "int8":
                continue
            fp32 = m.name.replace(".int8.", ".fp32.")
            rows.append({"model": m.name.split(".")[0], "target": m.target, "runtime": "ai-edge-litert" if m.target == "tflite" else "executorch.runtime",
                         "fp32_p50_ms": lat[fp32], "int8_p50_ms": lat[m.name], "speedup": round(lat[fp32] / lat[m.name], 3),
                         "int8_parity_top1_agreement": m.parity["outputs"][0].get("top1_agreement"),
                         "note": "random-init weights on noise: agreement not meaningful" if m.name.startswith("mobilenet") else ""})
    return {"threads": 1, "goal": "int8 >= 2x faster than fp32 on the larger model", "rows": rows}


if __name__ == "__main__":
    write("int8_speedup", main())
