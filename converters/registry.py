"""The one registry of targets, keyed by (source framework, target)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgeport.errors import UnsupportedError
from edgeport.quantization.recipes import get_recipe

FRAMEWORKS = ("keras", "torch")
# Declared combinations. A test fails if one of these was never registered.
DECLARED = {
    ("keras", "tflite"): ("fp32", "fp16", "dynamic-int8", "int8"),
    ("keras", "tfjs"): ("fp32", "fp16", "uint8", "uint16"),
    ("torch", "pte"): ("fp32", "dynamic-int8", "int8"),
    ("torch", "tflite"): ("fp32", "fp16", "dynamic-int8", "int8"),
}


@dataclass(frozen=True)
class Target:
    framework: str  # source framework: keras | torch
    target: str  # artifact format: tflite | tfjs | pte
    recipes: tuple[str, ...]  # supported recipes, in table order
    convert: Callable  # convert(job) -> Produced
    converter: str  # the official tool that does the work, for the table and the manifest
    runtime: str  # the runtime that runs the artifact natively ("browser" when none in Python)


_REGISTRY: dict[tuple[str, str], Target] = {}


def register(framework: str, target: str, *, recipes: tuple[str, ...], converter: str, runtime: str):
    """Class/function decorator: ``@register("torch", "pte", recipes=(...), ...)``."""

    def deco(fn):
        for r in recipes:
            get_recipe(r)
        key = (framework, target)
        if key in _REGISTRY:
            raise RuntimeError(f"target {key} registered twice")
        _REGISTRY[key] = Target(framework, target, tuple(recipes), fn, converter, runtime)
        return fn

    return deco


def known_targets() -> list[str]:
    return sorted({t for _, t in _REGISTRY})


def get_target(framework: str, target: str) -> Target:
    if framework not in FRAMEWORKS:
        raise UnsupportedError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    if target not in known_targets():
        raise UnsupportedError(f"unknown target {target!r}; known: {', '.join(known_targets())}")
    try:
        return _REGISTRY[(framework, target)]
    except KeyError:
        able = sorted(fw for fw, t in _REGISTRY if t == target)
        raise UnsupportedError(
            f"target {target!r} does not take {framework} models; it takes: {', '.join(able)}"
            f" (targets for {framework}: {', '.join(targets_for(framework))})"
        ) from None


def targets_for(framework: str) -> list[str]:
    return sorted(t for fw, t in _REGISTRY if fw == framework)


def check_recipe(t: Target, recipe: str) -> None:
    get_recipe(recipe)
    if recipe not in t.recipes:
        raise UnsupportedError(
            f"recipe {recipe!r} does not exist for {t.framework} -> {t.target}; supported: {', '.join(t.recipes)}"
        )


def matrix() -> list[Target]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def matrix_table() -> str:
    rows = [("framework", "target", "recipes", "converter", "native runtime")]
    rows += [(t.framework, t.target, ",".join(t.recipes), t.converter, t.runtime) for t in matrix()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
