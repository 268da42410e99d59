"""Parity helpers that return numbers, not booleans."""

from __future__ import annotations

import numpy as np

from edgeport import defaults


def compare(reference: np.ndarray, candidate: np.ndarray, name: str = "logits") -> dict:
    """max abs diff, max rel diff and top-1 agreement of one output."""
    ref = np.asarray(reference, np.float64)
    got = np.asarray(candidate, np.float64)
    diff = np.abs(ref - got)
    rel = diff / np.maximum(np.abs(ref), 1e-6)
    return {
        "name": name,
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
        "samples": int(len(ref)),
    }


def record(results: list[dict], recipe: str, runtime: str, **extra) -> dict:
    """The manifest's `parity` block for measured results; the one shape both evaluators write."""
    fails = [f for r in results for f in within(r, recipe)]
    return {"status": "measured", "runtime": runtime, "outputs": results, **extra,
            "tolerance": tolerance(recipe), "within_tolerance": not fails}


def tolerance(recipe: str) -> dict:
    return defaults.PARITY_TOLERANCE[recipe]


def within(result: dict, recipe: str, *, max_abs: float | None = None, min_agreement: float | None = None) -> list[str]:
    """Failures (empty when within tolerance). Tolerances default to the recipe's."""
    tol = tolerance(recipe)
    max_abs = tol["max_abs"] if max_abs is None else max_abs
    min_agreement = tol["min_agreement"] if min_agreement is None else min_agreement
    fails = []
    if max_abs is not None and result["max_abs_diff"] > max_abs:
        fails.append(f"{result['name']}: max abs diff {result['max_abs_diff']:.3g} > {max_abs:g}")
    if result["top1_agreement"] < min_agreement:
        fails.append(f"{result['name']}: top-1 agreement {result['top1_agreement']:.3f} < {min_agreement:g}")
    return fails
