"""Frozen configs that validate when they are built."""

from __future__ import annotations

from dataclasses import dataclass

from . import defaults
from .errors import CalibrationError, InputError


@dataclass(frozen=True)
class ConvertOptions:
    # Calibration set for static int8: None or "builtin:digits" (200 training digits), or a .npz with `x`.
    calib: str | None = None
    # Full-integer TFLite: also make the model's input and output int8 (scale/zero point in the manifest).
    int8_io: bool = False
    # Number of calibration samples taken from the built-in set.
    calib_samples: int = defaults.CALIB_SAMPLES
    # Fail the artifact (instead of only recording it) when parity is outside the recipe's tolerance.
    strict_parity: bool = False

    def __post_init__(self):
        if self.calib_samples <= 0:
            raise CalibrationError(f"calib_samples must be positive, got {self.calib_samples}; pass e.g. 200")


@dataclass(frozen=True)
class EvaluateOptions:
    # Thread counts to measure; "all" means every core.
    threads: tuple[str, ...] = ("1", "all")
    # Evaluation data: builtin:digits (held-out split) or a .npz with `x` and `y`.
    data: str = "builtin:digits"
    # Per-artifact subprocess time limit, seconds.
    timeout_s: float = defaults.WORKER_TIMEOUT_S
    # Accuracy budget (percentage points) used to pick the smallest and fastest artifact.
    budget_pp: float = defaults.ACCURACY_BUDGET_PP
    warmup: int = defaults.WARMUP_RUNS
    min_runs: int = defaults.MIN_TIMED_RUNS
    min_seconds: float = defaults.MIN_TIMED_SECONDS

    def __post_init__(self):
        for t in self.threads:
            if t != "all" and (not t.isdigit() or int(t) < 1):
                raise InputError(f"--threads {t!r} is not a positive integer or 'all'; write e.g. --threads 1,all")
        if self.timeout_s <= 0:
            raise InputError(f"timeout must be positive, got {self.timeout_s}")
        if self.budget_pp < 0:
            raise InputError(f"--budget must be >= 0 percentage points, got {self.budget_pp}")
