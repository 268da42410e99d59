"""Shared helpers for the benchmarks: each writes one JSON file under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def cpu() -> dict:
    """CPU model and the SIMD flags that decide whether int8 kernels beat fp32 (VNNI/dot-product)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return {"model": model, "simd": sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")) or "vnni" in f)}


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    p = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(), "cpu": cpu()},
               **payload}
    p.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {p}", file=sys.stderr)
    return p
