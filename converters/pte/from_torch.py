"""PyTorch -> ExecuTorch .pte: torch.export, PT2E quantization (XNNPACK quantizer), XNNPACK delegation.

Quantized recipes also quantize nn.Embedding tables (int8 per row, weight-only, torchao) when the model has any;
ExecuTorch fuses them into ``quantized_decomposed.embedding_byte``, which the runtime's quantized kernels run.
"""

from __future__ import annotations

from edgeport.registry import converter
from edgeport.signature import Signature

from ..common import Job, Produced, run_converter, torch_exported


def _has_embeddings(module) -> bool:
    import torch

    return any(isinstance(m, torch.nn.Embedding) for m in module.modules())


def _quantize(job: Job):
    """PT2E with the XNNPACK quantizer (per-channel, symmetric, float tensors only), then re-export for lowering."""
    import copy

    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from edgeport.quantization.pt2e import calibrate_pt2e, quantize_embeddings_

    dynamic = job.recipe == "dynamic-int8"
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
    module = job.source.torch_module()
    facts: dict = {}
    if _has_embeddings(module):
        module = quantize_embeddings_(copy.deepcopy(module), 8)
        exported = torch.export.export(module, job.example_torch(), strict=False)
        facts["embeddings"] = "int8 per row, weight-only (torchao IntxWeightOnlyConfig)"
    else:
        exported = torch_exported(job)
    converted, pt2e = calibrate_pt2e(exported, quantizer, example=job.example_torch(), calib=None if dynamic else job)
    facts.update(pt2e, activations="dynamic int8" if dynamic else "static int8 (per-tensor, histogram observer)",
                 weights="int8 per channel, symmetric")
    return torch.export.export(converted, job.example_torch(), strict=False), facts


def lower_program(ep, embeddings: bool = False):
    """An exported program -> (ExecuTorch program, delegation counts): XNNPACK partitioning, and for int8 embedding
    tables the fusion into ``quantized_decomposed.embedding_byte``. The one lowering of the .pte target (the
    converter and its budget search both use it)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    if embeddings:
        from executorch.exir.passes.quant_fusion_pass import quant_fusion_and_const_prop_pass

        quant_fusion_and_const_prop_pass(edge.exported_program())
    info = get_delegation_info(edge.exported_program().graph_module)
    delegation = {"delegated": int(info.num_delegated_nodes),
                  "total": int(info.num_delegated_nodes + info.num_non_delegated_nodes), "unit": "graph nodes",
                  "subgraphs": int(info.num_delegated_subgraphs)}
    return edge.to_executorch(), delegation


def pte_signature(sig: Signature) -> Signature:
    """A .pte method takes and returns tensors by position: inputs in forward() order, outputs flattened as
    torch.export flattens them (the same order the source's outputs are named in)."""
    return Signature(tuple(s.with_(binding=i) for i, s in enumerate(sig.inputs)),
                     tuple(s.with_(binding=i) for i, s in enumerate(sig.outputs)))


@converter("pte", "torch", recipes=("fp32", "dynamic-int8", "int8"), tool="executorch.exir (XNNPACK)", budget=("int8",))
def convert(job: Job) -> Produced:
    def lower():
        ep, facts = (torch_exported(job), None) if job.recipe == "fp32" else _quantize(job)
        return (*lower_program(ep, bool(facts and "embeddings" in facts)), facts)

    if job.budget is not None:
        from .budget import budgeted_int8

        res = budgeted_int8(job, job.budget, job.holdout)
        prog, facts = res.program, res.facts
        delegation = res.delegation
    else:
        prog, delegation, facts = run_converter(lower, "executorch exir", job)
    out = job.workdir / f"{job.name}.pte"
    with open(out, "wb") as f:
        prog.write_to_file(f)
    sig = pte_signature(job.sig)
    return Produced(entry=out.name, files=[out.name], signature=sig, delegation=delegation, quantization=facts)
