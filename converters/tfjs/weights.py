"""The weights a TF.js model stores: model.json's weightsManifest (dtype as stored: a quantized weight keeps its
quantization dtype), sliced from its shard files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeport.weights import Stored, digest, weights_reader

_SIZE = {"float32": 4, "int32": 4, "float16": 2, "uint16": 2, "int16": 2, "uint8": 1, "int8": 1, "bool": 1}
_NAMES = {"float32": "fp32", "float16": "fp16"}


@weights_reader("tfjs")
def stored(entry: Path):
    spec = json.loads(entry.read_text())
    for gi, group in enumerate(spec.get("weightsManifest", [])):
        data = b"".join((entry.parent / p).read_bytes() for p in group["paths"])
        at = 0
        for w in group["weights"]:
            q = w.get("quantization") or {}
            dtype = q.get("dtype", w["dtype"])
            n = int(np.prod(w["shape"])) * _SIZE.get(dtype, 4)
            yield Stored(_NAMES.get(dtype, dtype), n, len(w["shape"]), digest(data[at: at + n]), key=(gi, at))
            at += n
