"""`edgeport inspect`: where a quantized artifact departs from its float source, layer by layer, on real inputs.

One row per layer of the source model, named by the source's own layer / module names (``conv1``, ``dense_1``,
``encoder.layer.3.attention.self.query``), with the SNR (dB), cosine and max abs error of that layer's output in
the quantized model against the float one, and ``snr_drop_db``: how much SNR the layer loses relative to its inputs
(the error this layer adds; accumulated error from earlier layers does not count against it). Rows are sorted worst
first by ``snr_drop_db``, then by SNR. ``channel_range_ratio`` is the float output's largest channel range over the
median one: a layer with a large ratio produces an outlier channel that a per-tensor int8 scale cannot hold (the
*next* layer is the one that shows the loss).

Each target plugin supplies its own capture (``register_target(..., inspect=layer_rows)``):

- ``.tflite``: the quantized interpreter and the float .tflite (the fp32 artifact beside it, else the source
  converted again with the same converter) both run with ``experimental_preserve_all_tensors=True``; tensors are
  matched by name and int8 tensors dequantized with their own scale / zero point. Tensor names map back to source
  layers: Keras layer names are path segments; litert-torch names carry the module path
  (``pkg.Net/torch.nn.modules.conv.Conv2d_conv1``).
- ``.pte``: the PT2E fake-quantized GraphModule (prepare -> calibrate -> convert, exactly as the converter made it,
  equalization and float layers included) against the float exported module, node by node (an FX interpreter),
  grouped by ``nn_module_stack``. ExecuTorch's devtools Inspector needs an ETRecord and an ETDump from a
  profiling build of the runtime; the fake-quant graph gives the same per-layer numbers from Python alone.
"""

from __future__ import annotations

import json
from pathlib import Path



def inspect(manifest_path: str | Path, data_spec: str | None = None, *, max_samples: int = 32,
            runtime: str | None = None, options: dict | None = None) -> list[dict]:
    """Layer-by-layer divergence of a quantized artifact (.tflite or .pte) from its float source on real inputs
    (``data_spec``: a named set, whose held-out split is used, or an .npz; default: the manifest's own set).
    Returns rows sorted worst first (see the module docstring). ``runtime``: instead, the runtime's tensors against
    its host runtime's on the same artifact, in execution order (a Runner with ``compare_layers``: arm64)."""
    from edgeport import data as dat
    from edgeport.errors import InputError
    from edgeport.manifest import Manifest
    from edgeport.registry import get_runtime, get_target, runtimes, targets

    m = Manifest.read(manifest_path)
    vs_host = None
    if runtime is not None:
        vs_host = getattr(get_runtime(runtime).runner, "compare_layers", None)
        if vs_host is None:
            able = [n for n, r in runtimes().items() if getattr(r.runner, "compare_layers", None)]
            raise InputError(f"inspect --runtime {runtime}: that runtime cannot compare its tensors with the host's;"
                             f" --runtime takes {', '.join(able) or 'none here'}")
    capture = get_target(m.target).inspect  # the target plugin's per-layer capture; checked before any framework loads
    if capture is None and vs_host is None:
        able = [n for n, t in targets().items() if t.inspect]
        raise InputError(f"{m.name}: inspect supports {', '.join(able)} artifacts, not {m.target}")
    spec = data_spec or m.source.get("default_data")
    sig = m.sig
    plain = type(sig)(tuple(s.with_(binding=None, quantization=None, dtype="float32" if s.quantization else s.dtype) for s in sig.inputs),
                      tuple(s.with_(binding=None, quantization=None, dtype="float32" if s.quantization else s.dtype) for s in sig.outputs))
    if spec:
        ds = dat.load_dataset(spec, "heldout")
        feeds = dat.model_inputs(ds, plain, m.preprocessing, root=m.folder, what="inspect data")
    else:  # no --data and no default set: the probe rows written at conversion
        probe = m.probe_arrays()
        if not probe or not probe[0]:
            raise InputError(f"{m.name}: no data to inspect with; pass --data data.npz with one array per input"
                             f" ({m.sig.describe_inputs()})")
        feeds = probe[0]
    n = min(max_samples, len(next(iter(feeds.values()))))
    feeds = {k: v[:n] for k, v in feeds.items()}
    if vs_host is not None:
        return vs_host(m, feeds, options or {})
    return capture(m, _load_source(m), feeds)


def _load_source(m):
    from edgeport.errors import InputError
    from edgeport.sources import load_source

    model = m.source.get("model")
    if str(model).startswith("python:"):
        raise InputError(f"{m.name}: converted from an in-memory model; call inspect_source() from Python instead")
    inputs = [s.with_(binding=None, quantization=None, dtype="float32" if s.quantization else s.dtype) for s in m.sig.inputs]
    src = load_source(model, weights=m.source.get("weights"), inputs=inputs)
    src.signature = type(src.signature)(tuple(inputs), tuple(s.with_(binding=None, quantization=None, dtype="float32" if s.quantization else s.dtype) for s in m.sig.outputs))
    return src


def format_table(rows: list[dict], limit: int | None = None) -> str:
    """The rows as a table a person reads, worst first."""
    rows = rows[:limit] if limit else rows
    head = ["#", "layer", "op", "SNR dB", "drop dB", "cosine", "max|err|", "ch ratio"]
    body = []
    for i, r in enumerate(rows, 1):
        body.append([str(i), r["layer"], r["op"], "inf" if r["snr_db"] is None else f"{r['snr_db']:.1f}",
                     f"{r['snr_drop_db']:.1f}", f"{r['cosine']:.4f}", f"{r['max_abs_err']:.3g}",
                     "-" if r.get("channel_range_ratio") is None else f"{r['channel_range_ratio']:.1f}"])
    widths = [max(len(h), *(len(b[j]) for b in body)) if body else len(h) for j, h in enumerate(head)]
    widths[1] = min(widths[1], 60)

    def fmt(cells):
        out = []
        for j, (c, w) in enumerate(zip(cells, widths)):
            c = c if len(c) <= w else "..." + c[-(w - 3):]
            out.append(c.ljust(w) if j in (1, 2) else c.rjust(w))
        return "  ".join(out)

    lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]
    lines.append("drop dB: SNR lost in this layer (its inputs' SNR minus its output's); ch ratio: largest channel"
                 " range / median of the float output (an outlier channel starves a per-tensor int8 scale)")
    return "\n".join(lines)


def _manifest_path(artifact: str) -> Path:
    p = Path(artifact)
    if p.name.endswith(".manifest.json"):
        return p
    cand = p.with_name(p.name + ".manifest.json")
    return cand if cand.is_file() else p


def cmd_inspect(args) -> int:
    if getattr(args, "runtime", None):
        from edgeport.registry import get_runtime

        rt = get_runtime(args.runtime)
        opts = {}
        for f in rt.flags:  # the runtime's own flags (--arm-cpu), as evaluate takes them
            v = getattr(args, "rt_" + f.flag.lstrip("-").replace("-", "_"), None)
            if v is not None:
                opts[f.key] = f.parse(v) if f.parse else v
        rows = inspect(_manifest_path(args.artifact), args.data, max_samples=args.max_samples, runtime=rt.name,
                       options=opts)
        print(json.dumps(rows, indent=1) if args.json else rt.runner.format_layers(rows, args.top))
        return 0
    rows = inspect(_manifest_path(args.artifact), args.data, max_samples=args.max_samples)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_table(rows, args.top))
    return 0
