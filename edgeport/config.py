"""Frozen configs that validate when they are built."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import defaults
from .errors import CalibrationError, InputError
from .tasks import Budget


@dataclass(frozen=True)
class ConvertOptions:
    # Calibration set for static int8: a named set (its train split) or an .npz with one array per input.
    calib: str | None = None
    # Held-out rows for the parity probe (a named set's held-out split, or an .npz); kept apart from calibration.
    data: str | None = None
    # Full-integer TFLite: also make the model's input and output int8 (scale/zero point in the manifest).
    int8_io: bool = False
    # Number of calibration samples taken from the built-in set.
    calib_samples: int = defaults.CALIB_SAMPLES
    # Fail the artifact (instead of only recording it) when parity is outside the recipe's tolerance.
    strict_parity: bool = False
    # An accuracy budget for the recipes that can hold one (int8; --max-drop / --min-cosine / --min-snr, the field
    # of the model's task): equalization, then the fewest layers kept float, judged on the --data rows (kept apart
    # from calibration). None: plain int8. A budget only for another task is refused (edgeport.tasks.Budget.for_task).
    budget: Budget | None = None
    # Preprocessing put inside the model (edgeport.fronts): rgb-uint8-nhwc | rgba-uint8-nhwc | bert-ids-mask-segments.
    input_format: str | None = None
    # The front's normalisation in 0-255 pixel units, one value or R,G,B (None: from the model's preprocessing).
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    # Where the artifact will run (--for): "mcu" = TensorFlow Lite Micro: full-integer int8 with int8 I/O, every op
    # checked against TFLM's kernels (edgeport.micro); None: no device profile.
    profile: str | None = None

    def __post_init__(self):
        if isinstance(self.budget, dict):  # from a worker's JSON job
            object.__setattr__(self, "budget", Budget(**self.budget))
        for k in ("mean", "std"):  # lists from a worker's JSON job
            if isinstance(getattr(self, k), list):
                object.__setattr__(self, k, tuple(getattr(self, k)))
        if self.input_format is not None:
            from .fronts import INPUT_FORMATS

            if self.input_format not in INPUT_FORMATS:
                raise InputError(f"unknown --input-format {self.input_format!r}; known: {', '.join(INPUT_FORMATS)}")
        elif self.mean is not None or self.std is not None:
            raise InputError("--mean/--std describe an input front; pass --input-format rgb-uint8-nhwc with them")
        if self.profile not in (None, "mcu"):
            raise InputError(f"unknown --for {self.profile!r}; known: mcu (TensorFlow Lite Micro)")
        if self.calib_samples <= 0:
            raise CalibrationError(f"calib_samples must be positive, got {self.calib_samples}; pass e.g. 200")


@dataclass(frozen=True)
class EvaluateOptions:
    # Thread counts to measure; "all" means every core.
    threads: tuple[str, ...] = ("1", "all")
    # Evaluation data: a named set (its held-out split) or an .npz with one array per input and optional labels y;
    # None: each model's own default set (the built-ins name theirs), else its probe rows (agreement with float only).
    data: str | None = None
    # Per-artifact subprocess time limit, seconds.
    timeout_s: float = defaults.WORKER_TIMEOUT_S
    # What "within budget" means per task, used to pick the smallest and fastest artifact.
    budget: Budget = Budget()
    warmup: int = defaults.WARMUP_RUNS
    min_runs: int = defaults.MIN_TIMED_RUNS
    min_seconds: float = defaults.MIN_TIMED_SECONDS
    # In the browser: also measure fallback backends (WebGL rendered in software, TF.js's plain-JS cpu kernels);
    # False gives each a skipped row saying so.
    fallback_backends: bool = True
    # Runtimes to measure on (registry names or aliases, `edgeport targets` lists them); None: every default host
    # runtime, plus the browser runtimes when a browser is given.
    runtimes: tuple[str, ...] | None = None
    # Per runtime, the values of its own flags (--arm-cpu, --mcu-ram ...): {runtime name: {key: value}}.
    runtime_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.runtimes is not None:
            object.__setattr__(self, "runtimes", tuple(self.runtimes))
        for t in self.threads:
            if t != "all" and (not t.isdigit() or int(t) < 1):
                raise InputError(f"--threads {t!r} is not a positive integer or 'all'; write e.g. --threads 1,all")
        if self.timeout_s <= 0:
            raise InputError(f"timeout must be positive, got {self.timeout_s}")
        if isinstance(self.budget, dict):
            object.__setattr__(self, "budget", Budget(**self.budget))
