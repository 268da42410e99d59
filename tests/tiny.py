"""Tiny artifacts made by each format's own toolchain (no edgeport converter): a linear map of 8 inputs to 4 scores,
with a manifest and a probe sidecar holding the numpy answer. For the fast tier: runtime plugins, CLI errors."""

from __future__ import annotations

import numpy as np

from edgeport.manifest import Manifest, file_entries

IN, OUT = 8, 4
RNG = np.random.default_rng(0)
W = RNG.standard_normal((IN, OUT)).astype(np.float32)
B = RNG.standard_normal(OUT).astype(np.float32)
X = RNG.standard_normal((16, IN)).astype(np.float32)
REF = X @ W + B  # the float answer every runtime must give


def _onnx(folder):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, OUT])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "tiny.fp32.onnx"))
    return "tiny.fp32.onnx", "x", "logits"


def _tflite(folder):
    import tensorflow as tf

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, IN], tf.float32, name="x")])
        def serve(self, x):
            return {"logits": tf.matmul(x, W) + B}

    m = Tiny()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.serve.get_concrete_function()], m)
    (folder / "tiny.fp32.tflite").write_bytes(conv.convert())
    from ai_edge_litert.interpreter import Interpreter

    from edgeport.runtime import serving_signature

    _, sr = serving_signature(Interpreter(model_path=str(folder / "tiny.fp32.tflite")))
    (ikey,), (okey,) = sr.get_input_details(), sr.get_output_details()
    return "tiny.fp32.tflite", ikey, okey


def _pte(folder):
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    lin = torch.nn.Linear(IN, OUT)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W.T.copy()))
        lin.bias.copy_(torch.from_numpy(B))
    ep = torch.export.export(lin.eval(), (torch.zeros(1, IN),))
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    with open(folder / "tiny.fp32.pte", "wb") as f:
        prog.write_to_file(f)
    return "tiny.fp32.pte", 0, 0


BUILD = {"onnx": _onnx, "tflite": _tflite, "pte": _pte}


def artifact(folder, target: str) -> Manifest:
    """Write the tiny artifact of ``target`` (onnx | tflite | pte) with its manifest into ``folder``."""
    entry, ibind, obind = BUILD[target](folder)
    name = entry
    np.savez(folder / f"{name}.probe.npz", **{"in:x": X, "out:logits": REF})
    m = Manifest(name=name, source={"framework": "numpy", "model": "python:tiny", "sha256": "0" * 64}, target=target,
                 recipe="fp32", task="classification", entry=entry, files=file_entries(folder, [entry]),
                 signature={"inputs": [{"name": "x", "dtype": "float32", "shape": [1, IN], "binding": ibind}],
                            "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, OUT], "binding": obind}]},
                 preprocessing={"kind": "tensor"}, parity={"status": "pending"},
                 probe={"file": f"{name}.probe.npz", "data": "normal(0,1) seed=0"})
    m.write(folder)
    return m


