"""PT2E post-training quantization, shared by the ExecuTorch and litert-torch converters."""

from __future__ import annotations


def calibrate_pt2e(exported, quantizer, *, example: tuple, calib=None, fold_quantize: bool = True):
    """prepare_pt2e -> run the representative set (or one example for dynamic quantization) -> convert_pt2e.

    ``exported`` is a torch.export.ExportedProgram of the float model; ``example`` a tuple of torch tensors in
    input order; ``calib`` a converters Job whose calibration rows are run (None for dynamic recipes, whose
    activation ranges are computed at run time).
    """
    import numpy as np
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(exported.module(), quantizer)
    if calib is None:
        batches = [example]
    else:
        names = calib.sig.input_names
        batches = [tuple(torch.from_numpy(np.ascontiguousarray(row[n])) for n in names) for row in calib.calib_rows()]
    with torch.no_grad():
        for b in batches:
            prepared(*b)
    return convert_pt2e(prepared, fold_quantize=fold_quantize)
