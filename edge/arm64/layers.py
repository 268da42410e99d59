"""``edgeport inspect ARTIFACT --runtime arm64``: where the aarch64 runtime's answer leaves the host's, tensor by tensor.

The same capture runs on both sides with the same code (guest.py's run_onnx / run_tflite, imported on the host too):
.tflite with ``experimental_preserve_all_tensors`` (every op output, int8 ones dequantized with their own scale),
.onnx with every node output added as a graph output (an instrumented copy both runtimes load). Tensors are matched
by name and listed in execution order; the first whose ARM and x86 values differ by more than 1e-4 of the tensor's
scale is the first diverging layer. A .pte runs on arm64 (ExecuTorch's C++ runtime) but is not captured tensor by
tensor there: the refusal names the sibling formats that are.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeport.errors import InputError

from . import guest
from .runner import GUEST_RUNTIME, guest_run

REL_TOL = 1e-4


def _instrumented_onnx(src: Path, dst: Path) -> None:
    """A copy of the model whose outputs are every node output in node order, so both sides return them all."""
    import onnx

    model = onnx.load(str(src))
    typed = {o.name: o for o in model.graph.output}
    try:
        typed = {**{v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}, **typed}
    except Exception:  # a model shape inference cannot walk (contrib ops): untyped outputs still run on ORT
        pass
    outs, seen = [], set()
    for node in model.graph.node:
        for name in node.output:
            if name and name not in seen:
                outs.append(typed.get(name) or onnx.ValueInfoProto(name=name))
                seen.add(name)
    del model.graph.output[:]
    model.graph.output.extend(outs)
    onnx.save(model, str(dst))


def compare_layers(m, feeds: dict[str, np.ndarray], cpu: str) -> list[dict]:
    """Rows in execution order: tensor, ARM vs host max|d|, SNR, cosine, and ``diverges`` (beyond 1e-4 of scale)."""
    from edgeport.runtime import quantize_input

    if m.target not in ("onnx", "tflite"):
        raise InputError(f"{m.name}: inspect --runtime arm64 compares .onnx and .tflite artifacts tensor by tensor, not"
                         f" .{m.target} (its outputs on arm64: edgeport evaluate --runtime arm64)")
    prepared = {s.binding: np.ascontiguousarray(quantize_input(s, feeds[s.name])) for s in m.sig.inputs}
    outputs = [s.binding for s in m.sig.outputs]
    with tempfile.TemporaryDirectory(prefix="edgeport-arm64-layers-") as tmp:
        model, extra = None, {}
        if m.target == "onnx":
            # Exposing an intermediate stops ONNX Runtime fusing the nodes around it (where ARM and x86 kernels
            # differ most), so the graph compared is the one the guest's optimizer made for this CPU, its fused
            # nodes exposed and run as they are on both sides.
            optimized = Path(tmp) / "optimized.onnx"
            guest_run(m, cpu, prepared, outputs, mode="optimize", extra={"save_optimized": "/work/job/optimized.onnx"},
                      collect={"optimized.onnx": optimized})
            model = Path(tmp) / f"instrumented-{m.entry_path.name}"
            _instrumented_onnx(optimized, model)
            extra = {"no_optimize": True}
            import onnx

            ops = {o: (f"{n.domain}:" if n.domain else "") + n.op_type for n in onnx.load(str(model)).graph.node
                   for o in n.output}
        else:
            ops = {}
        arm, meta = guest_run(m, cpu, prepared, outputs, mode="tensors", model=model, extra=extra)
        job = {"model": str(model or m.entry_path), "inputs": list(prepared), "outputs": outputs, **extra}
        run = guest.run_onnx if m.target == "onnx" else guest.run_tflite
        _, host_lists = run(job, prepared, True)
    host = {}
    for k, v in host_lists.items():
        try:
            host[k] = np.concatenate(v)
        except ValueError:
            continue
    rows = []
    for name in meta["names"]:  # the guest's execution order
        a, h = arm.get(name), host.get(name)
        if h is None or a is None or a.shape != h.shape or a.dtype.kind not in "fiu":
            continue
        a64, h64 = a.astype(np.float64), h.astype(np.float64)
        d = np.abs(a64 - h64)
        scale = float(np.abs(h64).max()) or 1.0
        err, sig = float((d**2).sum()), float((h64**2).sum())
        na, nh = np.linalg.norm(a64), np.linalg.norm(h64)
        rows.append({"artifact": m.name, "runtime": f"{GUEST_RUNTIME[m.target]} {meta['runtime_version']} (aarch64)",
                     "cpu": cpu, "tensor": name, "op": ops.get(name, ""), "shape": list(h.shape[1:]), "max_abs_diff": float(d.max()), "scale": scale,
                     "snr_db": None if err == 0 else (10 * np.log10(sig / err) if sig > 0 else -np.inf),
                     "cosine": float(a64.ravel() @ h64.ravel() / (na * nh)) if na and nh else float(na == nh),
                     "diverges": bool(d.max() > REL_TOL * scale)})
    if not rows:
        raise InputError(f"{m.name}: no tensor could be matched between the aarch64 and the host runtime")
    return rows


def format_rows(rows: list[dict], limit: int | None = None) -> str:
    head = ["#", "tensor (execution order)", "op", "max|ARM-x86|", "rel", "SNR dB", "cosine", ""]
    first = next((i for i, r in enumerate(rows) if r["diverges"]), None)
    show = rows if limit is None else rows[: max(limit, (first or 0) + 1)]
    body = [[str(i + 1), r["tensor"][-60:], r["op"] or "-", f"{r['max_abs_diff']:.3g}", f"{r['max_abs_diff'] / r['scale']:.1e}",
             "inf" if r["snr_db"] is None else f"{r['snr_db']:.1f}", f"{r['cosine']:.6f}",
             "<- first divergence" if i == first else ("diverges" if r["diverges"] else "")] for i, r in enumerate(show)]
    widths = [max(len(h), *(len(b[j]) for b in body)) for j, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) if j in (1, 2, 7) else c.rjust(w) for j, (c, w) in enumerate(zip(b, widths))).rstrip()
             for b in [head, ["-" * w for w in widths], *body]]
    art, name, cpu = rows[0]["artifact"], rows[0]["runtime"], rows[0]["cpu"]
    if first is None:
        lines.append(f"{art}: {name} on emulated {cpu} matches the host's on every one of {len(rows)} tensors"
                     f" (within {REL_TOL:g} of each tensor's scale)")
    else:
        r = rows[first]
        lines.append(f"{art}: {name} on emulated {cpu} first leaves the host's at tensor {first + 1} of"
                     f" {len(rows)}, {r['tensor']!r}{' (' + r['op'] + ')' if r['op'] else ''}: max|d| {r['max_abs_diff']:.3g} ({r['max_abs_diff'] / r['scale']:.1e}"
                     f" of its scale), cosine {r['cosine']:.5f}")
    return "\n".join(lines)
