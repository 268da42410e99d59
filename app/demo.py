"""`edgeport demo`: the main job. Train (or load cached) built-ins, convert everything, evaluate natively and in
Chromium, write report/, then serve the demo page."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


# The whole matrix, written as a list so that one can read it and know the pipeline. Each entry is one convert()
# run (one worker process); the runs go side by side, the PyTorch model's split in two because ExecuTorch's
# lowering is the longest job.
DEMO_JOBS = [
    ("builtin:simplecnn-torch", ["pte"]),
    ("builtin:simplecnn-torch", ["tflite", "onnx"]),
    ("builtin:simplecnn-keras", ["tflite", "tfjs", "onnx"]),
]


def run_demo(out: str = ".", serve: bool = True, port: int = 8765, browser: bool = True) -> int:
    from edgeport.config import EvaluateOptions
    from edgeport.convert import convert
    from edgeport.evaluate import evaluate
    from edgeport.report import artifact_table, table

    t0 = time.perf_counter()
    root = Path(out)
    art, rep = root / "artifacts", root / "report"
    from edgeport.demo import models

    models.trained_torch()  # train (first run) or load the built-ins once, before the parallel conversions
    models.trained_keras()
    with ThreadPoolExecutor(max_workers=len(DEMO_JOBS)) as pool:
        done = list(pool.map(lambda job: convert(job[0], job[1], ["all"], art), DEMO_JOBS))
    manifests = [m for ms in done for m in ms]
    t_convert = time.perf_counter() - t0
    print(artifact_table(manifests))
    # Timing: at least 100 runs and 0.5 s per artifact and thread count (up to 1,000 runs), natively and in the page.
    # Fallback backends (WebGL rendered in software by SwiftShader where there is no GPU, TF.js's plain-JS cpu
    # kernels) are skipped rows, not deployment figures. `edgeport evaluate` keeps 2 s for slower models and measures
    # every backend.
    report = evaluate([art], EvaluateOptions(min_seconds=0.5, fallback_backends=False),
                      browser="chromium" if browser else None)
    budget = report.budget
    report.extra.update({"demo_wall_s": round(time.perf_counter() - t0, 1), "convert_s": round(t_convert, 1)})
    report.write(rep)
    print()
    print(table(report))
    print(f"\nBest artifact per target within budget ({budget.describe()}; smallest, then fastest):")
    for target, r in sorted(report.best_per_target().items()):
        lat = f"{r.latency_ms['p50']:.3f} ms p50" if r.latency_ms else "-"
        q = r.quality()
        print(f"  {target:<40} {r.artifact:<38} {r.bytes / 1024:7.1f} KiB  {q:.4g}  {lat} ({r.runtime}/{r.backend})")
    print(f"\nreport: {rep / 'report.html'}  ({len(report.rows)} rows, {time.perf_counter() - t0:.0f} s)")
    if not serve:
        return 0
    from edgeport.web.server import serve as serve_page

    return serve_page(art, port=port)
