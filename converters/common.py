"""What every converter shares: the job it is handed, what it hands back, error translation, and the shared
exports (a Keras SavedModel, a torch.export program) that several targets reuse."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.errors import ConversionError, EdgeportError, UnsupportedError, one_line
from edgeport.job import Job, Produced, bind_keys, cleanup  # noqa: F401  (the contract, re-exported for converters)
from edgeport.signature import Signature


_DATA_DEPENDENT = re.compile(r"data.dependent|GuardOnDataDependent|Could not guard|Dynamic control flow", re.I)
_TFL_UNSUPPORTED = re.compile(r"not supported by the native TFLite runtime|ops are not supported|Flex ops|failed to legalize", re.I)


def run_converter(fn: Callable[[], Any], tool: str, job: Job) -> Any:
    """Run an official converter, turning its failures into one-line typed errors that name the fix."""
    try:
        return fn()
    except EdgeportError:  # already typed, one line, with its fix (bad input, unsupported op, budget not met)
        raise
    except Exception as e:  # the converters raise many types; we classify by message
        text = f"{type(e).__name__}: {e}"
        where = f"{job.source.model_id} -> {job.name}"
        if _DATA_DEPENDENT.search(text):
            raise UnsupportedError(
                f"{where}: the model has data-dependent Python control flow that torch.export cannot capture"
                " ; rewrite the branch with torch.cond or torch.where"
            ) from None
        if _TFL_UNSUPPORTED.search(text):
            ops = sorted(set(re.findall(r"tf\.([A-Za-z0-9_]+)", text)))[:6]
            raise UnsupportedError(
                f"{where}: {tool} cannot lower op(s) {', '.join(ops) or '(see converter log)'} to TFLite builtins;"
                " replace them with supported layers"
            ) from None
        import sys
        import traceback

        traceback.print_exception(e, file=sys.stderr)  # the whole story, in the run's log (on the terminal with -v)
        raise ConversionError(f"{where}: {tool} failed: {one_line(e, 300)} (raised in {raised_in(e)})") from None


def raised_in(e: BaseException) -> str:
    """``module:line`` of the innermost frame an exception came from: a converter's own module (torch.ao...,
    tensorflow...) says the limitation is upstream; an ``edgeport.`` one says the bug is ours."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_globals.get('__name__', '?')}:{tb.tb_lineno}" if tb is not None else "?"


def keras_saved_model(job: Job) -> Path:
    """A SavedModel of the Keras source with a batch-1 signature named by the model's inputs, exported once per
    source (in the job cache) and shared by TFLite, TF.js and ONNX. Outputs are keyed output_0, output_1, ..."""
    src = job.source
    cached = job.cache.get("saved_model")
    if cached and Path(cached).is_dir():
        return Path(cached)
    import tensorflow as tf

    tmp = Path(tempfile.mkdtemp(prefix="edgeport-savedmodel-", dir=job.workdir.parent)) / "saved"
    specs = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in job.sig.inputs]
    if src.saved_model_dir is not None:
        fn = src.model.signatures["serving_default"]
        names = job.sig.input_names
        module = tf.Module()
        module.loaded = src.model  # track the loaded object's variables so that they are saved with the function
        module.f = tf.function(lambda *xs: fn(**dict(zip(names, xs))), input_signature=specs)
        run_converter(lambda: tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.f}),
                      "tf.saved_model.save", job)
    else:
        model = src.model
        if len(specs) == 1:
            sig = [specs[0]]
        elif isinstance(getattr(model, "_inputs_struct", None), dict):
            sig = [{s.name: s for s in specs}]
        else:
            sig = [specs]
        run_converter(lambda: model.export(str(tmp), format="tf_saved_model", input_signature=sig, verbose=False),
                      "keras Model.export", job)
    job.cache["saved_model"] = str(tmp)
    job.cache.setdefault("cleanup", []).append(tmp.parent)
    return tmp


def saved_model_output_keys(path: Path) -> list[str]:
    """The serving signature's output keys, in the order that matches the source's flattened outputs."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    keys = list(fn.structured_outputs)
    return sorted(keys, key=lambda k: (int(k.rsplit("_", 1)[1]) if re.fullmatch(r"output_\d+", k) else 10**6, k))


def torch_exported(job: Job):
    """torch.export of the source (cached per source), with strict=False as ExecuTorch and litert-torch do."""
    import torch

    src = job.source
    if hasattr(src.model, "graph_signature"):  # already an ExportedProgram (.pt2)
        return src.model
    if "exported" not in job.cache:
        job.cache["exported"] = run_converter(
            lambda: torch.export.export(src.model, job.example_torch(), strict=False), "torch.export", job)
    return job.cache["exported"]


def tflite_signature(path: Path, job: Job) -> Signature:
    """The job's source signature bound to the written .tflite (see :func:`bind_tflite_signature`)."""
    return bind_tflite_signature(path, job.sig)


def bind_tflite_signature(path: Path, sig: Signature) -> Signature:
    """``sig`` bound to the .tflite's serving signature keys, with the artifact's own dtypes and int8 scale/zero
    point. Keys that equal the source's names bind by name (Keras exports); otherwise by position (litert-torch's
    args_N / output_N)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeport.runtime import serving_signature

    _, runner = serving_signature(Interpreter(model_path=str(path)))
    ind, outd = runner.get_input_details(), runner.get_output_details()

    def q(d):
        scale, zp = d.get("quantization", (0.0, 0))
        return {"scale": float(scale), "zero_point": int(zp)} if scale else None

    def bind(specs, details):
        return tuple(s.with_(binding=k, dtype=np.dtype(details[k]["dtype"]).name, quantization=q(details[k]))
                     for s, k in zip(specs, bind_keys([s.name for s in specs], list(details))))

    return Signature(bind(sig.inputs, ind), bind(sig.outputs, outd))


