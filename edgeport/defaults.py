"""The one place for defaults."""

import os
from pathlib import Path

SEED = 0
# Held-out fraction of builtin:digits (1,797 samples -> 360 held out).
HELDOUT_FRACTION = 0.2
CALIB_SAMPLES = 200
PROBE_SAMPLES = 64
# Each artifact keeps its probe rows and float outputs beside it: rows are dropped (to PROBE_MIN_SAMPLES at least)
# until they fit, so that a model with large inputs or outputs (masks, feature maps) does not carry MBs per artifact.
PROBE_MAX_BYTES = 4 * 1024 * 1024
PROBE_MIN_SAMPLES = 8
LABELS = [str(i) for i in range(10)]

# Evaluator
WARMUP_RUNS = 10
MIN_TIMED_RUNS = 100
MIN_TIMED_SECONDS = 2.0
WORKER_TIMEOUT_S = 300.0
ACCURACY_BUDGET_PP = 0.5
MIN_COSINE = 0.99
MIN_SNR_DB = 30.0


def cache_dir() -> Path:
    """Where trained built-in weights are cached ($EDGEPORT_CACHE, else ~/.cache/edgeport)."""
    root = os.environ.get("EDGEPORT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeport")
    return Path(root)
