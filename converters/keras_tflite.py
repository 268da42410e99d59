"""Keras / SavedModel -> TFLite with the official tf.lite.TFLiteConverter."""

from __future__ import annotations

from .common import Job, Produced, keras_saved_model, tflite_signature, run_converter
from .registry import register


@register("keras", "tflite", recipes=("fp32", "fp16", "dynamic-int8", "int8"),
          converter="tf.lite.TFLiteConverter", runtime="ai-edge-litert")
def convert(job: Job) -> Produced:
    import tensorflow as tf

    src = job.source
    if src.saved_model_dir is not None:
        # A user SavedModel usually has a dynamic batch; pin it to the manifest's batch-1 signature so that the
        # graph matches what the runtimes execute (a dynamic graph lowers to other kernels, ~1e-5 relative off).
        fn = src.model.signatures["serving_default"]
        cf = tf.function(lambda x: fn(**{src.input_name: x})).get_concrete_function(
            tf.TensorSpec(src.input_shape, tf.float32, name=src.input_name))
        conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], src.model)
    else:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(keras_saved_model(job)))
    if job.recipe != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if job.recipe == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    elif job.recipe == "int8":
        calib = job.calib

        def representative():
            for i in range(len(calib)):
                yield [calib[i : i + 1]]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if job.options.int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    data = run_converter(lambda: conv.convert(), "tf.lite.TFLiteConverter", job)
    out = job.workdir / f"{job.name}.tflite"
    out.write_bytes(data)
    return Produced(entry=out.name, files=[out.name], signature=tflite_signature(out, job))
