"""Why a sweep job failed, in one of four groups, with the converter's known limitations named.

- ``limitation``: the converter (or its runtime) cannot take this model: a typed refusal (UnsupportedError,
  ConversionError), a converter crash, or a known upstream problem from :data:`KNOWN` (named with its converter,
  the op or layer, the upstream issue when there is one, and the workaround).
- ``runtime``: a runtime or backend is not available here (a skipped row, a browser-only format without a browser).
- ``input``: the matrix entry or the model is wrong (bad --input, missing data): the user's to fix.
- ``edgeport``: anything else, an untyped exception (TypeError, KeyError ...) that edgeport did not turn into a
  message: edgeport's own bug until shown otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Limitation:
    pattern: str  # regex on "<error type>: <message>"
    converter: str
    what: str  # the op or layer
    workaround: str
    upstream: str | None = None  # the upstream issue, when there is one
    targets: tuple[str, ...] = ()  # empty: any
    group: str = "limitation"  # edgeport: ours to fix, named here until it is


# Found by running the zoo (benchmarks/zoo.toml); each is one line in the coverage table.
KNOWN: tuple[Limitation, ...] = (
    Limitation(r"crashed \(SIGSEGV\)", "tf.lite.TFLiteConverter (MLIR quantizer)",
               "int8 calibration of Keras LSTM/GRU (TensorList / while loops)",
               "keep the recipe at dynamic-int8 or fp16, or unroll the RNN (unroll=True)", targets=("tflite",)),
    Limitation(r"topologically sorted|Loop.*topolog", "onnxruntime.quantization / onnxconverter-common",
               "Loop subgraphs of tf2onnx's LSTM/GRU after the quantization passes",
               "export the RNN unrolled, or keep .onnx at fp32", targets=("onnx",)),
    Limitation(r"ChannelsLastTaggedReshapePass", "executorch XNNPACK partitioner",
               "ChannelsLastTaggedReshapePass on a reshape between conv and attention (MobileViT-like blocks)",
               "use plain int8 or fp32 for .pte"),
    Limitation(r"litert-torch PT2E failed: list index out of range", "litert-torch PT2E quantizer"
               " (litert_torch.quantize.pt2e_quantizer_utils)", "static int8 annotation of torch.nn.GRU",
               "keep .tflite at dynamic-int8, or use int8 .onnx / .pte (both take the GRU)", targets=("tflite",)),
    Limitation(r"only refer to edge or node that has observer/fake_quant", "torch.ao PT2E prepare (via litert-torch)",
               "a U-Net skip: an activation observed once but consumed by a conv and a later torch.cat",
               "keep .tflite at dynamic-int8, or use int8 .onnx / .pte (both take the model)", targets=("tflite",)),
    # Found by the zoo: a list of per-image dicts (torchvision detectors) has no batch axis. edgeport refuses it at
    # load time (sources.check_batch_axis) with the fix; the model is the user's to wrap.
    Limitation(r"its first axis is not the batch", "edgeport (batch contract)",
               "an output without a leading batch axis (a list of per-image dicts, as torchvision detectors return)",
               "return tensors with the batch axis first (benchmarks/zoo_models.py: tiny_detector)", group="input"),
)

GROUPS = {
    "edgeport": "edgeport's own error (untyped exception: a bug to fix)",
    "limitation": "converter or runtime limitation",
    "runtime": "runtime unavailable here",
    "input": "bad input (the matrix entry or the model)",
    "parity": "converted, but outside the recipe's parity tolerance",
}
_LIMIT_TYPES = {"UnsupportedError", "ConversionError", "QuantizationBudgetError"}


def classify(error: dict, target: str | None = None) -> dict:
    """{group, reason, converter?, what?, upstream?, workaround?} for a job's error dict {type, message}."""
    typ, msg = error.get("type", "Error"), " ".join(str(error.get("message", "")).split())
    text = f"{typ}: {msg}"
    for lim in KNOWN:
        if re.search(lim.pattern, text, re.I) and (not lim.targets or target in lim.targets):
            return {"group": lim.group, "reason": msg, "converter": lim.converter, "what": lim.what,
                    "upstream": lim.upstream, "workaround": lim.workaround}
    if re.search(r"\(raised in edgeport\.", msg):  # a converter failure whose innermost frame is edgeport's own code
        return {"group": "edgeport", "reason": msg}
    if typ in _LIMIT_TYPES or (typ == "ConversionFailed" and re.search(r"crashed|timed out", msg)):
        return {"group": "limitation", "reason": msg}
    if typ == "ParityError":
        return {"group": "parity", "reason": msg}
    if typ in ("InputError", "CalibrationError", "ArtifactError"):
        return {"group": "input", "reason": msg}
    if typ == "ConversionFailed":
        # an untyped exception inside the converter worker arrives as "<Type>: message": triage it as ours
        return {"group": "edgeport", "reason": msg}
    return {"group": "edgeport", "reason": text}
