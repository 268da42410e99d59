"""Runs inside the arm64 rootfs under qemu-user, with only numpy and the aarch64 runtime: ``python3.11 guest.py
JOB.json``. Not part of the edgeport package at run time (it is copied into the job folder; edgeport is not
installed in the rootfs).

The job names the artifact (``format`` onnx | tflite, ``model`` a path under /work/artifact or /work/job), the input
and output tensor names in order, and ``mode``: ``run`` (the outputs of every sample, batch 1 as on the host),
``tensors`` (every tensor the runtime keeps, for ``edgeport inspect --runtime arm64``) or ``optimize`` (.onnx: only
save the graph ONNX Runtime optimized for this CPU, ``save_optimized``). Inputs come from ``in.npz``
(one (N, ...) array per input, already in the artifact's dtypes); outputs go to ``out.npz``, facts to ``meta.json``.
"""

import json
import os
import sys
import time

import numpy as np

HWCAP = {  # Linux arm64 AT_HWCAP / AT_HWCAP2 bits worth naming in a row (what the emulated core offers)
    1: {8: "atomics", 20: "asimddp", 22: "sve"},
    2: {1: "sve2", 13: "i8mm", 14: "bf16", 23: "sme"},
}


def hwcaps() -> list:
    """The emulated CPU's features, from the auxiliary vector qemu gives the guest."""
    try:
        raw = np.frombuffer(open("/proc/self/auxv", "rb").read(), dtype="<u8").reshape(-1, 2)
    except (OSError, ValueError):
        return []
    vals = {int(k): int(v) for k, v in raw}
    out = []
    for which, at in ((1, 16), (2, 26)):
        bits = vals.get(at, 0)
        out += [name for bit, name in HWCAP[which].items() if bits >> bit & 1]
    return out


def run_tflite(job, feeds, tensors: bool):
    from importlib.metadata import version

    from ai_edge_litert import interpreter as lit

    it = lit.Interpreter(model_path=job["model"], num_threads=1, experimental_preserve_all_tensors=tensors)
    it.allocate_tensors()
    sigs = it.get_signature_list()
    sr = it.get_signature_runner("serving_default" if "serving_default" in sigs else next(iter(sigs)))
    ind, outd = sr.get_input_details(), sr.get_output_details()
    in_idx = [ind[b]["index"] for b in job["inputs"]]
    out_idx = [outd[b]["index"] for b in job["outputs"]]
    del sr, ind, outd  # LiteRT 1.4's signature runner holds tensor views; invoke() refuses while they live
    import gc

    gc.collect()
    n = len(feeds[job["inputs"][0]])
    outs = {}
    if tensors:  # every op output, in execution order, dequantized with its own scale / zero point
        ops = it._get_ops_details()
        details = {d["index"]: d for d in it.get_tensor_details()}
        order = [t for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"] if t >= 0]
    for i in range(n):
        for j, b in zip(in_idx, job["inputs"]):
            it.set_tensor(j, feeds[b][i : i + 1])
        it.invoke()
        if tensors:
            for t in order:
                d = details[t]
                try:
                    v = np.asarray(it.get_tensor(t))
                except ValueError:
                    continue
                sc, zp = d.get("quantization", (0.0, 0))
                if v.dtype.kind in "iu" and sc:
                    v = (v.astype(np.float32) - zp) * sc
                outs.setdefault(d["name"], []).append(np.asarray(v, np.float32) if v.dtype.kind in "fiu" else v)
        else:
            for b, o in zip(job["outputs"], out_idx):
                outs.setdefault(b, []).append(np.asarray(it.get_tensor(o)))
    return version("ai-edge-litert"), outs


def run_onnx(job, feeds, tensors: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if job.get("save_optimized"):  # the graph as this platform's optimizer leaves it (its fusions, its layouts)
        so.optimized_model_filepath = job["save_optimized"]
    if job.get("no_optimize"):  # an already optimized graph: run its nodes as they are
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(job["model"], so, providers=["CPUExecutionProvider"])
    if job.get("mode") == "optimize":
        return ort.__version__, {}
    names = [o.name for o in sess.get_outputs()] if tensors else job["outputs"]
    n = len(feeds[job["inputs"][0]])
    outs = {}
    for i in range(n):
        res = sess.run(names, {b: feeds[b][i : i + 1] for b in job["inputs"]})
        for b, y in zip(names, res):
            outs.setdefault(b, []).append(np.asarray(y))
    return ort.__version__, outs


def main() -> int:
    t0 = time.monotonic()
    job = json.load(open(sys.argv[1]))
    folder = os.path.dirname(sys.argv[1])
    with np.load(os.path.join(folder, "in.npz")) as z:
        feeds = {k: z[k] for k in z.files}
    fn = {"tflite": run_tflite, "onnx": run_onnx}[job["format"]]
    t1 = time.monotonic()
    version, outs = fn(job, feeds, job.get("mode") == "tensors")
    t2 = time.monotonic()
    arrays = {}
    for k, v in outs.items():
        try:
            arrays[k] = np.concatenate(v)
        except ValueError:  # a tensor whose shape changes between samples: not comparable, leave it out
            continue
    names = list(arrays)
    np.savez(os.path.join(folder, "out.npz"), **{f"t{i}": arrays[k] for i, k in enumerate(names)})
    meta = {"runtime_version": version, "hwcaps": hwcaps(), "names": names, "numpy": np.__version__,
            "seconds": {"start": round(t1 - t0, 2), "run": round(t2 - t1, 2)}}
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
