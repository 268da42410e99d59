"""Keras / SavedModel -> TF.js graph model with the official tensorflowjs converter."""

from __future__ import annotations

from .common import Job, Produced, keras_saved_model, run_converter
from .registry import register

# tensorflowjs' weight-storage quantization: dtype -> which weights ("*" = all).
_DTYPE_MAP = {"fp32": None, "fp16": {"float16": "*"}, "uint8": {"uint8": "*"}, "uint16": {"uint16": "*"}}


@register("keras", "tfjs", recipes=("fp32", "fp16", "uint8", "uint16"),
          converter="tensorflowjs.converters.convert_tf_saved_model", runtime="browser")
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
    import json

    # tensorflowjs writes protobuf map fields (each node's `attr`) in hash order, which changes from process to
    # process; rewriting model.json with sorted keys makes the artifact byte-reproducible. TF.js reads keys by name.
    model_json = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps(model_json, sort_keys=True))
    sig = model_json.get("signature") or model_json.get("userDefinedMetadata", {}).get("signature", {})
    inputs, outputs = [], []
    for name, spec in (sig.get("inputs") or {}).items():
        shape = [int(d.get("size", -1)) for d in spec.get("tensorShape", {}).get("dim", [])]
        inputs.append({"name": name, "shape": shape, "dtype": "float32", "layout": job.source.layout, "quantization": None})
    for name, spec in (sig.get("outputs") or {}).items():
        shape = [int(d.get("size", -1)) for d in spec.get("tensorShape", {}).get("dim", [])]
        outputs.append({"name": name, "shape": shape, "dtype": "float32", "labels": job.source.labels, "quantization": None})
    files = [f"{out.name}/{p.name}" for p in sorted(out.iterdir())]
    return Produced(entry=f"{out.name}/model.json", files=files, signature={"inputs": inputs, "outputs": outputs},
                    moved=[out.name])
