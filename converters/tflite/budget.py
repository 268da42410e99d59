"""The .tflite target's accuracy budget: the shared search (edgeport.quantization.budget) with every candidate run by
the evaluator's own LiteRT runner (:func:`runner.run_tflite`)."""

from __future__ import annotations

import numpy as np

from edgeport.quantization import budget as B

from .runner import run_tflite


def search(src, calib_feeds: dict[str, np.ndarray], budget_feeds: dict[str, np.ndarray], **kw) -> B.BudgetResult:
    """:func:`edgeport.quantization.budget.search_tflite` with this target's runner."""
    return B.search_tflite(src, calib_feeds, budget_feeds, run=lambda data, feeds: run_tflite(data, src.signature, feeds), **kw)


def budgeted_int8(job, budget, budget_feeds: dict[str, np.ndarray], **kw) -> B.BudgetResult:
    return B.budgeted_int8_tflite(job, budget, budget_feeds,
                                  run=lambda data, feeds: run_tflite(data, job.source.signature, feeds), **kw)
