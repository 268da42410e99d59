"""The task registry: what a model does decides how its artifacts are judged.

A task (classification, embedding, regression) is one frozen object holding everything that depends on it: the
report's headline metric, the accuracy budget (the number it bounds and its direction, the flag that sets it -- one
name in ``edgeport convert``, ``edgeport evaluate`` and ``assert_quantized_close`` -- its default and its texts),
the parity tolerances per recipe family, the report's columns, and the "within budget" rule the report's picks,
the budget search and the pytest assertion share. The page reads the same facts from ``/api/config``.

Example::

    from edgeport.tasks import get_task

    t = get_task("embedding")
    t.flag, t.keyword, t.default, t.describe(0.99)   # ('--min-cosine', 'min_cosine', 0.99, 'cosine >= 0.99')
    t.within(row, 0.99)                              # a report row's cosine mean against the float model
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable

from . import defaults
from .errors import InputError


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _pct(v: float | None) -> float | None:
    return None if v is None else 100 * v


def _percent(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _snr_norm(o: dict) -> str:
    """A parity entry's SNR (None: identical outputs) and norm ratio, ``SNR 41.2 dB norm 0.998x``."""
    snr, k = o.get("snr_db"), o.get("norm_ratio")
    return f"SNR {'inf' if snr is None else snr} dB" + (f" norm {k:.3g}x" if k is not None else "")


# A report column: (header, row -> text).
Column = tuple[str, Callable[[Any], str]]


@dataclass(frozen=True, repr=False)
class Task:
    name: str
    # The report's headline number for a row (Row.quality) and the HTML plot's axis label for it.
    headline: str
    quality_label: str
    # The accuracy budget: the number it bounds (the manifest's quantization.budget.metric), its direction, and how
    # a threshold reads ("drop <= 0.5 pp"; the budget search's log says "accuracy drop <= 0.5 pp").
    metric: str
    lower_is_better: bool
    noun: str
    long_noun: str
    unit: str
    # Where the threshold lives and who sets it: the Budget field (report.json "budget"), the command-line flag of
    # convert and evaluate, the assert_quantized_close keyword, the flag's metavar and help.
    budget_field: str
    flag: str
    keyword: str
    metavar: str
    help: str
    # The threshold when none is given, and the values a threshold may take.
    default: float
    limits: tuple[float, float]
    # Parity at conversion: tolerances per recipe family (Recipe.family: float32 | float16 | quantized).
    tolerance: dict
    # The report's task columns (terminal table and HTML).
    columns: tuple[Column, ...]
    # Its outputs score classes: top-1 against integer labels (accuracy), top-1 agreement with float.
    labels: bool = False
    # Its outputs are vectors compared by direction: cosine against float, nearest-neighbour agreement.
    similarity: bool = False

    def __repr__(self) -> str:
        return f"<task {self.name}: {self.flag} {self.metavar}>"

    # ---------------------------------------------------------------------------------------- the budget
    @property
    def op(self) -> str:
        return "<=" if self.lower_is_better else ">="

    def describe(self, threshold: float | None = None, *, long: bool = False) -> str:
        """``drop <= 0.5 pp`` (``long``: ``accuracy drop <= 0.5 pp``)."""
        v = self.default if threshold is None else threshold
        return f"{self.long_noun if long else self.noun} {self.op} {v:g}{self.unit}"

    def meets(self, value: float, threshold: float) -> bool:
        return value <= threshold + 1e-9 if self.lower_is_better else value >= threshold - 1e-9

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b

    def value(self, row) -> float | None:
        """The budget's number for a report row (None when the row lacks it)."""
        return getattr(row, self.headline)

    def within(self, row, threshold: float | None = None) -> bool:
        """The task's rule for a row that ran: its budget number meets ``threshold`` (the default when None)."""
        v = self.value(row)
        return v is not None and self.meets(v, self.default if threshold is None else threshold)

    def excess(self, row, threshold: float) -> float:
        """How far a row is past its threshold (positive: over budget); a row without the number is the worst."""
        v = self.value(row)
        if v is None:
            return math.inf
        return v - threshold if self.lower_is_better else threshold - v

    def check(self, value: float) -> float:
        """A threshold for this task, or one line naming the range it must be in."""
        lo, hi = self.limits
        if not lo <= value <= hi:  # NaN too
            want = f"within [{lo:g}, {hi:g}]" if math.isfinite(hi) else f">= {lo:g}"
            raise InputError(f"{self.flag} {value:g} is out of range: give {self.metavar} {want}")
        return value

    def wrong_flag(self, other: "Task", model: str) -> str:
        """One line for a budget flag of another task: what it is for and which flag this model takes."""
        return (f"{other.flag} is for {other.name} models; {model} is a{'n' if self.name[0] in 'aeiou' else ''}"
                f" {self.name} model: use {self.flag} {self.metavar}")

    # ---------------------------------------------------------------------------------------- texts
    def quality(self, row) -> float | None:
        """The row's headline number, as plotted and ranked."""
        return getattr(row, self.headline)

    def shortfall(self, row, threshold: float) -> str:
        """Why a row is over budget, for the first line of a failed assertion."""
        v = self.value(row)
        return f"{self.noun} {'-' if v is None else format(v, '.4g')}{self.unit} {'>' if self.lower_is_better else '<'} {threshold:g}{self.unit}"

    def explain(self, row, float_value: float | None, threshold: float) -> tuple[str, str, str, str]:
        """(metric, float, value, budget) cells of the assertion's table for a measured row."""
        v = self.value(row)
        return (f"{self.noun} vs float", "-", "-" if v is None else f"{v:.4g}", f"{self.op} {threshold:g}{self.unit}")

    def worst(self, row) -> str:
        """The session summary's words for the worst quantized row."""
        return f"worst {row.recipe} {self.noun} {self.value(row):.4g}{self.unit} ({row.artifact})"

    def parity_text(self, o: dict) -> str:
        """One compared output (a parity entry) in the task's terms."""
        return f"max|d| {o['max_abs_diff']:.2g}"

    def to_dict(self) -> dict:
        """The facts the page needs (``/api/config``'s ``tasks``)."""
        return {"name": self.name, "headline": self.headline, "quality_label": self.quality_label,
                "metric": self.metric, "lower_is_better": self.lower_is_better, "flag": self.flag,
                "keyword": self.keyword, "default": self.default, "budget": self.describe(),
                "columns": [c[0] for c in self.columns], "labels": self.labels, "similarity": self.similarity}


@dataclass(frozen=True, repr=False)
class Classification(Task):
    def value(self, row) -> float | None:
        """The accuracy drop in pp against labels; without labels, the top-1 disagreement with float (a bound)."""
        if row.accuracy_drop_pp is not None:
            return row.accuracy_drop_pp
        return None if row.agreement is None else round(100 * (1 - row.agreement), 6)

    def quality(self, row) -> float | None:
        return _pct(row.accuracy)

    def shortfall(self, row, threshold: float) -> str:
        what = "top-1 drop" if row.accuracy_drop_pp is not None else "top-1 disagreement with float"
        d = self.value(row)
        return f"{what} {'-' if d is None else f'{d:.2f}'} pp > {threshold:g} pp"

    def explain(self, row, float_value, threshold):
        if row.accuracy_drop_pp is not None:
            return ("top-1 accuracy", _percent(float_value), f"{_percent(row.accuracy)} (drop {row.accuracy_drop_pp:.2f} pp)",
                    f"drop <= {threshold:g} pp")
        d = self.value(row)
        return ("top-1 agreement", "100% (itself)", f"{_percent(row.agreement)} (disagree {d:.2f} pp)" if d is not None
                else "-", f"disagree <= {threshold:g} pp")

    def worst(self, row) -> str:
        what = "drop" if row.accuracy_drop_pp is not None else "disagreement"
        return f"worst {row.recipe} {what} {self.value(row):.2f} pp ({row.artifact})"

    def parity_text(self, o: dict) -> str:
        return f"max|d| {o['max_abs_diff']:.2g} agree {o.get('top1_agreement', float('nan')):.3f}"


@dataclass(frozen=True, repr=False)
class Embedding(Task):
    def shortfall(self, row, threshold: float) -> str:
        v = row.cosine_mean
        return f"cosine {'-' if v is None else f'{v:.5f}'} < {threshold:g}"

    def explain(self, row, float_value, threshold):
        v = "-" if row.cosine_mean is None else (f"{row.cosine_mean:.5f} (min {row.cosine_min:.4f})"
                                                 if row.cosine_min is not None else f"{row.cosine_mean:.5f}")
        return ("cosine vs float", "1 (itself)", v, f">= {threshold:g}")

    def worst(self, row) -> str:
        return f"lowest {row.recipe} cosine {row.cosine_mean:.5f} ({row.artifact})"

    def parity_text(self, o: dict) -> str:
        return f"cos mean {o['cosine_mean']:.5f} min {o['cosine_min']:.4f} {_snr_norm(o)}"


@dataclass(frozen=True, repr=False)
class Regression(Task):
    def value(self, row) -> float | None:
        """SNR in dB; identical outputs have no finite SNR (stored as None) and count as infinite."""
        if row.snr_db is not None:
            return row.snr_db
        return math.inf if row.max_abs_diff == 0 else None

    def shortfall(self, row, threshold: float) -> str:
        return f"SNR {'-' if row.snr_db is None else f'{row.snr_db:.1f}'} dB < {threshold:g} dB"

    def explain(self, row, float_value, threshold):
        v = "-" if row.snr_db is None else (f"{row.snr_db:.1f} dB (max|d| {row.max_abs_diff:.3g})"
                                            if row.max_abs_diff is not None else f"{row.snr_db:.1f} dB")
        return ("SNR vs float", "inf (itself)", v, f">= {threshold:g} dB")

    def worst(self, row) -> str:
        return f"lowest {row.recipe} SNR {row.snr_db:.1f} dB ({row.artifact})"

    def parity_text(self, o: dict) -> str:
        return f"max|d| {o['max_abs_diff']:.2g} {_snr_norm(o)}"


TASKS: dict[str, Task] = {t.name: t for t in (
    Classification(
        name="classification", headline="accuracy", quality_label="held-out top-1 accuracy (%)",
        metric="drop_pp", lower_is_better=True, noun="drop", long_noun="accuracy drop", unit=" pp",
        budget_field="max_drop_pp", flag="--max-drop", keyword="max_drop", metavar="PP",
        help="top-1 accuracy drop against the float model, percentage points",
        default=defaults.ACCURACY_BUDGET_PP, limits=(0.0, math.inf),
        tolerance={"float32": {"max_abs": 1e-4, "min_agreement": 1.0},
                   "float16": {"max_abs": 1e-2, "min_agreement": 0.98},
                   "quantized": {"min_agreement": 0.98}},
        columns=(("acc %", lambda r: _fmt(_pct(r.accuracy), ".2f")),
                 ("drop pp", lambda r: _fmt(r.accuracy_drop_pp, "+.2f")),
                 ("agree %", lambda r: _fmt(_pct(r.agreement), ".1f"))),
        labels=True),
    Embedding(
        name="embedding", headline="cosine_mean", quality_label="cosine vs float (mean)",
        metric="cosine", lower_is_better=False, noun="cosine", long_noun="cosine", unit="",
        budget_field="min_cosine", flag="--min-cosine", keyword="min_cosine", metavar="C",
        help="mean cosine similarity to the float model's embeddings",
        default=defaults.MIN_COSINE, limits=(-1.0, 1.0),
        tolerance={"float32": {"min_cosine": 0.99999}, "float16": {"min_cosine": 0.9995},
                   "quantized": {"min_cosine": 0.99}},
        columns=(("cos mean", lambda r: _fmt(r.cosine_mean, ".5f")), ("cos min", lambda r: _fmt(r.cosine_min, ".4f")),
                 ("NN agree %", lambda r: _fmt(_pct(r.nn_agreement), ".1f")), ("SNR dB", lambda r: _fmt(r.snr_db, ".1f")),
                 ("norm x", lambda r: _fmt(r.norm_ratio, ".3g"))),
        similarity=True),
    Regression(
        name="regression", headline="snr_db", quality_label="SNR vs float (dB)",
        metric="snr_db", lower_is_better=False, noun="SNR", long_noun="SNR", unit=" dB",
        budget_field="min_snr_db", flag="--min-snr", keyword="min_snr", metavar="DB",
        help="signal-to-noise ratio of the outputs against the float model's, dB",
        default=defaults.MIN_SNR_DB, limits=(-math.inf, math.inf),
        tolerance={"float32": {"min_snr_db": 60.0}, "float16": {"min_snr_db": 40.0}, "quantized": {"min_snr_db": 20.0}},
        columns=(("SNR dB", lambda r: _fmt(r.snr_db, ".1f")), ("max|d|", lambda r: _fmt(r.max_abs_diff, ".3g")),
                 ("max rel", lambda r: _fmt(r.max_rel_diff, ".3g")), ("norm x", lambda r: _fmt(r.norm_ratio, ".3g")))),
)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def by_flag(flag: str) -> Task:
    return next(t for t in TASKS.values() if t.flag == flag)


# ------------------------------------------------------------------------------------------------ the budget
@dataclass(frozen=True)
class Budget:
    """What "within budget" means, one threshold per task (each field is a task's ``budget_field``); None where not
    given, and then the task's default applies. ``report.json`` records every threshold, defaults filled in.

    Example: ``Budget(max_drop_pp=0.3)`` -- classifiers may lose 0.3 pp; embeddings keep cosine >= 0.99 (default)."""

    max_drop_pp: float | None = None  # classification: accuracy drop against float, percentage points (--max-drop)
    min_cosine: float | None = None  # embedding: mean cosine against float (--min-cosine)
    min_snr_db: float | None = None  # regression: SNR against float, dB (--min-snr)

    def __post_init__(self):
        for t in TASKS.values():
            v = getattr(self, t.budget_field)
            if v is not None:
                object.__setattr__(self, t.budget_field, t.check(float(v)))

    @classmethod
    def of(cls, task: str, value: float) -> "Budget":
        return cls(**{get_task(task).budget_field: value})

    def threshold(self, task: str | Task) -> float:
        t = task if isinstance(task, Task) else get_task(task)
        v = getattr(self, t.budget_field)
        return t.default if v is None else v

    def given(self) -> list[Task]:
        """The tasks whose threshold was set."""
        return [t for t in TASKS.values() if getattr(self, t.budget_field) is not None]

    def filled(self) -> "Budget":
        return Budget(**{t.budget_field: self.threshold(t) for t in TASKS.values()})

    def describe(self, task: str | None = None) -> str:
        if task:
            return get_task(task).describe(self.threshold(task))
        return "; ".join(f"{t.name}: {t.describe(self.threshold(t))}" for t in TASKS.values())

    def for_task(self, task: str, model: str) -> float:
        """The threshold a ``task`` model is held to, refusing a budget given only for other tasks (one line)."""
        t = get_task(task)
        v = getattr(self, t.budget_field)
        if v is not None:
            return v
        others = self.given()
        if others:
            raise InputError(t.wrong_flag(others[0], model))
        return t.default


assert {f.name for f in fields(Budget)} == {t.budget_field for t in TASKS.values()}, "a task without a Budget field"
