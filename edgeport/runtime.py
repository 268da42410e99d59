"""The runner contract: one subclass per runtime that runs in the evaluator's worker process (registered with
``register_runtime(..., runner=...)``). Runners read only the manifest.

``load()`` once, then ``run({name: (N, ...) array}) -> {name: (N, ...) array}``. Artifacts are batch 1, so ``run``
loops over samples; the timed loop calls ``invoke_one(prepare(one_sample))`` directly.

Hooks a runtime may override (defaults suit a host runtime):

- ``accepts(manifest) -> str | None``: why this runtime cannot take that artifact (a skipped row), e.g. a
  microcontroller interpreter and an fp16 model;
- ``variants(options) -> [dict]``: one row per variant (an emulated CPU each), passed back as ``self.variant``;
- ``threaded``: False runs once, at one thread, whatever ``--threads`` asks;
- ``measures_latency``: False skips the timed loop, and the row says ``latency_note``;
- ``extra_fields() -> dict``: row fields only this runtime measures (``cpu``, ``arena_bytes`` ...), after ``run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, InputError
from .signature import Signature, TensorSpec, numpy_dtype


def resolve_threads(t: str | int) -> int:
    return (os.cpu_count() or 1) if str(t) == "all" else int(t)


def quantize_array(x: np.ndarray, dtype, scale: float | None, zero_point: int = 0) -> np.ndarray:
    """Float data -> an integer tensor type with its scale/zero point (int8 I/O); anything else is only cast."""
    dt = np.dtype(dtype)
    x = np.asarray(x)
    if scale and dt.kind in "iu" and x.dtype.kind == "f":
        info = np.iinfo(dt)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dt)
    return x.astype(dt, copy=False)


def quantize_input(spec: TensorSpec, x: np.ndarray) -> np.ndarray:
    """Float data -> the artifact's input dtype (int8 I/O with the manifest's scale/zero point)."""
    q = spec.quantization or {}
    return quantize_array(x, numpy_dtype(spec.dtype), q.get("scale"), q.get("zero_point", 0))


def serving_signature(interpreter) -> tuple[str, Any]:
    """A LiteRT interpreter's serving signature: ``(key, signature runner)``, "serving_default" when it has one
    (Keras), else its first (litert-torch names its own). The one place every .tflite reader looks it up."""
    sigs = interpreter.get_signature_list()
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    return key, interpreter.get_signature_runner(key)


@dataclass
class Artifact:
    """What a Runner reads of an artifact that has no manifest yet: a budget search's candidate, written to a
    scratch file and run with the same runner as the evaluator's."""

    entry_path: Path
    sig: Signature
    name: str = "candidate"
    delegation: dict | None = None

    @property
    def entry(self) -> str:
        return self.entry_path.name


def run_artifact(runner: type, path: Path, sig: Signature, feeds: dict[str, np.ndarray], threads: int = 1) -> dict:
    """Run a scratch artifact file with a runtime's Runner (loaded once) on ``{input: (N, ...)}``."""
    r = runner(Artifact(Path(path), sig), threads=threads)
    r.import_runtime()
    r.load()
    return r.run(feeds)


def dequantize_output(spec: TensorSpec, y: np.ndarray) -> np.ndarray:
    q = spec.quantization
    y = np.asarray(y)
    if q and y.dtype.kind in "iu":
        return ((y.astype(np.float32) - q["zero_point"]) * q["scale"]).astype(np.float32)
    return y.astype(np.float32) if y.dtype.kind == "f" else y


class Runner:
    target = ""  # the format it runs (the first of the registration's formats)
    runtime = ""  # what rows call the runtime (the package that runs the artifact); the registry name by default
    runtime_name = ""  # its name in the runtime registry (set by register_runtime)
    runtime_version = ""
    backend = "cpu"
    threaded = True  # False: one run at one thread, whatever --threads asks (an emulator, a microcontroller)
    measures_latency = True  # False: no timed loop; the row carries latency_note instead
    latency_note = ""

    def __init__(self, manifest, threads: int = 1, *, options: dict | None = None, variant: dict | None = None):
        self.m = manifest
        self.threads = threads
        self.sig: Signature = manifest.sig
        self.options = dict(options or {})  # this runtime's --flags (EvaluateOptions.runtime_options[name])
        self.variant = dict(variant or {})  # one of variants(options)

    @classmethod
    def import_runtime(cls) -> None:
        """Import the runtime's modules, so that load() timings measure loading the artifact, not Python imports."""

    @classmethod
    def accepts(cls, manifest) -> str | None:
        """None when this runtime can run the artifact; else one line saying why not and what to do instead."""
        return None

    @classmethod
    def variants(cls, options: dict) -> list[dict]:
        """One dict per row this runtime makes of one artifact (e.g. one per emulated CPU)."""
        return [{}]

    def extra_fields(self) -> dict:
        """Row fields measured by this runtime only (after run): cpu, arena_bytes, flash_bytes, note ..."""
        return {}

    def load(self) -> None:
        raise NotImplementedError

    def prepare(self, feeds1: dict[str, np.ndarray]) -> Any:
        """One sample's inputs -> whatever invoke_one takes (default: a list in signature order, artifact dtypes)."""
        return [quantize_input(s, feeds1[s.name]) for s in self.sig.inputs]

    def invoke_one(self, prepared) -> list:
        """One batch-1 inference on prepared inputs -> raw outputs in signature order; load() binds it."""
        raise RuntimeError(f"{type(self).__name__}: call load() first")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self.sig, feeds, self.m.name)
        n = len(next(iter(feeds.values())))
        outs: dict[str, list] = {s.name: [] for s in self.sig.outputs}
        for i in range(n):
            raw = self.invoke_one(self.prepare({k: v[i : i + 1] for k, v in feeds.items()}))
            for s, y in zip(self.sig.outputs, raw):
                y = dequantize_output(s, y)
                outs[s.name].append(y.reshape(s.shape) if s.shape else y)  # no shape: a candidate's, kept as given
        return {k: np.concatenate(v) for k, v in outs.items()}

    def delegation(self) -> dict | None:
        return self.m.delegation


def check_feeds(sig: Signature, feeds: dict[str, np.ndarray], what: str, exc=ArtifactError) -> None:
    """Every input present, with the sample shape the signature says; one message naming every problem."""
    problems = []
    for s in sig.inputs:
        if s.name not in feeds:
            problems.append(f"missing input {s.name!r}")
            continue
        x = feeds[s.name]
        if tuple(x.shape[1:]) != tuple(s.shape[1:]):
            problems.append(f"{s.name!r} has sample shape {tuple(x.shape[1:])}, expected {tuple(s.shape[1:])}")
    if problems:
        raise exc(f"{what}: " + "; ".join(problems) + f"; the model takes {sig.describe_inputs()}")
    lens = {len(v) for k, v in feeds.items() if k in sig.input_names}
    if len(lens) > 1:
        raise exc(f"{what}: inputs have different sample counts {sorted(lens)}; give every input the same N")


__all__ = ["Runner", "Artifact", "run_artifact", "serving_signature", "resolve_threads", "quantize_array",
           "quantize_input", "dequantize_output", "check_feeds", "InputError"]
