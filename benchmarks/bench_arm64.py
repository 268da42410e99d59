"""ARM answers under qemu-user (the arm64 runtime): both built-ins as .onnx and .tflite (and the torch one as .pte) at
fp32, dynamic-int8 and int8,
each on several emulated cores; per row the accuracy, the distance from the host's x86 run of the same artifact and
the wall time under emulation. Also the rootfs: reused (and, with --fresh-rootfs, built from nothing).

    python benchmarks/bench_arm64.py [--cpus cortex-a76,neoverse-n1,max,max,sme=off] [--fresh-rootfs]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

DEFAULT_CPUS = "cortex-a55,cortex-a76,neoverse-n1,neoverse-v1,max,max,sme=off"


def main(cpus: str, fresh: bool) -> dict:
    import os

    from edgeport.config import EvaluateOptions
    from edgeport.convert import convert
    from edgeport.edge.arm64 import rootfs
    from edgeport.edge.arm64.runner import parse_cpus
    from edgeport.evaluate import evaluate

    out: dict = {"qemu": rootfs.qemu_version(), "lock": str(rootfs.LOCK.name), "rootfs_key": rootfs.key()}
    if fresh:
        with tempfile.TemporaryDirectory() as cache:
            old = os.environ.get("EDGEPORT_CACHE")
            os.environ["EDGEPORT_CACHE"] = cache
            try:
                t0 = time.perf_counter()
                rootfs.ensure()
                out["rootfs_cold_build_s"] = round(time.perf_counter() - t0, 1)
            finally:
                os.environ.pop("EDGEPORT_CACHE") if old is None else os.environ.update(EDGEPORT_CACHE=old)
    t0 = time.perf_counter()
    rootfs.ensure()
    out["rootfs_reuse_s"] = round(time.perf_counter() - t0, 3)
    cpu_list = parse_cpus(cpus)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for model, targets in (("builtin:simplecnn-torch", ["onnx", "tflite", "pte"]),
                               ("builtin:simplecnn-keras", ["onnx", "tflite"])):
            convert(model, targets, ["fp32", "dynamic-int8", "int8"], d)
        t0 = time.perf_counter()
        rep = evaluate([d], EvaluateOptions(threads=("1",), runtimes=("arm64",),
                                            runtime_options={"arm64": {"cpu": cpu_list}}), quick=True)
        out["evaluate_wall_s"] = round(time.perf_counter() - t0, 1)
    for r in rep.rows:
        v = r.vs_host or {}
        wall = re.search(r"([\d.]+) s under emulation", r.note or "")
        rows.append({"artifact": r.artifact, "recipe": r.recipe, "cpu": r.cpu, "runtime_version": r.runtime_version,
                     "accuracy": r.accuracy, "agreement_vs_float": r.agreement, "max_abs_diff_vs_float": r.max_abs_diff,
                     "vs_x86_max_abs_diff": v.get("max_abs_diff"), "vs_x86_agreement": v.get("agreement"),
                     "vs_x86_scale": v.get("scale"), "wall_s": float(wall.group(1)) if wall else None,
                     "error": r.error, "skipped": r.skipped})
    out.update(cpus=cpu_list, rows=rows)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpus", default=DEFAULT_CPUS)
    ap.add_argument("--fresh-rootfs", action="store_true", help="also time a rootfs built from nothing")
    a = ap.parse_args()
    write("arm64", main(a.cpus, a.fresh_rootfs))
