"""The ONNX recipes, applied to a source's float ONNX model (exported once per source by from_torch / from_keras):

- fp32: the exported model as is;
- fp16: onnxconverter-common's float16 conversion with ``keep_io_types=True`` (float32 inputs and outputs);
- dynamic-int8: ``onnxruntime.quantization.quantize_dynamic``, int8 weights, activations quantized at run time;
- int8: ``quantize_static``, QDQ format, per-channel int8 weights and int8 activations calibrated on the job's
  calibration rows. MinMax and Percentile (99.999, 2048 bins) calibration are both tried on the first three quarters
  of the rows and the one whose outputs agree better with the float model on the last quarter (held apart, never
  calibrated on) is kept. (Entropy is not a candidate: quantize_static gives its calibrator 128 histogram bins for
  128 quantized bins, which makes its threshold the min/max range, the same model as MinMax.)

Both int8 recipes pre-process the float model with ``quant_pre_process`` (optimization + shape inference) first, as
onnxruntime recommends. Only float tensors are quantized, so integer inputs (token ids, masks) stay integers.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgeport.console import log as _log
from edgeport.metrics import compare, failing_flags
from edgeport.signature import Signature, dtype_name
from edgeport.tasks import get_task

from ..common import Job, Produced, bind_keys, run_converter

RECIPES = ("fp32", "fp16", "dynamic-int8", "int8")
OPSET = 17  # tf2onnx's output opset (its newest is 18); the torch exporter writes its own default (recorded)
CALIBRATION_METHODS = ("MinMax", "Percentile")  # tried in this order; a tie keeps the first


def float_model_dir(job: Job) -> Path:
    """A temporary folder for the source's float model, removed with the pipeline's cache."""
    d = Path(tempfile.mkdtemp(prefix="edgeport-onnx-"))
    job.cache.setdefault("cleanup", []).append(d)
    return d


def opset_of(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in m.opset_import if o.domain in ("", "ai.onnx"))


def onnx_signature(path: Path, job: Job) -> Signature:
    """The source signature bound to the graph's input/output names (by name when they match, else by position),
    with the artifact's own I/O dtypes."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    g = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    ins = {v.name: v for v in g.input if v.name not in inits}
    outs = {v.name: v for v in g.output}

    def bind(specs, vals):
        keys = bind_keys([s.name for s in specs], list(vals))
        return tuple(s.with_(binding=k, dtype=dtype_name(tensor_dtype_to_np_dtype(vals[k].type.tensor_type.elem_type)))
                     for s, k in zip(specs, keys))

    return Signature(bind(job.sig.inputs, ins), bind(job.sig.outputs, outs))


def make_recipe(job: Job, float_path: Path, tool: str) -> Produced:
    out = job.workdir / f"{job.name}.onnx"
    opset = opset_of(float_path)
    notes = [f"ONNX opset {opset}"]
    quant = None
    if job.recipe == "fp32":
        shutil.copyfile(float_path, out)
    elif job.recipe == "fp16":
        run_converter(lambda: _fp16(float_path, out), "onnxconverter-common float16", job)
        notes.append("float16 weights and compute; inputs and outputs stay float32 (keep_io_types)")
        quant = {"tool": "onnxconverter_common.float16.convert_float_to_float16", "keep_io_types": True}
    else:
        tmp = job.workdir / ".onnx-quant"
        tmp.mkdir()
        try:
            quant = _quantized(job, float_path, out, tmp, notes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    import onnx

    run_converter(lambda: onnx.checker.check_model(str(out), full_check=True), "onnx.checker", job)
    if quant is not None:
        quant["opset"] = opset
    return Produced(entry=out.name, files=[out.name], signature=onnx_signature(out, job), notes=notes, quantization=quant)


def _quantized(job: Job, float_path: Path, out: Path, tmp: Path, notes: list[str]) -> dict:
    """dynamic-int8 or int8 (with its accuracy budget) into ``out``; ``tmp`` is scratch, removed by the caller."""
    if job.recipe == "dynamic-int8":
        # On the exported graph as is: quant_pre_process fuses Linear layers into Gemm, which quantize_dynamic
        # leaves float, and its fusions cost accuracy here (MiniLM: 0.9936 after pre-processing, 0.996 without).
        quant = run_converter(lambda: _dynamic(float_path, out), "onnxruntime.quantization.quantize_dynamic", job)
    else:
        pre = _preprocess(float_path, tmp / "pre.onnx", job, notes)
        quant = run_converter(lambda: _static(job, pre, out, tmp), "onnxruntime.quantization.quantize_static", job)
        quant["pre_process"] = "onnxruntime.quantization.shape_inference.quant_pre_process"
        if job.budget is not None:  # --max-drop / --min-cosine / --min-snr: the fewest nodes kept float
            quant.update(_hold_budget(job, pre, out, tmp, quant["calibrate_method"]))
    return quant


# ----------------------------------------------------------------------------------------------------- recipes
def _fp16(src: Path, out: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    model = _fp16_ready(onnx.load(str(src)))
    # check_fp16_ready=False: the float16 Casts written above would read as "already float16" (it is our float
    # export, never converted before).
    onnx.save(float16.convert_float_to_float16(model, keep_io_types=True, check_fp16_ready=False), str(out))


def _fp16_ready(model):
    """Work around two things convert_float_to_float16 (onnxconverter-common 1.16) gets wrong, both caught by
    onnx.checker on the torch exporter's graphs:

    - a Cast to float32 inside the graph (``mask.to(torch.float32)``) keeps ``to=FLOAT`` while its output's type is
      rewritten to float16: make those Casts cast to float16, as every other float tensor now is;
    - a graph output that other nodes also read is cast back to float32 in place, so its float16 consumers read the
      float32 tensor: give such an output its own Identity node, the consumers read the inner tensor.
    """
    import onnx

    g = model.graph
    for n in g.node:
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                    a.i = onnx.TensorProto.FLOAT16
    read = {i for n in g.node for i in n.input}
    for o in g.output:
        if o.name not in read:
            continue
        inner = f"{o.name}/value"
        for n in g.node:
            for field in (n.input, n.output):
                for i, t in enumerate(field):
                    if t == o.name:
                        field[i] = inner
        g.node.append(onnx.helper.make_node("Identity", [inner], [o.name], name=f"{o.name}/output"))
    return model


def _preprocess(src: Path, dst: Path, job: Job, notes: list[str]) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst))
    except Exception as e:  # symbolic shape inference does not know every op; ONNX shape inference still runs
        notes.append(f"quant_pre_process: symbolic shape inference skipped ({type(e).__name__})")
        run_converter(lambda: quant_pre_process(str(src), str(dst), skip_symbolic_shape=True), "quant_pre_process", job)
    return dst


def _dynamic(pre: Path, out: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Every op type quantize_dynamic knows (Conv, MatMul, Gemm, Gather, Attention, LSTM ...), its default, with
    # per-channel weights (all-MiniLM-L6-v2: per-tensor 0.964 cosine against float, per-channel 0.993). A MatMul fed
    # by a GELU stays float: GELU outputs are heavy-tailed, and one uint8 range per tensor, computed at run time,
    # cannot hold them (MiniLM: 0.993 -> 0.996, the 6 FFN down-projections kept float).
    keep = _after_gelu(pre)
    quantize_dynamic(str(pre), str(out), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=keep)
    return {"tool": "onnxruntime.quantization.quantize_dynamic", "weights": "int8 (per channel)",
            "kept_float": {"nodes": keep, "why": "MatMul fed by a GELU (heavy-tailed activations)"},
            "activations": "float32, quantized to uint8 per inference (DynamicQuantizeLinear)",
            "ops_quantized": _count_ops(out, ("ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention",
                                              "DynamicQuantizeLSTM", "DequantizeLinear"))}


def _after_gelu(path: Path) -> list[str]:
    """MatMul / Gemm nodes whose activation input comes from a GELU (a Gelu op, or the erf form
    x*0.5*(1+erf(x/sqrt2))), looking through reshapes and within three producers."""
    import onnx

    g = onnx.load(str(path)).graph
    producer = {o: n for n in g.node for o in n.output}

    def from_gelu(value: str, depth: int = 3) -> bool:
        n = producer.get(value)
        if n is None or depth == 0:
            return False
        if n.op_type in ("Gelu", "Erf", "FastGelu", "BiasGelu"):
            return True
        if n.op_type in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"):
            return from_gelu(n.input[0], depth)
        return n.op_type in ("Mul", "Add", "Div") and any(from_gelu(i, depth - 1) for i in n.input)

    return [n.name for n in g.node if n.op_type in ("MatMul", "Gemm") and n.input and from_gelu(n.input[0])]


def _reader(rows: list[dict]):
    """A CalibrationDataReader over a list of {graph input name: (1, ...) array} rows."""
    from onnxruntime.quantization import CalibrationDataReader

    class Rows(CalibrationDataReader):
        def __init__(self):
            self._it = iter(rows)

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(rows)

    return Rows()


def _split_rows(job: Job, sig: Signature) -> tuple[list[dict], list[dict]]:
    """(calibration rows, rows held apart to choose the calibration method), as graph-input feeds."""
    rows = [{s.binding: np.ascontiguousarray(r[s.name]) for s in sig.inputs} for r in job.calib_rows()]
    n = len(rows)
    k = max(1, n // 4) if n >= 8 else 0
    return rows[: n - k], rows[n - k :]


def _quantize(pre: Path, out: Path, rows: list[dict], method: str, exclude: list[str] = ()) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
        quantize_static(str(pre), str(out), _reader(rows), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(exclude))


def _static(job: Job, pre: Path, out: Path, tmp: Path) -> dict:
    sig = onnx_signature(pre, job)
    calib_rows, select_rows = _split_rows(job, sig)
    k = len(select_rows)  # held apart to choose the calibration method
    if k:
        select = {s.name: np.concatenate([r[s.binding] for r in select_rows]) for s in sig.inputs}
        selection = {"rows": k, "from": "the last quarter of the calibration rows, kept out of calibration"}
    else:
        select = job.example
        selection = {"rows": 1, "from": "the tracing example (fewer than 8 calibration rows)"}
    ref = job.source.float_outputs(select)
    primary = sig.outputs[0]

    scores, paths = {}, {}
    for method in CALIBRATION_METHODS:
        p = tmp / f"{method}.onnx"
        _quantize(pre, p, calib_rows, method)
        got = _run(p, sig, select)
        c = compare(ref[primary.name], got[primary.name], primary.name)
        scores[method] = {k2: c[k2] for k2 in ("top1_agreement", "cosine_mean", "max_abs_diff", "snr_db", "norm_ratio",
                                               "flags") if k2 in c}
        paths[method] = p
    # A method whose outputs are flagged (all zero, NaN, off-scale) loses to any other; then classification: top-1
    # agreement first, then cosine; other tasks: cosine. A tie keeps the first method.
    first = "top1_agreement" if get_task(job.source.task).labels else "cosine_mean"
    chosen = max(CALIBRATION_METHODS, key=lambda m: (not failing_flags(scores[m]["flags"]), scores[m].get(first, 0.0),
                                                      scores[m]["cosine_mean"], -CALIBRATION_METHODS.index(m)))
    shutil.move(str(paths[chosen]), str(out))
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "weights": "int8 per channel (symmetric)",
            "activations": "int8 (static)", "calibrate_method": chosen, "calibration_rows": len(calib_rows),
            "candidates": scores, "selection": {**selection, "output": primary.name,
                                                "by": f"{first}, then cosine_mean, against the float model"},
            "ops_quantized": _count_ops(out, ("QuantizeLinear",))}


def _hold_budget(job: Job, pre: Path, out: Path, tmp: Path, method: str) -> dict:
    """The accuracy budget on the held-out rows (onnxruntime runs every candidate): plain int8 when it holds, else
    the fewest graph nodes kept float (``nodes_to_exclude``), ranked by the quantization noise of the tensor each
    produces (onnxruntime's qdq_loss_debug SQNR, lowest first); bisected as the .tflite and .pte searches are.
    ``out`` ends as the chosen model; an unmet budget raises with the best value reached."""
    import time

    from edgeport.quantization.budget import SearchLog, budget_error, prefix_search, goal, score, split_feeds

    t0 = time.perf_counter()
    g = goal(job.source.task, job.budget)
    sig = onnx_signature(pre, job)
    feeds, y = split_feeds(job.holdout, list(job.sig.input_names))
    ref = job.source.float_outputs(feeds)
    calib_rows, _ = _split_rows(job, sig)
    log = SearchLog(g, f"{job.name} (onnxruntime)")

    def evaluate(groups: list[list[str]]) -> dict:
        p = tmp / "candidate.onnx"
        _quantize(pre, p, calib_rows, method, [n for grp in groups for n in grp])
        return score(g, ref, _run(p, sig, feeds), y)

    res = plain = score(g, ref, _run(out, sig, feeds), y)
    log.append({"float_layers": [], "value": plain["value"], "meets": plain["meets"], "runtime": "onnxruntime"})
    chosen: list[str] = []
    if not plain["meets"]:
        _log("int8 .onnx: ranking nodes by the quantization noise of their outputs ...")
        order = run_converter(lambda: _noisiest_nodes(pre, out, calib_rows[:16], tmp),
                              "onnxruntime.quantization.qdq_loss_debug", job)
        found = prefix_search(order, evaluate, g, log)
        if found is None:
            raise budget_error(g, log, t0)
        k, res = found
        chosen = [n for grp in order[:k] for n in grp]
        _quantize(pre, out, calib_rows, method, chosen)
    return {"budget": {"metric": g.metric, "threshold": g.threshold, "rows": int(len(next(iter(feeds.values()))))},
            "float_nodes": chosen, "measured": {k2: v for k2, v in res.items() if k2 != "meets"},
            "plain_int8": plain["value"], "measured_by": "onnxruntime", "search": list(log),
            "search_seconds": round(time.perf_counter() - t0, 2), "ops_quantized": _count_ops(out, ("QuantizeLinear",))}


# Element-wise activations that quantize_static folds into the output range of the node before them: such a pair is
# kept float together (an activation left float alone behind a quantized node gets that node's clipped range).
_ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Elu", "Selu",
                "Softplus", "PRelu"}


def _noisiest_nodes(pre: Path, qdq: Path, rows: list[dict], tmp: Path) -> list[list[str]]:
    """Groups of node names of the float graph (a node with the activation that follows it), noisiest output tensor
    first: the SQNR of each tensor before and after its own QuantizeLinear/DequantizeLinear pair
    (onnxruntime.quantization.qdq_loss_debug)."""
    from collections import Counter

    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                         create_activation_matching,
                                                         modify_model_output_intermediate_tensors)

    acts = {}
    for what, model in (("float", pre), ("qdq", qdq)):
        aug = tmp / f"{what}-aug.onnx"
        modify_model_output_intermediate_tensors(str(model), str(aug))
        acts[what] = collect_activations(str(aug), _reader(rows))
    err = compute_activation_error(create_activation_matching(acts["qdq"], acts["float"]))
    nodes = [nd for nd in onnx.load(str(pre)).graph.node if nd.name]
    producer = {o: nd for nd in nodes for o in nd.output}
    uses = Counter(i for nd in nodes for i in nd.input)
    group: dict[str, list[str]] = {}
    for nd in nodes:  # topological order: a producer is grouped before its activation
        p = producer.get(nd.input[0]) if nd.input else None
        if nd.op_type in _ACTIVATIONS and p is not None and uses[nd.input[0]] == 1:
            group[p.name].append(nd.name)
            group[nd.name] = group[p.name]
        else:
            group[nd.name] = [nd.name]
    order: list[list[str]] = []
    for t, e in sorted(err.items(), key=lambda kv: kv[1].get("qdq_err", float("inf"))):
        g = group.get(producer[t].name) if t in producer else None
        if g and g not in order:
            order.append(g)
    return order


def _run(path: Path, sig: Signature, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Batch-1 runs of an ONNX model on onnxruntime (CPU), {output name: (N, ...)}, for choosing a recipe."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [s.binding for s in sig.outputs]
    n = len(next(iter(feeds.values())))
    outs = [sess.run(names, {s.binding: feeds[s.name][i : i + 1] for s in sig.inputs}) for i in range(n)]
    return {s.name: np.concatenate([o[j] for o in outs]).astype(np.float32) for j, s in enumerate(sig.outputs)}


def _count_ops(path: Path, op_types: tuple[str, ...]) -> int:
    import onnx

    return sum(1 for nd in onnx.load(str(path), load_external_data=False).graph.node if nd.op_type in op_types)
