"""The constants a .pte stores, read back from the file: the program's own constant tensors (ops left to the
portable kernels) and each XNNPACK delegate's constants (its XNNGraph, decompiled with flatc from ExecuTorch's own
schema; the data lives in the .pte's named data store, one copy per distinct content, or after the graph)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from edgeport.weights import Stored, digest, weights_reader

# ExecuTorch ScalarType names and XNNPACK datatypes as edgeport writes dtypes
_SCALAR = {"FLOAT": "fp32", "HALF": "fp16", "BFLOAT16": "bf16", "DOUBLE": "fp64", "CHAR": "int8", "BYTE": "uint8",
           "SHORT": "int16", "INT": "int32", "LONG": "int64", "BOOL": "bool"}
_XNN = {"fp32": "fp32", "pfp32": "fp32", "fp16": "fp16", "bf16": "bf16", "qint8": "int8", "qcint8": "int8",
        "qdint8": "int8", "qpint8": "int8", "quint8": "uint8", "qint32": "int32", "qcint32": "int32", "int32": "int32",
        "qcint4": "int4", "qbint4": "int4"}
_NONFINITE = re.compile(r'(?<![\w"])-?(?:inf|nan)(?![\w"])')  # flatc writes quantization params JSON cannot read


def _xnn_graph(blob: bytes) -> tuple[dict, bytes]:
    import executorch.backends.xnnpack.serialization as xs
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _flatc_decompile

    h = XNNHeader.from_bytes(bytes(blob[: XNNHeader.EXPECTED_LENGTH]))
    schema = os.path.join(list(xs.__path__)[0], "schema.fbs")
    with tempfile.TemporaryDirectory(prefix="edgeport-xnn-") as tmp:
        b = os.path.join(tmp, "g.bin")
        with open(b, "wb") as f:
            f.write(blob[h.flatbuffer_offset: h.flatbuffer_offset + h.flatbuffer_size])
        _flatc_decompile(tmp, schema, b, ["--raw-binary"])
        with open(os.path.join(tmp, "g.json")) as f:
            graph = json.loads(_NONFINITE.sub("0", f.read()))
    return graph, bytes(blob[h.constant_data_offset: h.constant_data_offset + h.constant_data_size])


@weights_reader("pte")
def stored(entry: Path):
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(entry.read_bytes())
    prog, named = pte.program, pte.named_data
    named_bytes = {}
    if named is not None:
        named_bytes = {k: named.buffers[e.buffer_index] for k, e in named.pte_data.items()}
    for plan in prog.execution_plan:
        for v in plan.values:
            t = v.val
            if type(t).__name__ != "Tensor" or t.data_buffer_idx <= 0 or t.allocation_info is not None:
                continue
            data = bytes(prog.constant_buffer[t.data_buffer_idx].storage) if t.data_buffer_idx < len(
                prog.constant_buffer) else b""
            name = getattr(t.scalar_type, "name", str(t.scalar_type))
            yield Stored(_SCALAR.get(name, name.lower()), len(data), len(t.sizes), digest(data) if data else None,
                         key=("program", t.data_buffer_idx))
        for d in plan.delegates:
            if d.id != "XnnpackBackend":
                continue
            graph, inline = _xnn_graph(prog.backend_delegate_data[d.processed.index].data)
            offsets = graph.get("constant_data") or []
            for xv in graph.get("xvalues", []):
                u = xv.get("xvalue_union") or {}
                tv = u.get("tensor_value", u)
                idx = tv.get("constant_buffer_idx", 0)
                if not idx or idx >= len(offsets):
                    continue
                c = offsets[idx]
                key = c.get("named_key") or ""
                if key:
                    data, where = named_bytes.get(key, b""), ("named", key)
                else:
                    data, where = inline[int(c["offset"]): int(c["offset"]) + int(c["size"])], ("inline", id(graph), idx)
                dt = str(tv.get("datatype", "")).replace("xnn_datatype_", "")
                yield Stored(_XNN.get(dt, dt), int(c.get("size") or len(data)), len(tv.get("dims") or []),
                             digest(bytes(data)) if data else None, key=where)
