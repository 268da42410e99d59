"""Wall time to evaluate every native artifact of both built-in models (threads 1 and all, full timing), and the
same sweep with the browser evaluator added."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402


def main() -> dict:
    from edgeport.config import EvaluateOptions
    from edgeport.convert import convert
    from edgeport.app.demo import DEMO_JOBS
    from edgeport.evaluate import evaluate

    with tempfile.TemporaryDirectory() as d:
        for model, targets in DEMO_JOBS:
            convert(model, targets, ["all"], d)
        t0 = time.perf_counter()
        native = evaluate([d], EvaluateOptions())
        t_native = time.perf_counter() - t0
        t0 = time.perf_counter()
        both = evaluate([d], EvaluateOptions(), browser="chromium")
        t_both = time.perf_counter() - t0
    return {"native_rows": len(native.rows), "native_wall_s": round(t_native, 1),
            "native_plus_browser_rows": len(both.rows), "native_plus_browser_wall_s": round(t_both, 1),
            "threads": ["1", "all"], "timing": "10 warm-ups, >=100 runs, until 2 s or 1,000 runs"}


if __name__ == "__main__":
    write("evaluate_wall", main())
