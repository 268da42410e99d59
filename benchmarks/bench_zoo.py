"""The public zoo through `edgeport sweep`: benchmarks/results/zoo_coverage.md and zoo.json (coverage per target and
recipe, failures by group, the upstream limitations met, wall time, jobs run and cached).

    python benchmarks/bench_zoo.py [--out DIR] [--report-only] [--scheduler tcp://HOST:8786]

The sweep's folder (default .edgeport-cache/zoo-sweep) keeps its cache, so a second run does only what changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from common import RESULTS, write

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(HERE.parent / ".edgeport-cache" / "zoo-sweep"))
    ap.add_argument("--scheduler", default="local")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import zoo_models

    zoo_models.write_data()
    zoo_models.write_keras()
    from edgeport.edge.sweep import sweep

    report, cov, stats = sweep(HERE / "zoo.toml", a.out, scheduler=a.scheduler, workers=a.workers,
                               report_only=a.report_only)
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(a.out) / "coverage.md", RESULTS / "zoo_coverage.md")
    write("zoo", {"matrix": "benchmarks/zoo.toml", "models": len(cov["models"]), "summary": cov["summary"],
                  "summary_lines": cov["summary_lines"], "failures": cov["failures"], "limitations": cov["limitations"],
                  "sweep": report.extra.get("sweep", {})})
    print("\n".join(cov["summary_lines"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
