"""The constants an .onnx stores: its graphs' initializers and Constant nodes (subgraphs included)."""

from __future__ import annotations

from pathlib import Path

from edgeport.weights import Stored, digest, weights_reader

_NAMES = {"float32": "fp32", "float16": "fp16", "float64": "fp64", "bfloat16": "bf16"}


@weights_reader("onnx")
def stored(entry: Path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(entry), load_external_data=True)

    def tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    yield a.t
                for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    yield from tensors(g)

    for t in tensors(model.graph):
        arr = numpy_helper.to_array(t)
        name = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name if t.data_type != onnx.TensorProto.BFLOAT16 \
            else "bfloat16"
        name = {onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "uint4"}.get(t.data_type, name)
        raw = arr.tobytes()
        nbytes = (arr.size + 1) // 2 if name in ("int4", "uint4") else len(raw)
        yield Stored(_NAMES.get(name, name), nbytes, len(t.dims), digest(raw))
