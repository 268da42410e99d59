"""Run every benchmark in turn; each writes benchmarks/results/<name>.json."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_models.py", "bench_harness.py", "bench_int8_speedup.py", "bench_evaluate.py", "bench_browser.py",
           "bench_browser_threads.py", "bench_quant_budget.py", "bench_zoo.py", "bench_arm64.py"]

if __name__ == "__main__":
    only = sys.argv[1:]
    for b in BENCHES:
        if only and not any(o in b for o in only):
            continue
        print(f"== {b}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(HERE / b)], check=True)
