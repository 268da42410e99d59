"""The converter contract: the job the pipeline hands a converter and what the converter hands back.

Core, so that the pipeline, the quantization passes and the inspector use it without importing any plugin.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ConvertOptions
from .errors import ConversionError
from .signature import Signature
from .sources import Source


@dataclass
class Job:
    source: Source
    recipe: str
    workdir: Path  # temporary folder; the pipeline moves what the converter lists into the output folder
    name: str  # artifact base name: <model>.<recipe>
    calib: dict[str, np.ndarray] | None  # calibration rows, {input name: (N, ...)}, for static recipes
    options: ConvertOptions
    example: dict[str, np.ndarray]  # one real sample (batch 1) per input, for tracing
    cache: dict = field(default_factory=dict)  # per-source exports shared by jobs (SavedModel, ExportedProgram)
    holdout: dict[str, np.ndarray] | None = None  # rows that judge an accuracy budget (+ optional "y"), never calibrated on

    @property
    def sig(self) -> Signature:
        return self.source.signature

    def example_torch(self) -> tuple:
        import torch

        # a real copy: numpy may give size-1 axes a 0 stride, which ExecuTorch refuses ("0 in strides")
        return tuple(torch.from_numpy(np.array(self.example[s.name], order="C", copy=True)) for s in self.sig.inputs)

    @property
    def budget(self):
        """The accuracy budget this recipe must hold (``--max-drop`` / ``--min-cosine`` / ``--min-snr``), or None for
        a recipe that cannot hold one (the pipeline refuses a budget no planned recipe can hold)."""
        from .recipes import get_recipe

        return getattr(self.options, "budget", None) if get_recipe(self.recipe).budget else None

    def calib_rows(self):
        """Calibration samples one at a time, each {input name: (1, ...)}."""
        n = len(next(iter(self.calib.values())))
        for i in range(n):
            yield {k: v[i : i + 1] for k, v in self.calib.items()}


@dataclass
class Produced:
    entry: str  # relative path of the file a runtime opens
    files: list[str]  # every file of the artifact, relative to workdir
    signature: Signature  # the source's named signature with the artifact's bindings (and any dtype changes)
    delegation: dict | None = None
    moved: list[str] | None = None  # top-level names to move (defaults to files)
    notes: list[str] = field(default_factory=list)  # what the converter did that a user should know
    quantization: dict | None = None  # what was quantized, how (recorded in the manifest)


def cleanup(cache: dict) -> None:
    for p in cache.get("cleanup", []):
        shutil.rmtree(p, ignore_errors=True)


def bind_keys(names: list[str], keys: list[str]) -> list[str]:
    """Artifact keys for the source's tensor names: by name when every name is there (TF tensor names match without
    their ":0" output index), else by position (keys in natural order: args_0, args_1, ... / Identity, Identity_1,
    ..., Identity_10 / output_0, output_1, ...)."""
    if len(keys) != len(names):
        raise ConversionError(f"the artifact has {len(keys)} tensors ({', '.join(keys)}) where the model has {len(names)}"
                              f" ({', '.join(names)}); re-export the model")
    if set(names) == set(keys):
        return list(names)
    bare: dict[str, list[str]] = {}
    for k in keys:
        bare.setdefault(re.sub(r":\d+$", "", k), []).append(k)
    if len(set(names)) == len(names) and all(len(bare.get(n, ())) == 1 for n in names):
        return [bare[n][0] for n in names]

    def natural(k: str):
        stem, _, idx = k.partition(":") if re.search(r":\d+$", k) else (k, "", "0")
        m = re.search(r"\d+$", stem)
        return (int(m.group()) if m else -1, stem, int(idx or 0), k)

    return sorted(keys, key=natural)