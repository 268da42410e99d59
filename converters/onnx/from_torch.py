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
        # Output names are set after export: the exporter refuses (non-SSA graph) a name that an inner value
        # already has, e.g. a model output called "embedding" beside nn.Embedding's own value.
        prog = torch.onnx.export(torch_exported(job), job.example_torch(), dynamo=True, external_data=False,
                                 input_names=job.sig.input_names, optimize=True, verbose=False)
        prog.save(str(path))
        _name_outputs(path, job.sig.output_names)
        return path

    with torch.no_grad():
        run_converter(go, TOOL, job)
    job.cache["onnx_float"] = str(path)
    return path


def _name_outputs(path: Path, names: list[str]) -> None:
    """Give the graph outputs the source's names, first renaming any inner value that already holds one."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    for out, new in zip(list(g.output), names):
        if out.name == new:
            continue
        if new in _value_names(g):
            _rename(g, new, f"{new}__inner")
        _rename(g, out.name, new)
    onnx.save(model, str(path))


def _value_names(g) -> set[str]:
    names = {v.name for v in list(g.input) + list(g.output) + list(g.value_info)} | {i.name for i in g.initializer}
    for n in g.node:
        names.update(n.input)
        names.update(n.output)
    return names


def _rename(g, old: str, new: str) -> None:
    """Rename one value everywhere in a graph and its subgraphs (If/Loop bodies)."""
    for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
        if v.name == old:
            v.name = new
    for n in g.node:
        for seq in (n.input, n.output):
            for i, x in enumerate(seq):
                if x == old:
                    seq[i] = new
        for a in n.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _rename(sub, old, new)


@converter("onnx", "torch", recipes=RECIPES, tool=TOOL, budget=("int8",))
def convert(job: Job) -> Produced:
    return make_recipe(job, _export(job), TOOL)
