"""The constants a .tflite stores, read from its flatbuffer (buffers referenced by tensors, with their types)."""

from __future__ import annotations

from pathlib import Path

from edgeport.weights import Stored, digest, weights_reader

# TensorType names as edgeport writes dtypes
_NAMES = {"FLOAT32": "fp32", "FLOAT16": "fp16", "BFLOAT16": "bf16", "FLOAT64": "fp64", "INT8": "int8", "UINT8": "uint8",
          "INT4": "int4", "INT16": "int16", "UINT16": "uint16", "INT32": "int32", "UINT32": "uint32", "INT64": "int64",
          "BOOL": "bool", "STRING": "string"}


@weights_reader("tflite")
def stored(entry: Path):
    from ai_edge_litert import schema_py_generated as fb

    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    buf = entry.read_bytes()
    model = fb.Model.GetRootAs(buf, 0)
    for si in range(model.SubgraphsLength()):
        g = model.Subgraphs(si)
        for ti in range(g.TensorsLength()):
            t = g.Tensors(ti)
            b = t.Buffer()
            if b <= 0 or b >= model.BuffersLength():
                continue
            bb = model.Buffers(b)
            if bb.Offset() > 1:  # a large model keeps its data after the flatbuffer, at offset / size
                data = memoryview(buf)[bb.Offset(): bb.Offset() + bb.Size()]
            elif bb.DataLength():
                data = bb.DataAsNumpy().tobytes()
            else:
                continue  # an empty buffer: a variable or an activation
            name = types.get(t.Type(), str(t.Type()))
            yield Stored(_NAMES.get(name, name.lower()), len(data), t.ShapeLength(), digest(bytes(data)), key=b)
