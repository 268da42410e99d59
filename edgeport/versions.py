from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

_BY_TARGET = {
    "tflite": ("tensorflow", "ai-edge-litert", "litert-torch", "torch", "keras"),
    "tfjs": ("tensorflow", "tensorflowjs", "keras"),
    "pte": ("executorch", "torch", "torchao"),
}


@lru_cache(maxsize=None)
def pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def tools_for(target: str, framework: str) -> dict:
    names = [n for n in _BY_TARGET.get(target, ()) if not (framework == "keras" and n in ("torch", "litert-torch"))
             and not (framework == "torch" and n in ("keras", "tensorflow") and target != "tflite")]
    return {"edgeport": pkg("edgeport"), **{n: pkg(n) for n in names}}
