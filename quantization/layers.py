"""Layer-by-layer comparison of a quantized model against its float original: the machinery behind
``edgeport inspect`` and the accuracy-budget search (which ranks layers by the SNR they lose).

See :mod:`edgeport.edge.inspect` for what the numbers mean.
"""


from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.runtime import quantize_array, serving_signature

_CAP_DB = 100.0  # an exact tensor (SNR inf) counts as this, so drops stay finite


# ------------------------------------------------------------------------------------------------ statistics
@dataclass
class _Acc:
    """Running comparison of one tensor over samples."""

    sig: float = 0.0
    noise: float = 0.0
    cos: float = 0.0
    n: int = 0
    max_err: float = 0.0
    ch_range: Any = None  # per-channel max |x| of the float tensor

    def add(self, ref: np.ndarray, got: np.ndarray, channel_axis: int | None) -> None:
        r = np.asarray(ref, np.float64).ravel()
        g = np.asarray(got, np.float64).ravel()
        if r.shape != g.shape:
            return
        d = r - g
        self.sig += float(r @ r)
        self.noise += float(d @ d)
        den = float(np.linalg.norm(r) * np.linalg.norm(g))
        self.cos += 1.0 if den == 0 and not d.any() else (float(r @ g) / den if den else 0.0)
        self.n += 1
        self.max_err = max(self.max_err, float(np.abs(d).max(initial=0.0)))
        a = np.asarray(ref)
        if channel_axis is not None and a.ndim >= 2:
            ax = channel_axis % a.ndim
            cr = np.abs(a).max(axis=tuple(i for i in range(a.ndim) if i != ax))
            self.ch_range = cr if self.ch_range is None else np.maximum(self.ch_range, cr)

    @property
    def snr_db(self) -> float:
        if self.noise == 0:
            return float("inf")
        return float(10 * np.log10(max(self.sig, 1e-300) / self.noise))

    def ratio(self) -> float | None:
        if self.ch_range is None or len(self.ch_range) < 2:
            return None
        med = float(np.median(self.ch_range))
        return round(float(self.ch_range.max()) / med, 2) if med > 0 else None


def _row(layer: str, op: str, where: str, acc: _Acc, in_snr: float) -> dict:
    snr = acc.snr_db
    drop = max(0.0, min(in_snr, _CAP_DB) - min(snr, _CAP_DB))
    return {"layer": layer, "op": op, "tensor": where, "snr_db": None if not np.isfinite(snr) else round(snr, 2),
            "snr_drop_db": round(drop, 2), "input_snr_db": None if not np.isfinite(in_snr) else round(in_snr, 2),
            "cosine": round(acc.cos / max(acc.n, 1), 6), "max_abs_err": float(f"{acc.max_err:.4g}"),
            "channel_range_ratio": acc.ratio(), "samples": acc.n}


def _sort(rows: list[dict]) -> list[dict]:
    def key(r):
        snr = r["snr_db"] if r["snr_db"] is not None else float("inf")
        return (-r["snr_drop_db"], snr)

    return sorted(rows, key=key)


# ------------------------------------------------------------------------------------------------ PT2E (.pte)
_QUANT_OPS = ("quantize_per_tensor", "quantize_per_channel", "quantize_affine")
_DEQUANT_OPS = ("dequantize_per_tensor", "dequantize_per_channel", "dequantize_affine")
_SKIP_OPS = {"getitem", "sym_size", "_assert_tensor_metadata", "_assert_scalar", "alias", "detach", "clone",
             "contiguous", "view", "reshape", "_unsafe_view", "flatten", "unsqueeze", "squeeze", "permute",
             "transpose", "expand", "t", "slice", "select", "to", "_to_copy", "dropout"}


def _opname(n) -> str:
    t = n.target
    return getattr(t, "__name__", str(t)).split(".")[0]


def _is_qdq(n, ops) -> bool:
    return n.op == "call_function" and any(o in str(n.target) for o in ops)


def _capture(gm, batches: list[tuple], names: set[str], per_sample):
    """Run ``gm`` (an FX GraphModule) on each batch, calling per_sample(i, {node name: value}) for ``names``."""
    import torch

    class Cap(torch.fx.Interpreter):
        def run_node(self, n):
            v = super().run_node(n)
            if n.name in names and isinstance(v, torch.Tensor) and v.dtype.is_floating_point:
                self.seen[n.name] = v.detach().numpy().copy()
            return v

    with torch.no_grad():
        for i, b in enumerate(batches):
            c = Cap(gm)
            c.seen = {}
            c.run(*b)
            per_sample(i, c.seen)


def pt2e_layer_rows(float_gm, quant_gm, batches: list[tuple]) -> list[dict]:
    """Per-layer rows comparing a PT2E-converted GraphModule with the float GraphModule it came from (same export,
    so nodes share names), on ``batches`` (tuples of torch tensors, batch 1). Sorted worst first."""
    from edgeport.quantization.equalize import module_fqn

    fnodes = {n.name: n for n in float_gm.graph.nodes}
    qnodes = {n.name: n for n in quant_gm.graph.nodes}

    def is_float_val(n) -> bool:
        v = n.meta.get("val")
        return hasattr(v, "dtype") and v.dtype.is_floating_point

    # Groups: the innermost module of each compute node; the group's output is its last node (topological order).
    groups: dict[str, list] = {}
    for n in float_gm.graph.nodes:
        if n.op != "call_function" or not is_float_val(n) or n.name not in qnodes:
            continue
        fqn = module_fqn(n)
        if fqn is None or _opname(n) in _SKIP_OPS:
            continue
        groups.setdefault(fqn or "(root)", []).append(n)
    outputs, inputs_of = {}, {}
    for fqn, nodes in groups.items():
        members = {m.name for m in nodes}
        outputs[fqn] = nodes[-1]
        ins = set()
        for m in nodes:
            for a in m.all_input_nodes:
                if a.name not in members and is_float_val(a):
                    ins.add(a.name)
        inputs_of[fqn] = ins

    def q_value_node(name: str) -> str:
        """The node whose value the quantized graph's consumers see for ``name`` (its dequantize, if any)."""
        n = qnodes.get(name)
        if n is None:
            return name
        for u in n.users:
            if _is_qdq(u, _QUANT_OPS):
                for d in u.users:
                    if _is_qdq(d, _DEQUANT_OPS):
                        return d.name
        return name

    wanted = {o.name for o in outputs.values()} | set().union(*inputs_of.values()) if outputs else set()
    qmap = {w: q_value_node(w) for w in wanted}
    accs: dict[str, _Acc] = {w: _Acc() for w in wanted}
    ch_axis = {w: (1 if (v := fnodes[w].meta.get("val")) is not None and getattr(v, "ndim", 0) == 4 else -1)
               for w in wanted if w in fnodes}
    for b in batches:  # one sample at a time through both graphs: memory stays one sample's tensors
        ref: dict = {}
        _capture(float_gm, [b], wanted, lambda i, seen: ref.update(seen))

        def per_q(i, seen):
            for w in wanted:
                r, g = ref.get(w), seen.get(qmap[w], seen.get(w))
                if r is not None and g is not None:
                    accs[w].add(r, g, ch_axis.get(w, -1))

        _capture(quant_gm, [b], wanted | set(qmap.values()), per_q)
    rows = []
    for fqn, out in outputs.items():
        acc = accs[out.name]
        if acc.n == 0:
            continue
        in_snrs = [accs[i].snr_db for i in inputs_of[fqn] if accs[i].n]
        in_snr = min(in_snrs) if in_snrs else float("inf")
        rows.append(_row(fqn, _opname(out), out.name, acc, in_snr))
    return _sort(rows)


# ------------------------------------------------------------------------------------------------ TFLite
def _tensor_value(it, d: dict) -> np.ndarray | None:
    try:
        v = it.get_tensor(d["index"])
    except ValueError:
        return None
    if v is None:
        return None
    qp = d.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", []), np.float64)
    if v.dtype.kind in "iu" and scales.size:
        zps = np.asarray(qp.get("zero_points", []), np.float64)
        if scales.size == 1:
            return (v.astype(np.float64) - zps.reshape(-1)[0]) * scales[0]
        ax = int(qp.get("quantized_dimension", 0))
        shape = [1] * v.ndim
        shape[ax] = -1
        return (v.astype(np.float64) - zps.reshape(shape)) * scales.reshape(shape)
    if v.dtype.kind != "f":
        return None
    return v.astype(np.float64)


class TFLRun:
    """A .tflite with every tensor preserved; ``feed(sample)`` invokes and returns {tensor name: float value}."""

    def __init__(self, data: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_content=bytes(data), experimental_preserve_all_tensors=True, num_threads=1)
        self.it.allocate_tensors()
        self.key, self.runner = serving_signature(self.it)
        self.inputs = self.runner.get_input_details()
        self.details = {d["name"]: d for d in self.it.get_tensor_details()}
        self.ops = [op for op in self.it._get_ops_details() if op["op_name"] != "DELEGATE"]
        self.by_index = {d["index"]: d for d in self.details.values()}

    def feed(self, sample: dict[str, np.ndarray], names: set[str]) -> dict[str, np.ndarray]:
        args = {}
        for k, d in self.inputs.items():
            args[k] = quantize_array(sample[k], d["dtype"], *d.get("quantization", (0.0, 0)))
        self.runner(**args)
        out = {}
        for n in names:
            d = self.details.get(n)
            if d is not None:
                v = _tensor_value(self.it, d)
                if v is not None:
                    out[n] = v
        return out

    def op_scope(self, op: dict) -> str:
        names = [self.by_index[i]["name"] for i in op["outputs"] if i >= 0 and i in self.by_index]
        return ";".join(names) + (";" if names else "")


class LayerNamer:
    """Maps .tflite tensor names back to source layer names: Keras layer names (path segments), or torch module
    fqns (litert-torch writes ``<module>.<Class>_<attr>`` segments separated by '/')."""

    def __init__(self, source=None):
        self.keras: set[str] = set()
        self.torch_classes: list[str] = []
        self.torch_compute: set[str] = set()
        if source is None:
            return
        model = getattr(source, "model", source)
        if getattr(source, "framework", None) == "keras" or hasattr(model, "layers") and not hasattr(model, "named_modules"):
            for layer in getattr(model, "layers", []) or []:
                self.keras.add(layer.name)
                for sub in getattr(layer, "_flatten_layers", lambda **k: [])(include_self=False, recursive=True):
                    self.keras.add(sub.name)
        else:
            mod = source.torch_module() if hasattr(source, "torch_module") else model
            if hasattr(mod, "named_modules"):
                import torch

                classes = set()
                for fqn, m in mod.named_modules():
                    classes.add(type(m).__module__ + "." + type(m).__qualname__)
                    if fqn and isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding,
                                              torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
                        self.torch_compute.add(fqn)
                self.torch_classes = sorted(classes, key=len, reverse=True)

    def _torch_fqn(self, part: str) -> str | None:
        segs = part.split("/")
        if len(segs) < 2:
            return None
        attrs = []
        for s in segs[1:]:
            for c in self.torch_classes:
                if s.startswith(c + "_"):
                    attrs.append(s[len(c) + 1:])
                    break
            else:
                m = re.match(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z][A-Za-z0-9]*_(.+)$", s)
                if not m:
                    return None
                attrs.append(m.group(1))
        return ".".join(attrs) or None

    def name(self, tensor: str) -> str | None:
        parts = [p for p in tensor.split(";") if p]
        if self.keras:
            for p in parts:
                for seg in reversed(p.split("/")):
                    if seg in self.keras:
                        return seg
                    base = re.sub(r"_\d+$", "", seg)  # Model.export scopes the traced copy: conv2d -> conv2d_1
                    if base in self.keras:
                        return base
            return None
        fqns = [f for f in (self._torch_fqn(p) for p in parts) if f]
        if not fqns:
            return None
        for f in fqns:  # prefer the compute module (conv of a fused conv+relu)
            if f in self.torch_compute:
                return f
        return fqns[0]


def tflite_layer_rows(float_tflite: bytes, quant_tflite: bytes, samples: list[dict[str, np.ndarray]],
                      namer: LayerNamer | None = None, ops_of: dict[str, list[str]] | None = None) -> list[dict]:
    """Per-layer rows for a quantized .tflite against the float .tflite it was made from (or made alike), on
    ``samples`` ({signature input key: (1, ...) array} each). Every op of the float model whose output tensor is
    also in the quantized model is a candidate; rows are per source layer (its last op), worst first. ``ops_of``,
    when given, is filled with {layer: the scope of every float op of that layer} (ai-edge-quantizer's op scope: its
    output tensor names, each followed by ';'), to exclude a whole layer from quantization."""
    f, q = TFLRun(float_tflite), TFLRun(quant_tflite)
    namer = namer or LayerNamer()
    common = {n for n in f.details if n in q.details and tuple(f.details[n]["shape"]) == tuple(q.details[n]["shape"])}
    layer_of: dict[str, tuple[str, str]] = {}  # tensor -> (layer, op)
    order: list[str] = []
    producer: dict[int, dict] = {}
    for op in f.ops:
        for t in op["outputs"]:
            producer[t] = op
    graph_inputs = {d["index"] for d in f.inputs.values()}
    for op in f.ops:
        outs = [f.by_index[i]["name"] for i in op["outputs"] if i in f.by_index]
        # constant inputs (weights, biases) carry the layer's name when the output tensor was renamed (the model's
        # output) or fused away
        consts = [f.by_index[i]["name"] for i in op["inputs"] if i >= 0 and i in f.by_index and i not in producer
                  and i not in graph_inputs]
        for j, t in enumerate(outs):
            layer = namer.name(t) or next((x for x in map(namer.name, consts) if x), None) \
                or f"({op['op_name'].lower()})"
            if ops_of is not None and j == 0:
                ops_of.setdefault(layer, []).append(f.op_scope(op))
            if t in common:
                layer_of[t] = (layer, op["op_name"])
                order.append(t)
    last: dict[str, str] = {}
    for t in order:
        last[layer_of[t][0]] = t  # the layer's output: its last op in execution order
    # inputs of a layer: tensors (graph inputs or other layers' outputs) feeding its ops
    layer_inputs: dict[str, set[str]] = {}
    for op in f.ops:
        outs = [f.by_index[i]["name"] for i in op["outputs"] if i in f.by_index]
        lay = next((layer_of[t][0] for t in outs if t in layer_of), None)
        if lay is None:
            continue
        for i in op["inputs"]:
            if i < 0 or i not in f.by_index:
                continue
            n = f.by_index[i]["name"]
            if n in common and (i not in producer or layer_of.get(n, (lay,))[0] != lay):
                if i in producer or n in {d["name"] for d in f.inputs.values()}:
                    layer_inputs.setdefault(lay, set()).add(n)
    wanted = set(last.values()) | set().union(*layer_inputs.values()) if last else set()
    accs = {w: _Acc() for w in wanted}
    for s in samples:
        rf = f.feed(s, wanted)
        rq = q.feed(s, wanted)
        for w in wanted:
            if w in rf and w in rq:
                accs[w].add(rf[w], rq[w], -1)
    rows = []
    for lay, t in last.items():
        acc = accs[t]
        if acc.n == 0:
            continue
        ins = [accs[i].snr_db for i in layer_inputs.get(lay, ()) if i in accs and accs[i].n]
        rows.append(_row(lay, layer_of[t][1], t, acc, min(ins) if ins else float("inf")))
    return _sort(rows)


# ------------------------------------------------------------------------------------------------ the command
