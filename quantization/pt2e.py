"""PT2E post-training quantization, shared by the ExecuTorch and litert-torch converters."""

from __future__ import annotations


def calibrate_pt2e(exported, quantizer, *, example, calib=None, fold_quantize: bool = True):
    """prepare_pt2e -> run the representative set (or one example for dynamic quantization) -> convert_pt2e.

    ``exported`` is a torch.export.ExportedProgram of the float model; ``calib`` a numpy batch in its input
    layout (None for dynamic recipes, whose activation ranges are computed at run time).
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(exported.module(), quantizer)
    batches = [example] if calib is None else [torch.from_numpy(calib[i : i + 1]) for i in range(len(calib))]
    with torch.no_grad():
        for b in batches:
            prepared(b)
    return convert_pt2e(prepared, fold_quantize=fold_quantize)
