"""The one place for defaults."""

import os
from pathlib import Path

SEED = 0
# Held-out fraction of builtin:digits (1,797 samples -> 360 held out).
HELDOUT_FRACTION = 0.2
CALIB_SAMPLES = 200
PROBE_SAMPLES = 64
LABELS = [str(i) for i in range(10)]

# Evaluator
WARMUP_RUNS = 10
MIN_TIMED_RUNS = 100
MIN_TIMED_SECONDS = 2.0
WORKER_TIMEOUT_S = 300.0
ACCURACY_BUDGET_PP = 0.5

# Parity tolerances per recipe: (max abs diff of logits, min top-1 agreement).
PARITY_TOLERANCE = {
    "fp32": {"max_abs": 1e-4, "min_agreement": 1.0},
    "fp16": {"max_abs": 1e-2, "min_agreement": 0.98},
    "dynamic-int8": {"max_abs": None, "min_agreement": 0.98},
    "int8": {"max_abs": None, "min_agreement": 0.98},
    "uint8": {"max_abs": None, "min_agreement": 0.98},
    "uint16": {"max_abs": 1e-2, "min_agreement": 0.98},
}


def cache_dir() -> Path:
    """Where trained built-in weights are cached ($EDGEPORT_CACHE, else ~/.cache/edgeport)."""
    root = os.environ.get("EDGEPORT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeport")
    return Path(root)
