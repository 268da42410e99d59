"""Task-aware metrics: numbers, never booleans. Both evaluators (native and browser) and conversion parity use these.

- classification: top-1 accuracy on labels, top-1 agreement with the float model
- embedding: cosine (mean, min) against the float model, nearest-neighbour agreement over the evaluation set
- regression: max abs, max rel and SNR (dB) against the float model
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .recipes import RECIPES
from .signature import Signature
from .tasks import TASKS, get_task


def family(recipe: str) -> str:
    """The recipe's tolerance family (float32 | float16 | quantized); a recipe this edgeport does not know is judged
    as quantized."""
    r = RECIPES.get(recipe)
    return r.family if r else "quantized"


def tolerance(task: str, recipe: str) -> dict:
    """Parity tolerances of a task at a recipe (the task's, per recipe family). Keyword-only overrides in within()."""
    return dict(get_task(task).tolerance[family(recipe)])


def _per_sample(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a.reshape(len(a), -1)


def cosine_rows(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Cosine per sample. A zero vector against a non-zero one is 0 (it points nowhere, so it agrees with nothing);
    both zero is 1 (and :func:`output_flags` says "float-zero"); NaN/Inf stay NaN."""
    r, g = _per_sample(ref), _per_sample(got)
    num = (r * g).sum(1)
    nr, ng = np.linalg.norm(r, axis=1), np.linalg.norm(g, axis=1)
    both_zero = (nr == 0) & (ng == 0)
    den = nr * ng
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = num / np.where(den == 0, 1.0, den)
    return np.where(both_zero, 1.0, np.where(den == 0, 0.0, cos))


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    r = np.asarray(ref, np.float64)
    noise = float(((r - np.asarray(got, np.float64)) ** 2).sum())
    signal = float((r ** 2).sum())
    if noise == 0:
        return float("inf")
    if not np.isfinite(noise):
        return float("-inf")
    return float(10 * np.log10(max(signal, 1e-300) / noise))


def norm_ratio(ref: np.ndarray, got: np.ndarray) -> float | None:
    """||got|| / ||ref|| over every element: 1 when the scale is right, whatever the direction. None when the
    reference is all zero or either side is not finite."""
    r, g = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if not (np.isfinite(r).all() and np.isfinite(g).all()):
        return None
    nr = float(np.linalg.norm(r))
    return None if nr == 0 else float(np.linalg.norm(g)) / nr


# A scale off by more than this factor either way is flagged: int8 and fp16 keep the norm within a few percent on
# any working artifact; a factor 2 is a broken one (a clamped constant, a lost dequantize), whatever its cosine.
SCALE_FACTOR = 2.0
# Flags that make a row fail its budget and its parity, whatever the task and the other numbers.
FAILING_FLAGS = ("all-zero", "nan", "inf", "scale")


def output_flags(ref: np.ndarray | None, got: np.ndarray) -> list[str]:
    """What is wrong with an artifact's outputs on their own or against the float model's, as short names:
    "nan" / "inf" (any non-finite value), "all-zero" (every value zero while the float model's are not),
    "scale" (norm ratio outside 1/SCALE_FACTOR..SCALE_FACTOR), and "float-zero" (the float model's outputs are all
    zero too: a cosine of 1 then means nothing; recorded, not failing)."""
    g = np.asarray(got, np.float64)
    flags = []
    if np.isnan(g).any():
        flags.append("nan")
    if np.isinf(g).any():
        flags.append("inf")
    if flags:
        return flags
    ref_zero = ref is not None and not np.asarray(ref, np.float64).any()
    if not g.any():
        flags.append("float-zero" if ref_zero else "all-zero")
    elif ref is not None and not ref_zero:
        k = norm_ratio(ref, got)
        if k is not None and not (1 / SCALE_FACTOR <= k <= SCALE_FACTOR):
            flags.append("scale")
    return flags


def failing_flags(flags) -> list[str]:
    return [f for f in flags or () if f in FAILING_FLAGS]


def describe_flags(flags, ratio: float | None = None) -> str:
    """Failing flags as words for a report note or an assertion: "outputs all zero", "norm 1.2e+05x float"."""
    words = {"all-zero": "outputs all zero", "nan": "outputs hold NaN", "inf": "outputs hold Inf",
             "scale": f"output norm {ratio:.3g}x the float model's" if ratio is not None else "output scale off"}
    return "; ".join(words[f] for f in failing_flags(flags))


def compare(reference: np.ndarray, candidate: np.ndarray, name: str = "output") -> dict:
    """Every number for one output: max abs/rel diff, SNR, cosine mean/min, top-1 agreement (vectors only)."""
    ref = np.asarray(reference, np.float64)
    got = np.asarray(candidate, np.float64)
    if ref.shape != got.shape:
        raise InputError(f"output {name!r}: shape {got.shape} differs from the float model's {ref.shape}")
    diff = np.abs(ref - got)
    rel = diff / np.maximum(np.abs(ref), 1e-6)
    cos = cosine_rows(ref, got)
    k = norm_ratio(ref, got)
    out = {"name": name, "max_abs_diff": float(diff.max(initial=0.0)), "max_rel_diff": float(rel.max(initial=0.0)),
           "snr_db": _finite(snr_db(ref, got)), "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
           "norm_ratio": None if k is None else round(k, 6), "flags": output_flags(ref, got), "samples": int(len(ref))}
    if ref.ndim >= 2 and ref.shape[-1] > 1:
        out["top1_agreement"] = float((ref.argmax(-1) == got.argmax(-1)).mean())
    return out


def _finite(v: float) -> float | None:
    return None if not np.isfinite(v) else round(v, 3)


def within(task: str, recipe: str, result: dict, **override) -> list[str]:
    """Failures of one compared output against the task/recipe tolerance (empty when within)."""
    tol = {**tolerance(task, recipe), **{k: v for k, v in override.items() if v is not None}}
    name, fails = result["name"], []
    if failing_flags(result.get("flags")):
        fails.append(f"{name}: {describe_flags(result['flags'], result.get('norm_ratio'))}")
    if "max_abs" in tol:
        scale = max(1.0, float(result.get("ref_max_abs", 1.0) or 1.0))
        if result["max_abs_diff"] > tol["max_abs"] * scale:
            fails.append(f"{name}: max abs diff {result['max_abs_diff']:.3g} > {tol['max_abs'] * scale:g}")
    if "min_agreement" in tol and result.get("top1_agreement") is not None and result["top1_agreement"] < tol["min_agreement"]:
        fails.append(f"{name}: top-1 agreement {result['top1_agreement']:.3f} < {tol['min_agreement']:g}")
    if "min_cosine" in tol and result["cosine_mean"] < tol["min_cosine"]:
        fails.append(f"{name}: cosine mean {result['cosine_mean']:.5f} < {tol['min_cosine']:g}")
    if "min_snr_db" in tol and result.get("snr_db") is not None and result["snr_db"] < tol["min_snr_db"]:
        fails.append(f"{name}: SNR {result['snr_db']:.1f} dB < {tol['min_snr_db']:g} dB")
    return fails


def parity_record(task: str, recipe: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray], runtime: str,
                  **extra) -> dict:
    """The manifest's ``parity`` block: one compared entry per output, the tolerance, and whether all are within.
    Only the task's primary (first) output is held to the task tolerance; the rest are recorded."""
    results = []
    for i, (k, r) in enumerate(ref.items()):
        res = compare(r, got[k], k)
        res["ref_max_abs"] = float(np.abs(np.asarray(r, np.float64)).max(initial=0.0))
        results.append(res)
    fails = within(task, recipe, results[0]) if results else []
    return {"status": "measured", "runtime": runtime, "task": task, "outputs": results, **extra,
            "tolerance": tolerance(task, recipe), "within_tolerance": not fails, "failures": fails}


def nn_agreement(ref: np.ndarray, got: np.ndarray) -> float | None:
    """Share of samples whose nearest neighbour (cosine, excluding itself) is the same under both models."""
    r, g = _per_sample(ref), _per_sample(got)
    if len(r) < 3:
        return None

    def nn(a):
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        s = a @ a.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)

    return float((nn(r) == nn(g)).mean())


def task_metrics(task: str, ref: dict[str, np.ndarray] | None, got: dict[str, np.ndarray], y: np.ndarray | None,
                 primary: str) -> dict:
    """The report row's quality fields for one artifact run on the evaluation set."""
    out: dict = {}
    z = got[primary]
    r = None if ref is None else ref[primary]
    t = get_task(task)
    if t.labels:
        if y is not None:
            out["accuracy"] = float((np.asarray(z).reshape(len(z), -1).argmax(-1) == y).mean())
        if r is not None:
            out["agreement"] = float((_per_sample(r).argmax(-1) == _per_sample(z).argmax(-1)).mean())
    out["flags"] = output_flags(r, z)
    if r is not None:
        c = compare(r, z, primary)
        out.update({"max_abs_diff": c["max_abs_diff"], "max_rel_diff": c["max_rel_diff"], "snr_db": c["snr_db"],
                    "norm_ratio": c["norm_ratio"]})
        if t.similarity:
            out.update({"cosine_mean": c["cosine_mean"], "cosine_min": c["cosine_min"], "nn_agreement": nn_agreement(r, z)})
        out["outputs"] = [compare(ref[k], got[k], k) for k in ref if k in got]
    return out


def float_quality(task: str, ref: dict[str, np.ndarray], y: np.ndarray | None, primary: str) -> float | None:
    """The float model's own score on labels (classification accuracy); None for tasks judged against float."""
    if get_task(task).labels and y is not None:
        return float((_per_sample(ref[primary]).argmax(-1) == y).mean())
    return None


def infer_task(sig: Signature, explicit: str | None = None, labels=None) -> str:
    """--task if given; else classification when integer ``labels`` (the data's y) index the primary 2-D output's
    columns; else embedding for token inputs with a 2-D float output, classification for a 2-D output of at most
    1,000 scores, regression otherwise."""
    if explicit:
        if explicit not in TASKS:
            raise InputError(f"--task {explicit!r} is not one of {', '.join(TASKS)}")
        return explicit
    out = sig.outputs[0] if sig.outputs else None
    if out is None:
        return "regression"
    if out.role == "embedding":
        return "embedding"
    if out.labels or out.role == "logits":
        return "classification"
    if (labels is not None and len(out.shape) == 2 and np.issubdtype(np.asarray(labels).dtype, np.integer)
            and len(labels) and 0 <= int(np.min(labels))
            and int(np.max(labels)) < out.shape[1] <= 2 * (int(np.max(labels)) + 1)):
        return "classification"  # one score per class (a 384-d embedding with 0/1 labels stays an embedding)
    tokens = any(t.role == "token_ids" for t in sig.inputs)
    if len(out.shape) == 2 and out.is_float:
        if tokens:
            return "embedding"
        if 1 < out.shape[1] <= 1000:
            return "classification"
    return "regression"
