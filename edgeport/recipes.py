"""Recipes: what each precision means, kept as data so the CLI, docs and tests print the same table."""

from __future__ import annotations

from dataclasses import dataclass

from edgeport.errors import UnsupportedError


@dataclass(frozen=True)
class Recipe:
    name: str
    # Weight storage dtype, for the table.
    weights: str
    # Activation dtype at run time.
    activations: str
    # Whether a representative (calibration) set is required: the pipeline hands such a recipe the calibration rows
    # and records them in the manifest.
    needs_calibration: bool
    description: str
    # Which parity tolerances apply (each task's tolerance per family): float32 | float16 | quantized.
    family: str = "quantized"
    # Whether it can hold an accuracy budget (--max-drop / --min-cosine / --min-snr) where its converter has a
    # budget search (registry.converter(..., budget=...)).
    budget: bool = False


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe("fp32", "float32", "float32", False, "float baseline", family="float32"),
        Recipe("fp16", "float16", "float32", False, "float16 weights, float32 compute", family="float16"),
        Recipe("dynamic-int8", "int8", "float32 (int8 matmuls, dynamic ranges)", False,
               "int8 weights, activations quantized on the fly"),
        Recipe("int8", "int8", "int8", True, "full integer: per-channel int8 weights, static int8 activations",
               budget=True),
        Recipe("uint8", "uint8 (affine)", "float32", False, "TF.js weight storage, dequantized at load"),
        Recipe("uint16", "uint16 (affine)", "float32", False, "TF.js weight storage, dequantized at load",
               family="float16"),
    ]
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnsupportedError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
