"""Browser speed as a site would ship it (issue 12): MobileNetV2-class models in every web runtime's shipped build
(LiteRT.js threaded relaxed-SIMD build, TF.js wasm, onnxruntime-web wasm; cross-origin isolated page) at 1 and 2
threads, against the native runtime of the same artifact at the same thread count: p50 of each and browser p50 /
native p50 ("ratio"). TF.js has no native runtime; its rows are set against the same source's fp32 .tflite on native
LiteRT ("native_ref").

What is measured, all through edgeport's own converters and `edgeport.evaluate(..., browser="chromium")` (the
path `edgeport evaluate --browser chromium --threads 1,2` takes):

- ``mobilenetv2-keras``: tf.keras.applications.MobileNetV2 1.0/224 -> .tflite (TFLiteConverter) fp32/int8, TF.js
  fp32, .onnx (tf2onnx) fp32/int8.
- ``mobilenetv2-torch``: benchmarks/mobilenet.py (torchvision layout) -> .tflite (litert-torch) fp32/int8, .onnx
  fp32/int8.
- ``mobilenetv2-keras-a05``: the same at width 0.5 (.tflite fp32/int8): how the int8 ratio moves with layer width.
- ``ops``: one layer each (1x1 conv 56x56x128->128, 3x3 depthwise 112x112x96, dense 1024->4096), .tflite
  fp32/int8: where the int8 gap comes from (one layer, no graph around it).

Goal (issue 12): browser int8 .tflite at 2 threads within 4x of native int8 at 2 threads (3x ideal).

`python benchmarks/bench_browser_threads.py [DIR] [SET ...]`: with DIR, converted artifacts are kept there and reused
by the next run (conversion takes minutes). The load average before and after is recorded: on a busy machine the
figures are not comparable with the goal. Random weights and inputs (seeded): speed, not accuracy."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

THREADS = ("1", "2")
GOAL, IDEAL = 4.0, 3.0
SETS = ("mobilenetv2-keras", "mobilenetv2-torch", "mobilenetv2-keras-a05", "ops")


def _keras_file(d: Path, name: str, build) -> Path:
    """A seeded Keras model saved once as .keras (edgeport's Keras path: safe_mode load)."""
    import tensorflow as tf

    p = d / f"{name}.keras"
    if not p.exists():
        tf.keras.utils.set_random_seed(0)
        build(tf).save(p)
    return p


def _sources(d: Path, name: str):
    """[(model spec or Source, {target: recipes}, convert name)] of one set."""
    if name == "mobilenetv2-keras":
        f = _keras_file(d, name, lambda tf: tf.keras.applications.MobileNetV2((224, 224, 3), weights=None, classes=1000))
        return [(str(f), {"tflite": ["fp32", "int8"], "tfjs": ["fp32"], "onnx": ["fp32", "int8"]}, name)]
    if name == "mobilenetv2-keras-a05":
        f = _keras_file(d, name, lambda tf: tf.keras.applications.MobileNetV2((224, 224, 3), alpha=0.5, weights=None,
                                                                              classes=1000))
        return [(str(f), {"tflite": ["fp32", "int8"]}, name)]
    if name == "mobilenetv2-torch":
        import mobilenet
        from edgeport.fileio import sha256_file
        from edgeport.signature import Signature, TensorSpec, make_input
        from edgeport.sources import Source

        src = Source("torch", "benchmarks/mobilenet.py:build", name, sha256_file(Path(mobilenet.__file__)),
                     mobilenet.build(), Signature((make_input("x", "float32", (1, 3, 224, 224), "image"),),
                                                  (TensorSpec("logits", "float32", (1, 1000), "logits"),)),
                     task="classification")
        return [(src, {"tflite": ["fp32", "int8"], "onnx": ["fp32", "int8"]}, name)]
    if name == "ops":
        def one(shape, layer):
            return lambda tf: tf.keras.Sequential([tf.keras.Input(shape), layer(tf)])
        return [(str(_keras_file(d, n, one(shape, layer))), {"tflite": ["fp32", "int8"]}, n) for n, shape, layer in (
            ("op-conv1x1-56x56x128", (56, 56, 128), lambda tf: tf.keras.layers.Conv2D(128, 1)),
            ("op-dwconv3x3-112x112x96", (112, 112, 96), lambda tf: tf.keras.layers.DepthwiseConv2D(3, padding="same")),
            ("op-dense-1024x4096", (1024,), lambda tf: tf.keras.layers.Dense(4096)))]
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def _convert(d: Path, name: str) -> Path:
    """Convert a set into d/name (reused when every artifact is there); returns the folder."""
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert
    from edgeport.manifest import find_manifests

    folder = d / name
    todo = _sources(d, name)
    if folder.is_dir() and len(find_manifests([folder])) == sum(len(r) for _, tr, _ in todo for r in tr.values()):
        return folder
    rng = np.random.default_rng(0)
    for spec, targets, n in todo:
        for target, recipes in targets.items():
            calib = None
            if "int8" in recipes:
                shape = (16, 3, 224, 224) if not isinstance(spec, str) else None
                if shape is None:
                    import keras

                    shape = (16, *keras.saving.load_model(spec, safe_mode=True).input_shape[1:])
                calib = d / f"calib-{n}.npz"
                np.savez(calib, x=rng.random(shape, dtype=np.float32))
            convert(spec, [target], recipes, folder, ConvertOptions(calib=str(calib) if calib else None),
                    name=n if isinstance(spec, str) else None, task="classification" if isinstance(spec, str) else None)
    return folder


def _data(folder: Path) -> Path:
    """Four seeded random rows per input of the set's models (every model of a set takes one float image)."""
    from edgeport.manifest import Manifest, find_manifests

    arrays = {}
    for p in find_manifests([folder]):
        for s in Manifest.read(p).sig.inputs:
            shape = tuple(1 if v in (None, -1) else v for v in s.shape)
            arrays.setdefault(s.name, np.random.default_rng(1).random((4, *shape[1:]), dtype=np.float32))
    out = folder.parent / f"data-{folder.name}.npz"
    np.savez(out, **arrays)
    return out


def _rows(report) -> list[dict]:
    native = {(r.artifact, r.threads): r for r in report.rows if r.device == "local" and not r.error and not r.skipped}
    ref = {}  # (source, threads) -> the fp32 .tflite native row: TF.js's reference
    for (a, t), r in native.items():
        if r.target == "tflite" and r.recipe == "fp32":
            ref[(r.source, t)] = r
    rows = []
    for r in report.rows:
        if r.device != "chromium" or r.skipped:
            continue
        if r.error:
            rows.append({"artifact": r.artifact, "browser": f"{r.runtime}/{r.backend}", "threads": r.threads,
                         "error": r.error})
            continue
        nat, how = native.get((r.artifact, r.threads)), "same artifact"
        if nat is None:
            nat, how = ref.get((r.source, r.threads)), "same source's fp32 .tflite (TF.js has no native runtime)"
        b = r.latency_ms["p50"]
        n = nat.latency_ms["p50"] if nat else None
        rows.append({"artifact": r.artifact, "target": r.target, "recipe": r.recipe, "bytes": r.bytes,
                     "threads": r.threads, "browser": f"{r.runtime}/{r.backend}",
                     "browser_build": f"{r.runtime_version}; {r.build}", "browser_p50_ms": round(b, 3),
                     "native": f"{nat.runtime}/{nat.backend}" if nat else None, "native_ref": how if nat else None,
                     "native_p50_ms": round(n, 3) if n else None, "ratio": round(b / n, 2) if n else None})
    return sorted(rows, key=lambda x: (x["artifact"], x["browser"], x["threads"] or 0))


def main(keep: str | None = None, sets=SETS) -> dict:
    from edgeport.config import EvaluateOptions
    from edgeport.evaluate import evaluate

    out: dict = {"sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(keep or tmp)
        d.mkdir(parents=True, exist_ok=True)
        folders = {s: _convert(d, s) for s in sets}
        load_before = os.getloadavg()
        for s, folder in folders.items():
            t0 = time.perf_counter()
            opts = EvaluateOptions(threads=THREADS, data=str(_data(folder)), fallback_backends=False)
            report = evaluate([folder], opts, out=d / f"report-{s}", browser="chromium")
            out["sets"][s] = {"evaluate_s": round(time.perf_counter() - t0, 1), "rows": _rows(report)}
            out.setdefault("browser", report.extra.get("browser_capabilities"))
            for r in out["sets"][s]["rows"]:
                print(f"  {s}: {r['artifact']} {r['browser']} @{r['threads']}t: {r.get('browser_p50_ms')} ms"
                      f" vs {r.get('native_p50_ms')} ms native = {r.get('ratio')}x", file=sys.stderr)
        load_after = os.getloadavg()
    goal = {}
    for s, v in out["sets"].items():
        for r in v["rows"]:
            if r.get("target") == "tflite" and r.get("recipe") == "int8" and r["threads"] == 2 and r.get("ratio"):
                goal[r["artifact"]] = r["ratio"]
    return {"model": "MobileNetV2-class models and single layers, batch 1, random init (seeded)",
            "threads": [int(t) for t in THREADS], **out,
            "goal": f"browser int8 .tflite @2 threads within {GOAL:g}x of native @2 threads ({IDEAL:g}x ideal)",
            "int8_tflite_2t_ratio": goal, "goal_met": {k: v <= GOAL for k, v in goal.items()},
            "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                    "after": [round(x, 2) for x in load_after]}}


if __name__ == "__main__":
    args = sys.argv[1:]
    keep = args.pop(0) if args and args[0] not in SETS else None
    write("browser_threads", main(keep, tuple(args) or SETS))
