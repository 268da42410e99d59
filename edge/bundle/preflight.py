"""Pre-flight checks for the phone, per artifact, from the file itself: what a GPU delegate would reject, the int8 I/O
scale and zero point an app must apply, and the runtime it needs.

- ``.tflite``: LiteRT's own model analyzer (``ai_edge_litert._pywrap_analyzer_wrapper.ModelAnalyzer``, the module
  behind ``tf.lite.experimental.Analyzer.analyze``) with GPU compatibility on; its report is parsed for the ops the
  GPU delegate would leave on the CPU. The converter's ``min_runtime_version`` is read from the model's metadata.
- ``.pte``: the program's operator table (``executorch.exir._serialize``): every operator outside a delegate needs
  its kernel linked into the app's runtime (a missing one is ExecuTorch's ``Load failed: 20``, NotFound), and the
  delegates it needs (XnnpackBackend is in the stock Android AAR).
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeport.manifest import Manifest


def _analyzer_report(path: Path) -> tuple[str, str]:
    try:
        from ai_edge_litert import _pywrap_analyzer_wrapper as wrapper

        return wrapper.ModelAnalyzer(str(path), True, True), "ai_edge_litert model analyzer (gpu_compatibility=True)"
    except ImportError:  # an ai-edge-litert without the analyzer: TensorFlow's copy of the same tool
        import contextlib
        import io

        import tensorflow as tf

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            tf.lite.experimental.Analyzer.analyze(model_path=str(path), gpu_compatibility=True)
        return buf.getvalue(), "tf.lite.experimental.Analyzer (gpu_compatibility=True)"


def gpu_compatibility(path: Path) -> dict:
    """{compatible, rejected: [op names], tool, runtime} from the analyzer's report."""
    text, tool = _analyzer_report(path)
    ops = {}
    for line in text.splitlines():
        m = re.match(r"\s*Op#(\d+)\s+(\w+)\(", line)
        if m:
            ops[int(m.group(1))] = m.group(2)
    rejected = []
    for m in re.finditer(r"GPU COMPATIBILITY WARNING: [^\n]*?nodes? ([\d, ]+)", text):
        rejected += [ops.get(int(n), f"op#{n}") for n in re.findall(r"\d+", m.group(1))]
    for m in re.finditer(r"Op#\d+\s+(\w+)\([^\n]*\n\s*GPU COMPATIBILITY WARNING", text):
        rejected.append(m.group(1))
    reasons = sorted(set(re.findall(r"GPU COMPATIBILITY WARNING: ([^\n]+)", text)))
    ok = "looks compatible with GPU delegate" in text
    rt = re.search(r"on TFLite runtime version ([^\s]+?)\.?\s", text)
    return {"compatible": ok and not rejected, "rejected_ops": sorted(set(rejected)), "reasons": reasons[:6],
            "tool": tool, "analyzer_runtime": rt.group(1) if rt else None}


def tflite_min_runtime(model: bytes) -> str | None:
    """The converter's ``min_runtime_version`` entry of the model's metadata (the oldest TFLite runtime whose op
    versions cover this model)."""
    from mediapipe.tasks.metadata import schema_py_generated as sfb

    m = sfb.Model.GetRootAsModel(bytearray(model), 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() and md.Name().decode() == "min_runtime_version":
            data = m.Buffers(md.Buffer()).DataAsNumpy()
            return bytes(data).rstrip(b"\0").decode(errors="replace") or None
    return None


def pte_program(path: Path) -> dict:
    """The operators a .pte needs outside its delegates, and the delegates it needs."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(path.read_bytes())
    prog = getattr(pte, "program", pte)
    plan = prog.execution_plan[0]
    return {"operators": sorted({f"{o.name}.{o.overload}" if o.overload else o.name for o in plan.operators}),
            "delegates": sorted({d.id for d in plan.delegates})}


def int8_io(m: Manifest) -> list[dict]:
    """Every integer-quantized input/output with its scale and zero point (what the app applies)."""
    out = []
    for kind in ("inputs", "outputs"):
        for t in m.signature[kind]:
            q = t.get("quantization")
            if q:
                out.append({"tensor": t["name"], "io": kind[:-1], "dtype": t["dtype"], "scale": q.get("scale"),
                            "zero_point": q.get("zero_point")})
    return out


def preflight(m: Manifest, bundled: Path) -> dict:
    """Every check of one bundled artifact."""
    res: dict = {"artifact": m.name, "int8_io": int8_io(m)}
    if m.target == "tflite":
        res["gpu"] = gpu_compatibility(bundled)
        res["min_runtime_version"] = tflite_min_runtime(bundled.read_bytes())
        res["runtime"] = {"python": f"ai-edge-litert {m.tools.get('ai-edge-litert', '?')}"}
    elif m.target == "pte":
        res["program"] = pte_program(bundled)
        res["runtime"] = {"python": f"executorch {m.tools.get('executorch', '?')}"}
    res["delegation"] = m.delegation
    return res
