"""`edgeport inspect` for .pte: the PT2E fake-quantized GraphModule (prepare -> calibrate -> convert, exactly as the
converter made it, equalization and float layers included) against the float exported module, node by node (an FX
interpreter), grouped by ``nn_module_stack``. ExecuTorch's devtools Inspector needs an ETRecord and an ETDump from a
profiling build of the runtime; the fake-quant graph gives the same per-layer numbers from Python alone."""

from __future__ import annotations

import numpy as np

from edgeport.quantization.budget import torch_batches
from edgeport.quantization.layers import pt2e_layer_rows


def layer_rows(m, src, feeds: dict[str, np.ndarray]) -> list[dict]:
    """Per-layer divergence rows of a quantized .pte from its float source (edge/inspect.py sorts them)."""
    from edgeport.quantization.budget import pt2e_graphs, calibration_batches_for

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # observers on batch-1 tensors are far faster on one thread
    try:
        q = m.quantization or {}
        calib = calibration_batches_for(m, src)
        float_gm, quant_gm = pt2e_graphs(src, calib, dynamic=m.recipe == "dynamic-int8",
                                         equalization=q.get("equalization"), float_layers=q.get("float_layers") or [])
        names = [s.name for s in m.sig.inputs]
        return pt2e_layer_rows(float_gm, quant_gm, torch_batches(feeds, names))
    finally:  # the caller's thread count, whatever happened (it was left at 1: later training in the process differed)
        torch.set_num_threads(threads)


