"""The demo end to end, timed: `edgeport demo --no-serve` wall time (trained weights cached), browser latency
over native latency for the same .tflite artifact (LiteRT.js wasm vs the LiteRT interpreter at 1 thread), and
page load to first prediction."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402


def main() -> dict:
    from edgeport.demo import models

    models.trained_torch()
    models.trained_keras()  # so that the timed run finds them cached
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "edgeport", "demo", "--no-serve", "--out", d], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode:
            raise SystemExit(p.stderr[-2000:])
        rep = json.loads((Path(d) / "report" / "report.json").read_text())
    rows = rep["rows"]
    ratios = []
    for b in rows:
        if b["device"] != "chromium" or b["runtime"] != "litert.js" or b.get("error") or not b.get("latency_ms"):
            continue
        nat = [r for r in rows if r["artifact"] == b["artifact"] and r["device"] == "local" and r["threads"] == b["threads"]
               and r.get("latency_ms")]
        if nat:
            ratios.append({"artifact": b["artifact"], "threads": b["threads"], "browser": f"litert.js/{b['backend']}",
                           "browser_p50_ms": b["latency_ms"]["p50"],
                           "native_p50_ms": nat[0]["latency_ms"]["p50"], "ratio": round(b["latency_ms"]["p50"] / nat[0]["latency_ms"]["p50"], 2)})
    tfjs = [{"artifact": r["artifact"], "backend": r["backend"], "threads": r["threads"], "p50_ms": r["latency_ms"]["p50"],
             "accuracy": r["accuracy"]} for r in rows if r["runtime"] == "tfjs" and not r.get("error") and r.get("latency_ms")]
    first = [v.get("first_prediction_ms") for v in rep.get("extra", {}).get("browser", {}).values() if isinstance(v, dict)]
    return {"demo_wall_s": round(wall, 1), "demo_goal_s": 60, "demo_phases": {k: v for k, v in rep["extra"].items() if k != "browser"},
            "browser_over_native": ratios, "browser_over_native_goal": 3.0,
            "page_load_to_first_prediction_ms": first, "tfjs_rows": tfjs}


if __name__ == "__main__":
    write("browser", main())
