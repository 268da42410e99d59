"""The .pte target's accuracy budget: the shared search (edgeport.quantization.budget: equalization, ranking by
SNR lost, bisection, giving layers back) run with this target's own lowering (:func:`from_torch.lower_program`) and
the evaluator's own ExecuTorch runner (:class:`runner.PteRunner`) for every candidate it measures."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeport.quantization import budget as B
from edgeport.runtime import run_artifact
from edgeport.signature import Signature, TensorSpec

from .from_torch import lower_program, pte_signature
from .runner import PteRunner


def runner_for(input_names: list[str], output_names: list[str], feeds: dict[str, np.ndarray]):
    """``run(program, feeds) -> (outputs, bytes)``: a lowered program written to a scratch file and run by
    PteRunner, inputs and outputs by position (outputs without a shape: kept as the program gives them)."""
    sig = pte_signature(Signature(
        tuple(TensorSpec(n, np.asarray(feeds[n]).dtype.name, (1, *np.asarray(feeds[n]).shape[1:])) for n in input_names),
        tuple(TensorSpec(n, "float32", ()) for n in output_names)))

    def run(program, feeds: dict[str, np.ndarray]) -> tuple[dict, int]:
        with tempfile.TemporaryDirectory(prefix="edgeport-budget-") as d:
            path = Path(d) / "candidate.pte"
            with open(path, "wb") as f:
                program.write_to_file(f)
            outs = run_artifact(PteRunner, path, sig, feeds)
            return outs, path.stat().st_size

    return run


def search(module, example: tuple, calib: list[tuple], budget_feeds: dict[str, np.ndarray], *, input_names: list[str],
           output_names: list[str], **kw) -> B.BudgetResult:
    """:func:`edgeport.quantization.budget.search_pte` with this target's lowering and runner."""
    return B.search_pte(module, example, calib, budget_feeds, input_names=input_names, output_names=output_names,
                        lower=lower_program, run=runner_for(input_names, output_names, budget_feeds), **kw)


def budgeted_int8(job, budget, budget_feeds: dict[str, np.ndarray], **kw) -> B.BudgetResult:
    names, outs = list(job.sig.input_names), list(job.sig.output_names)
    return B.budgeted_int8_pte(job, budget, budget_feeds, lower=lower_program,
                               run=runner_for(names, outs, budget_feeds), **kw)
