"""Conversion time for each (target, recipe), artifact bytes, and held-out accuracy of each artifact."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402


def main() -> dict:
    from edgeport import data as dat
    from edgeport.convert import convert
    from edgeport.demo.main import DEMO_JOBS
    from edgeport.edge.runners import get_runner, native_targets
    from edgeport.sources import load_source

    rows = []
    with tempfile.TemporaryDirectory() as out:
        held = dat.digits("heldout")
        for model, targets in DEMO_JOBS:
            src = load_source(model)
            float_acc = float((src.float_outputs(dat.to_layout(held.x, src.layout)).argmax(-1) == held.y).mean())
            for t in targets:
                t0 = time.perf_counter()
                ms = convert(src, [t], ["all"], out)
                for m in ms:
                    acc = None
                    if m.target in native_targets():
                        r = get_runner(m, 1)
                        r.load()
                        acc = float((r.run(dat.to_layout(held.x, src.layout)).argmax(-1) == held.y).mean())
                    rows.append({"artifact": m.name, "target": m.target, "recipe": m.recipe,
                                 "convert_s": m.conversion["seconds"], "bytes": m.total_bytes,
                                 "heldout_accuracy": acc, "float_accuracy": float_acc,
                                 "accuracy_drop_pp": None if acc is None else round(100 * (float_acc - acc), 3),
                                 "note": None if acc is not None else "TF.js: accuracy measured in the browser (bench_browser)"})
                print(f"{model} -> {t}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return {"rows": rows}


if __name__ == "__main__":
    write("convert", main())
