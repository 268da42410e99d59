"""Keras / SavedModel -> ONNX with tf2onnx, from the shared batch-1 SavedModel export (``keras_saved_model``).

tf2onnx 1.17's ``from_keras`` cannot read a Keras 3 model on TF 2.19 (it looks up Keras 3's symbolic output names,
``keras_tensor_N``, among the traced function's tensors and fails with ``KeyError: 'keras_tensor_9'``), so every Keras
source goes through the SavedModel, the same two steps as ``python -m tf2onnx.convert --saved-model``:
``tf_loader.from_saved_model`` freezes the serving signature, ``convert.from_graph_def`` converts it.
"""

from __future__ import annotations

from pathlib import Path

from edgeport.registry import converter

from ..common import Job, Produced, bind_keys, keras_saved_model, run_converter
from .recipes import OPSET, RECIPES, float_model_dir, make_recipe

TOOL = "tf2onnx (SavedModel)"


def _export(job: Job) -> Path:
    cached = job.cache.get("onnx_float")
    if cached and Path(cached).is_file():
        return Path(cached)
    saved = keras_saved_model(job)
    path = float_model_dir(job) / "float.onnx"

    def go():
        import tensorflow as tf
        from tf2onnx import convert as tf2onnx_convert
        from tf2onnx import tf_loader

        graph_def, ins, outs, rename = tf_loader.from_saved_model(
            str(saved), None, None, tag=["serve"], signatures=["serving_default"], return_tensors_to_rename=True)
        # The serving signature names inputs by the model's own names; outputs come back as its keys
        # (output_0, output_1, ... for a Keras export). Rename each output to the source's name for it.
        keys = [rename.get(t, t) for t in outs]
        by_key = dict(zip(keys, outs))
        for name, key in zip(job.sig.output_names, bind_keys(job.sig.output_names, keys)):
            rename[by_key[key]] = name
        with tf.device("/cpu:0"):
            proto, _ = tf2onnx_convert.from_graph_def(graph_def, name=job.source.name, input_names=ins, output_names=outs,
                                                      opset=OPSET, tensors_to_rename=rename, output_path=str(path))
        return proto

    run_converter(go, "tf2onnx", job)
    job.cache["onnx_float"] = str(path)
    return path


@converter("onnx", "keras", recipes=RECIPES, tool=TOOL, budget=("int8",))
def convert(job: Job) -> Produced:
    return make_recipe(job, _export(job), TOOL)
