"""PyTorch -> ExecuTorch .pte: torch.export, PT2E quantization (XNNPACK quantizer), XNNPACK delegation."""

from __future__ import annotations

from edgeport.registry import converter
from edgeport.signature import Signature

from ..common import Job, Produced, run_converter, torch_exported


def _quantize(job: Job):
    """PT2E with the XNNPACK quantizer (per-channel, symmetric), then re-export for lowering."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from edgeport.quantization.pt2e import calibrate_pt2e

    dynamic = job.recipe == "dynamic-int8"
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
    converted = calibrate_pt2e(torch_exported(job), quantizer, example=job.example_torch(), calib=None if dynamic else job)
    return torch.export.export(converted, job.example_torch(), strict=False)


@converter("pte", "torch", recipes=("fp32", "dynamic-int8", "int8"), tool="executorch.exir (XNNPACK)")
def convert(job: Job) -> Produced:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    def lower():
        ep = torch_exported(job) if job.recipe == "fp32" else _quantize(job)
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        info = get_delegation_info(edge.exported_program().graph_module)
        return edge.to_executorch(), info

    prog, info = run_converter(lower, "executorch exir", job)
    out = job.workdir / f"{job.name}.pte"
    with open(out, "wb") as f:
        prog.write_to_file(f)
    # A .pte method takes and returns tensors by position: inputs in forward() order, outputs flattened as
    # torch.export flattens them (the same order the source's outputs are named in).
    sig = Signature(tuple(s.with_(binding=i) for i, s in enumerate(job.sig.inputs)),
                    tuple(s.with_(binding=i) for i, s in enumerate(job.sig.outputs)))
    delegation = {"delegated": int(info.num_delegated_nodes), "total": int(info.num_delegated_nodes + info.num_non_delegated_nodes),
                  "unit": "graph nodes", "subgraphs": int(info.num_delegated_subgraphs)}
    return Produced(entry=out.name, files=[out.name], signature=sig, delegation=delegation)
