"""`edgeport inspect` for .tflite: the quantized interpreter and the float .tflite (the fp32 artifact beside it, else
the source converted again with the same converter) both run with ``experimental_preserve_all_tensors=True``;
tensors are matched by name, int8 tensors dequantized with their own scale / zero point, and mapped back to the
source's layers (Keras layer names are path segments; litert-torch names carry the module path)."""

from __future__ import annotations

import numpy as np

from edgeport.quantization.layers import LayerNamer, TFLRun, tflite_layer_rows


def _samples_for(data: bytes, feeds: dict[str, np.ndarray], names: list[str]) -> list[dict]:
    from edgeport.job import bind_keys

    run = TFLRun(data)
    keys = bind_keys(names, list(run.inputs))
    n = len(next(iter(feeds.values())))
    return [{k: feeds[nm][i:i + 1] for nm, k in zip(names, keys)} for i in range(n)]


def _float_tflite_for(m, src) -> bytes:
    """The fp32 .tflite beside the artifact (same source sha256), else the source converted again."""
    from edgeport.manifest import Manifest

    fp = m.folder / m.name.replace(f".{m.recipe}.tflite", ".fp32.tflite")
    mp = fp.with_name(fp.name + ".manifest.json")
    if mp.is_file():
        other = Manifest.read(mp)
        if other.source.get("sha256") == m.source.get("sha256"):
            return other.entry_path.read_bytes()
    from edgeport.quantization.budget import float_tflite

    return float_tflite(src, (m.quantization or {}).get("equalization"))


def layer_rows(m, src, feeds: dict[str, np.ndarray]) -> list[dict]:
    """Per-layer divergence rows of a quantized .tflite from its float source (edge/inspect.py sorts them)."""
    quant = m.entry_path.read_bytes()
    fl = _float_tflite_for(m, src)
    names = [s.name for s in m.sig.inputs]
    return tflite_layer_rows(fl, quant, _samples_for(fl, feeds, names), LayerNamer(src))


