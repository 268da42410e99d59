"""PyTorch -> TFLite with litert-torch. fp16 and dynamic-int8 apply ai-edge-quantizer to the float .tflite (the path
whose quantized embedding lookups LiteRT loads); static int8 uses litert-torch's PT2E quantizer, float tensors only."""

from __future__ import annotations

from pathlib import Path

from edgeport.registry import converter

from ..common import Job, Produced, run_converter, tflite_signature, torch_exported
from .mcu import check as mcu_check


def _float_tflite(job: Job) -> bytes:
    """The float .tflite of the source, converted once per source (litert-torch narrows int64 I/O to int32)."""
    import litert_torch

    if "tflite_fp32" not in job.cache:
        def go():
            edge = litert_torch.convert(job.source.torch_module().eval(), job.example_torch())
            tmp = job.workdir / ".float.tflite"
            edge.export(str(tmp))
            data = tmp.read_bytes()
            tmp.unlink()
            return data

        job.cache["tflite_fp32"] = run_converter(go, "litert-torch", job)
    return job.cache["tflite_fp32"]


def _static_int8(job: Job) -> tuple[bytes, dict]:
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig

    from edgeport.quantization import aeq
    from edgeport.quantization.pt2e import calibrate_pt2e

    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))

    def go():
        module, facts = calibrate_pt2e(torch_exported(job), quantizer, example=job.example_torch(), calib=job,
                                       fold_quantize=False)
        # The graph was exported from the eval-mode module (batch_norm/dropout captured with training=False, and
        # calibrate_pt2e applies move_exported_model_to_eval), but an exported GraphModule keeps training=True and
        # refuses .eval(); litert-torch reads that stale flag and warns "converted in training mode". Clear it.
        for sub in module.modules():
            sub.training = False
        edge = litert_torch.convert(module, job.example_torch(), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        tmp = job.workdir / ".int8.tflite"
        edge.export(str(tmp))
        data = tmp.read_bytes()
        tmp.unlink()
        tables = aeq.float_embedding_tables(data)
        if tables:  # PT2E leaves embedding tables float; AEQ quantizes them in the form LiteRT loads
            data = aeq.embedding_tables_int8(data)
        return data, {**facts, "weights": "int8 per channel" + (f" ({tables} embedding table(s) int8 per row by"
                                                                 " ai-edge-quantizer)" if tables else ""),
                      "activations": "static int8"}

    return run_converter(go, "litert-torch PT2E", job)


@converter("tflite", "torch", recipes=("fp32", "fp16", "dynamic-int8", "int8"), tool="litert-torch (+ ai-edge-quantizer)",
           budget=("int8",))
def convert(job: Job) -> Produced:
    from edgeport.quantization import aeq

    facts = None
    mcu = job.options.profile == "mcu"
    if job.budget is not None and not mcu:
        from .budget import budgeted_int8

        res = budgeted_int8(job, job.budget, job.holdout)
        data, facts = res.data, res.facts
    elif job.recipe == "int8":
        data, facts = _static_int8(job)
    else:
        data = _float_tflite(job)
        if job.recipe == "fp16":
            data = run_converter(lambda: aeq.fp16(data), "ai-edge-quantizer", job)
            facts = {"scheme": "ai-edge-quantizer FLOAT_CASTING", "weights": "float16"}
        elif job.recipe == "dynamic-int8":
            data = run_converter(lambda: aeq.dynamic_int8(data), "ai-edge-quantizer", job)
            facts = {"scheme": "ai-edge-quantizer dynamic_wi8_afp32", "weights": "int8 per channel (embeddings too)",
                     "activations": "dynamic int8"}
    out: Path = job.workdir / f"{job.name}.tflite"
    out.write_bytes(data)
    sig = tflite_signature(out, job)
    if mcu:  # litert-torch's static int8 already has int8 I/O; TFLM checks the rest
        facts = {**(facts or {}), **mcu_check(job, data, sig)}
    return Produced(entry=out.name, files=[out.name], signature=sig, quantization=facts)
