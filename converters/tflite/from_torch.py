"""PyTorch -> TFLite with litert-torch (PT2E quantizers for int8; ai-edge-quantizer recipe for fp16)."""

from __future__ import annotations

from edgeport.registry import converter

from ..common import Job, Produced, run_converter, tflite_signature, torch_exported


def _quant_config(job: Job):
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig

    if job.recipe == "fp32":
        return None
    if job.recipe == "fp16":
        from litert_torch.generative.quantize import quant_recipes

        return quant_recipes.full_fp16_recipe()  # already a QuantConfig (ai-edge-quantizer fp16 weights)
    dynamic = job.recipe == "dynamic-int8"
    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
    return QuantConfig(pt2e_quantizer=quantizer)


@converter("tflite", "torch", recipes=("fp32", "fp16", "dynamic-int8", "int8"), tool="litert-torch")
def convert(job: Job) -> Produced:
    import litert_torch

    from edgeport.quantization.pt2e import calibrate_pt2e

    qc = _quant_config(job)

    def go():
        module = job.source.torch_module()
        if qc is not None and qc.pt2e_quantizer is not None:
            # litert-torch's documented PT2E flow: calibrate and convert first, then litert_torch.convert().
            module = calibrate_pt2e(torch_exported(job), qc.pt2e_quantizer, example=job.example_torch(),
                                    calib=None if job.recipe == "dynamic-int8" else job, fold_quantize=False)
        return litert_torch.convert(module, job.example_torch(), quant_config=qc)

    edge = run_converter(go, "litert-torch", job)
    out = job.workdir / f"{job.name}.tflite"
    edge.export(str(out))
    return Produced(entry=out.name, files=[out.name], signature=tflite_signature(out, job))
