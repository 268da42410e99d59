"""What every converter shares: the job it is handed, what it hands back, and error translation."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.config import ConvertOptions
from edgeport.errors import ConversionError, UnsupportedError, one_line
from edgeport.sources import Source


@dataclass
class Job:
    source: Source
    recipe: str
    workdir: Path  # temporary folder; the pipeline moves what the converter lists into the output folder
    name: str  # artifact base name: <model>.<recipe>
    calib: np.ndarray | None
    options: ConvertOptions
    probe_x: np.ndarray  # the probe batch in the model's input layout

    def example_input_np(self) -> np.ndarray:
        return self.probe_x[:1].astype(np.float32)

    def example_input_torch(self):
        import torch

        return torch.from_numpy(self.example_input_np())

    def float_probe_shape(self) -> tuple[int, ...]:
        return tuple(self.source.extras["probe_logits_shape"])


@dataclass
class Produced:
    entry: str  # relative path of the file a runtime opens
    files: list[str]  # every file of the artifact, relative to workdir
    signature: dict
    delegation: dict | None = None
    moved: list[str] | None = None  # top-level names to move (defaults to files)


_DATA_DEPENDENT = re.compile(r"data.dependent|GuardOnDataDependent|Could not guard|Dynamic control flow", re.I)
_TFL_UNSUPPORTED = re.compile(r"not supported by the native TFLite runtime|ops are not supported|Flex ops|failed to legalize", re.I)


def run_converter(fn: Callable[[], Any], tool: str, job: Job) -> Any:
    """Run an official converter, turning its failures into one-line typed errors that name the fix."""
    try:
        return fn()
    except (UnsupportedError, ConversionError):
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
        raise ConversionError(f"{where}: {tool} failed: {one_line(e, 300)}") from None


def keras_saved_model(job: Job) -> Path:
    """A SavedModel of the Keras source, exported once per source and shared by TFLite and TF.js."""
    src = job.source
    if src.saved_model_dir is not None:
        return src.saved_model_dir
    cached = src.extras.get("saved_model")
    if cached and Path(cached).is_dir():
        return Path(cached)
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-savedmodel-")) / "saved"
    import tensorflow as tf

    spec = tf.TensorSpec([1, *src.input_shape[1:]], tf.float32, name=src.input_name)
    run_converter(lambda: src.model.export(str(tmp), format="tf_saved_model", input_signature=[spec], verbose=False),
                  "keras Model.export", job)
    src.extras["saved_model"] = str(tmp)
    return tmp


def torch_exported(job: Job):
    """torch.export of the source (cached), with strict=False as ExecuTorch and litert-torch do."""
    import torch

    src = job.source
    if hasattr(src.model, "graph_signature"):  # already an ExportedProgram (.pt2)
        return src.model
    if "exported" not in src.extras:
        src.extras["exported"] = run_converter(
            lambda: torch.export.export(src.model, (job.example_input_torch(),), strict=False), "torch.export", job
        )
    return src.extras["exported"]


def tflite_signature(path: Path, job: Job) -> dict:
    """Read input/output details (shape, dtype, int8 scale/zero point) from the artifact itself."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))

    def q(d):
        scale, zp = d.get("quantization", (0.0, 0))
        return {"scale": float(scale), "zero_point": int(zp)} if scale else None

    ins = [{"name": d["name"], "shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
            "layout": job.source.layout, "quantization": q(d)} for d in it.get_input_details()]
    outs = [{"name": d["name"], "shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
             "labels": job.source.labels, "quantization": q(d)} for d in it.get_output_details()]
    return {"inputs": ins, "outputs": outs}
