"""PyTorch -> ONNX with the official dynamo exporter, ``torch.onnx.export(..., dynamo=True)``, on the same
torch.export program the other torch targets use; the recipes are applied to that float model (recipes.py)."""

from __future__ import annotations

from pathlib import Path

from edgeport.registry import converter

from ..common import Job, Produced, run_converter, torch_exported
from .recipes import RECIPES, float_model_dir, make_recipe

TOOL = "torch.onnx.export (dynamo)"


def _export(job: Job) -> Path:
    """The float ONNX model of the source, exported once per source and shared by every recipe."""
    cached = job.cache.get("onnx_float")
    if cached and Path(cached).is_file():
        return Path(cached)
    import torch

    path = float_model_dir(job) / "float.onnx"

    def go():
        # Graph inputs are named by forward()'s arguments (the source signature), outputs by the signature's names
        # (tuple outputs flatten in torch.export order: output_0, output_1, ...).
        prog = torch.onnx.export(torch_exported(job), job.example_torch(), dynamo=True, external_data=False,
                                 input_names=job.sig.input_names, output_names=job.sig.output_names, optimize=True,
                                 verbose=False)
        prog.save(str(path))
        return path

    with torch.no_grad():
        run_converter(go, TOOL, job)
    job.cache["onnx_float"] = str(path)
    return path


@converter("onnx", "torch", recipes=RECIPES, tool=TOOL)
def convert(job: Job) -> Produced:
    return make_recipe(job, _export(job), TOOL)
