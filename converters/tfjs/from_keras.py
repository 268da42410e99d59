"""Keras / SavedModel -> TF.js graph model with the official tensorflowjs converter."""

from __future__ import annotations

import json

from edgeport.registry import converter
from edgeport.signature import Signature

from ..common import Job, Produced, bind_keys, keras_saved_model, run_converter

# tensorflowjs' weight-storage quantization: dtype -> which weights ("*" = all).
_DTYPE_MAP = {"fp32": None, "fp16": {"float16": "*"}, "uint8": {"uint8": "*"}, "uint16": {"uint16": "*"}}
# TF.js has no 64-bit tensors: the converter turns int64 placeholders into int32.
_TFJS_DTYPE = {"DT_FLOAT": "float32", "DT_INT32": "int32", "DT_INT64": "int32", "DT_BOOL": "bool", "DT_HALF": "float32"}


@converter("tfjs", "keras", recipes=("fp32", "fp16", "uint8", "uint16"), tool="tensorflowjs.converters.convert_tf_saved_model")
def convert(job: Job) -> Produced:
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as tfjs_conv

    out = job.workdir / f"{job.name}.tfjs"
    saved = keras_saved_model(job)
    run_converter(
        lambda: tfjs_conv.convert_tf_saved_model(
            str(saved), str(out), signature_def="serving_default", saved_model_tags="serve",
            quantization_dtype_map=_DTYPE_MAP[job.recipe], skip_op_check=False, strip_debug_ops=True,
            weight_shard_size_bytes=4 * 1024 * 1024,
        ),
        "tensorflowjs converter", job,
    )
    # tensorflowjs writes protobuf map fields (each node's `attr`) in hash order, which changes from process to
    # process; rewriting model.json with sorted keys makes the artifact byte-reproducible. TF.js reads keys by name.
    model_json = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps(model_json, sort_keys=True))
    sig = model_json.get("signature") or model_json.get("userDefinedMetadata", {}).get("signature", {})
    ins, outs = sig.get("inputs") or {}, sig.get("outputs") or {}
    # Inputs bind by signature key (GraphModel.execute maps keys to nodes); outputs by their node name.
    in_keys = bind_keys(job.sig.input_names, list(ins))
    out_keys = bind_keys(job.sig.output_names, list(outs))
    signature = Signature(
        tuple(s.with_(binding=k, dtype=_TFJS_DTYPE.get(ins[k].get("dtype"), s.dtype)) for s, k in zip(job.sig.inputs, in_keys)),
        tuple(s.with_(binding=outs[k]["name"], dtype="float32" if s.is_float else s.dtype) for s, k in zip(job.sig.outputs, out_keys)),
    )
    files = [f"{out.name}/{p.name}" for p in sorted(out.iterdir())]
    return Produced(entry=f"{out.name}/model.json", files=files, signature=signature, moved=[out.name])
