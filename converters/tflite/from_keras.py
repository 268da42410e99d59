"""Keras / SavedModel -> TFLite with the official tf.lite.TFLiteConverter."""

from __future__ import annotations

from edgeport.registry import converter

from ..common import Job, Produced, keras_saved_model, run_converter, tflite_signature
from .mcu import check as mcu_check


@converter("tflite", "keras", recipes=("fp32", "fp16", "dynamic-int8", "int8"), tool="tf.lite.TFLiteConverter", budget=("int8",))
def convert(job: Job) -> Produced:
    import tensorflow as tf

    mcu = job.options.profile == "mcu"
    if job.budget is not None and not mcu:  # the accuracy-budget search (ai-edge-quantizer on the float .tflite, per-op choice)
        from .budget import budgeted_int8

        res = budgeted_int8(job, job.budget, job.holdout)
        out = job.workdir / f"{job.name}.tflite"
        out.write_bytes(res.data)
        return Produced(entry=out.name, files=[out.name], signature=tflite_signature(out, job), quantization=res.facts)

    # Every Keras source (Sequential, Functional, subclassed, SavedModel) is first exported as a SavedModel with a
    # batch-1 signature named by the model's inputs, so the .tflite's signature keys are the model's own names.
    conv = tf.lite.TFLiteConverter.from_saved_model(str(keras_saved_model(job)), signature_keys=["serving_default"])
    if job.recipe != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if job.recipe == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    elif job.recipe == "int8":
        def representative():
            for row in job.calib_rows():
                yield {k: v for k, v in row.items()}

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if job.options.int8_io or mcu:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    data = run_converter(lambda: conv.convert(), "tf.lite.TFLiteConverter", job)
    out = job.workdir / f"{job.name}.tflite"
    out.write_bytes(data)
    sig = tflite_signature(out, job)
    return Produced(entry=out.name, files=[out.name], signature=sig,
                    quantization=mcu_check(job, data, sig) if mcu else None)
