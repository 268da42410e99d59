"""Load a source model safely: built-ins, .keras (safe_mode), SavedModel, torch factory + weights, .pt2.

Nothing here unpickles arbitrary objects: torch weights are safetensors or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, UnsupportedError, one_line
from .fileio import sha256_file

BUILTIN_MODELS = ("builtin:simplecnn-keras", "builtin:simplecnn-torch")
DIGITS_PREPROCESSING = {
    "pixels": "uint8 grayscale 28x28, ink high (white digit on black)",
    "scale": 1.0 / 255.0,
    "offset": 0.0,
}


@dataclass
class Source:
    framework: str  # keras | torch
    model_id: str  # builtin name or the path given
    name: str  # short name used in artifact file names
    sha256: str  # of the weights / model file
    model: Any  # keras.Model | torch.nn.Module | torch.export.ExportedProgram | SavedModel path
    input_shape: tuple[int, ...]  # with batch 1
    layout: str  # NCHW | NHWC | other
    input_name: str = "input"
    labels: list[str] | None = None
    preprocessing: dict | None = None
    saved_model_dir: Path | None = None  # set when the source is a SavedModel directory
    extras: dict = field(default_factory=dict)

    @property
    def is_digits(self) -> bool:
        return self.preprocessing is not None

    def torch_module(self):
        """The nn.Module to call: the model itself, or the module of an ExportedProgram (.pt2)."""
        return self.model.module() if hasattr(self.model, "graph_signature") else self.model

    def float_outputs(self, x: np.ndarray) -> np.ndarray:
        """Logits of the float original on a batch in the model's input layout."""
        if self.framework == "torch":
            import torch

            mod = self.torch_module()
            with torch.no_grad():
                out = [mod(torch.from_numpy(x[i : i + 1])) for i in range(len(x))] if self.extras.get("batch1") else [mod(torch.from_numpy(x))]
            return np.concatenate([o.detach().numpy() for o in out]).astype(np.float32)
        if self.saved_model_dir is not None:
            import tensorflow as tf

            fn = self.model.signatures["serving_default"]
            res = fn(**{self.input_name: tf.constant(x)})
            return np.asarray(list(res.values())[0]).astype(np.float32)
        return np.asarray(self.model(x, training=False)).astype(np.float32)


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-.") or "model"


def _need_file(p: Path, what: str, fix: str) -> None:
    if not p.exists():
        raise InputError(f"{what} not found: {p}; {fix}")


def load_source(spec: str, *, weights: str | None = None, input_shape: tuple[int, ...] | None = None) -> Source:
    """Resolve a --model spec into a Source."""
    from edgeport.demo import models as builtin

    if spec.startswith("builtin:"):
        if spec == "builtin:simplecnn-torch":
            m, path = builtin.trained_torch()
            return Source("torch", spec, "simplecnn-torch", sha256_file(path), m, (1, 1, 28, 28), "NCHW",
                          labels=[str(i) for i in range(10)], preprocessing={**DIGITS_PREPROCESSING, "layout": "NCHW"})
        if spec == "builtin:simplecnn-keras":
            m, path = builtin.trained_keras()
            return Source("keras", spec, "simplecnn-keras", sha256_file(path), m, (1, 28, 28, 1), "NHWC",
                          input_name="image", labels=[str(i) for i in range(10)],
                          preprocessing={**DIGITS_PREPROCESSING, "layout": "NHWC"})
        raise InputError(f"unknown built-in model {spec!r}; known: {', '.join(BUILTIN_MODELS)}")

    p = Path(spec)
    if spec.endswith(".keras"):
        _need_file(p, "Keras model", "pass an existing .keras file")
        return _load_keras_file(p)
    if p.is_dir() or spec.endswith("/"):
        _need_file(p, "SavedModel directory", "pass a folder holding saved_model.pb")
        if not (p / "saved_model.pb").is_file():
            raise InputError(f"{p} is not a SavedModel (no saved_model.pb); pass a SavedModel folder or a .keras file")
        return _load_saved_model(p)
    if spec.endswith(".pt2"):
        _need_file(p, "exported program", "pass an existing .pt2 written by torch.export.save")
        return _load_pt2(p)
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        return _load_torch_factory(spec, weights, input_shape)
    if spec.endswith((".h5", ".pt", ".pth", ".onnx", ".tflite")) and not p.exists():
        _need_file(p, "model file", "check the path")
    raise InputError(
        f"cannot tell what model {spec!r} is; pass a .keras file, a SavedModel folder, a .pt2, "
        f"'package.module:factory' with --weights, or one of: {', '.join(BUILTIN_MODELS)}"
    )


def _load_keras_file(p: Path) -> Source:
    import keras

    try:
        model = keras.models.load_model(str(p), safe_mode=True, compile=False)
    except Exception as e:  # unknown custom layer, lambda under safe_mode, corrupt zip ...
        msg, full = one_line(e), str(e)
        if "Lambda" in full or "safe_mode" in full:
            raise UnsupportedError(
                f"{p}: holds a Lambda layer, which safe_mode refuses to deserialize (it would run pickled code);"
                " replace it with a registered custom layer"
            ) from None
        m = re.search(r"Could not locate (?:class|function) '([^']+)'", full)
        if m:
            raise UnsupportedError(
                f"{p}: uses custom layer {m.group(1)!r}, which is not registered; import the module that defines it "
                "(decorated with @keras.saving.register_keras_serializable) before converting, or export a SavedModel"
            ) from None
        raise InputError(f"{p}: could not load Keras model ({msg}); re-save it with model.save('model.keras')") from None
    shape = tuple(model.inputs[0].shape)
    if any(d is None for d in shape[1:]):
        raise UnsupportedError(f"{p}: input shape {shape} has unknown dimensions; give the model a fixed keras.Input shape")
    layout = "NHWC" if len(shape) == 4 else "other"
    return Source("keras", str(p), _safe_name(p.stem), sha256_file(p), model, (1, *shape[1:]), layout,
                  input_name=model.inputs[0].name.split(":")[0])


def _load_saved_model(p: Path) -> Source:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(p))
        fn = loaded.signatures["serving_default"]
    except Exception as e:
        raise InputError(f"{p}: could not load SavedModel ({one_line(e)}); export it with model.export() or tf.saved_model.save") from None
    (name, spec), = fn.structured_input_signature[1].items()
    shape = tuple(spec.shape)
    if any(d is None for d in shape[1:]):
        raise UnsupportedError(f"{p}: input {name!r} has unknown dimensions {shape}; export with a fixed input shape")
    sha = sha256_file(p / "saved_model.pb")
    layout = "NHWC" if len(shape) == 4 else "other"
    return Source("keras", str(p), _safe_name(p.name), sha, loaded, (1, *shape[1:]), layout, input_name=name,
                  saved_model_dir=p)


def _load_pt2(p: Path) -> Source:
    import torch

    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        raise InputError(f"{p}: could not load exported program ({one_line(e)}); write it with torch.export.save") from None
    args = ep.example_inputs[0] if ep.example_inputs else None
    if not args:
        raise InputError(f"{p}: exported program has no example inputs; export it with example args")
    shape = tuple(args[0].shape)
    return Source("torch", str(p), _safe_name(p.stem), sha256_file(p), ep, shape, "NCHW" if len(shape) == 4 else "other",
                  extras={"batch1": True})


def _load_torch_factory(spec: str, weights: str | None, input_shape: tuple[int, ...] | None) -> Source:
    import torch

    mod_name, fn_name = spec.split(":")
    if input_shape is None:
        raise InputError(f"{spec}: a PyTorch model needs --input-shape, e.g. --input-shape 1,3,96,96")
    try:
        if "" not in sys.path:
            sys.path.insert(0, "")
        factory = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise InputError(f"cannot import {spec} ({one_line(e)}); make the module importable (PYTHONPATH) and check the name") from None
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module; the factory must build the model")
    sha = "unweighted"
    if weights:
        wp = Path(weights)
        _need_file(wp, "weights file", "pass an existing .safetensors or .pt state dict")
        if wp.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(wp))
        else:
            try:
                state = torch.load(str(wp), map_location="cpu", weights_only=True)
            except Exception as e:
                raise InputError(
                    f"{wp}: refused to load ({one_line(e, 160)}); only plain state dicts load (weights_only=True);"
                    " save with torch.save(model.state_dict()) or safetensors"
                ) from None
        if not isinstance(state, dict):
            raise InputError(f"{wp}: holds {type(state).__name__}, not a state dict; save model.state_dict()")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise InputError(f"{wp}: weights do not fit {spec} ({one_line(e, 200)}); check the factory and weights match") from None
        sha = sha256_file(wp)
    model.eval()
    shape = tuple(int(d) for d in input_shape)
    return Source("torch", spec, _safe_name(fn_name if fn_name not in ("build", "create", "model") else mod_name.split(".")[-1]),
                  sha, model, shape, "NCHW" if len(shape) == 4 else "other")


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise InputError(f"--input-shape {text!r} is not a list of integers; write it like 1,3,96,96") from None
    if not shape or any(d <= 0 for d in shape):
        raise InputError(f"--input-shape {text!r} must be positive integers, like 1,3,96,96")
    return shape
