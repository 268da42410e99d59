"""Load a source model safely and read its named signature: .keras (safe_mode), SavedModel, torch factory + weights,
.pt2, an in-memory keras.Model / torch.nn.Module, and whatever source loaders plugins register (built-ins).

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

from .binding import bind_inputs, check_output
from .errors import EdgeportError, InputError, UnsupportedError, one_line
from .fileio import sha256_file
from .signature import Signature, TensorSpec, dtype_name, make_input


@dataclass
class Source:
    framework: str  # keras | torch
    model_id: str  # builtin name, or the absolute path / factory given
    name: str  # short name used in artifact file names
    sha256: str  # of the weights / model file ("in-memory:<hash of parameters>" for objects)
    model: Any  # keras.Model | torch.nn.Module | torch.export.ExportedProgram | loaded SavedModel
    signature: Signature  # named inputs and outputs (outputs filled by describe_outputs)
    task: str | None = None  # classification | embedding | regression (None: inferred from the signature)
    preprocessing: dict = field(default_factory=lambda: {"kind": "tensor"})  # how raw data becomes each input
    default_data: str | None = None  # a named data set that fits the model (probe and calibration)
    saved_model_dir: Path | None = None  # set when the source is a SavedModel directory
    weights: str | None = None  # absolute path of --weights, when given
    notes: list[str] = field(default_factory=list)  # what edgeport fixed or assumed (shown and recorded)
    extras: dict = field(default_factory=dict)

    def torch_module(self):
        """The nn.Module to call: the model itself, or the module of an ExportedProgram (.pt2), in eval mode.

        An exported graph was captured in one mode: its module refuses .train() / .eval() ("not supported yet").
        It is moved to eval once here (batch norm and dropout patterns), and both calls become no-ops on it, so that
        every converter can treat it as any module."""
        if not hasattr(self.model, "graph_signature"):
            return self.model
        if self.extras.get("exported_module") is None:
            import types

            try:
                from torchao.quantization.pt2e import move_exported_model_to_eval
            except ImportError:  # torch's own copy (older torch, no torchao)
                from torch.ao.quantization import move_exported_model_to_eval

            m = move_exported_model_to_eval(self.model.module())
            m.train = types.MethodType(lambda self, mode=True: self, m)
            m.eval = types.MethodType(lambda self: self, m)
            self.extras["exported_module"] = m
        return self.extras["exported_module"]

    def example(self) -> dict[str, np.ndarray]:
        """A batch-1 example of zeros/ones in the model's dtypes (only for tracing; never for parity)."""
        out = {}
        for s in self.signature.inputs:
            fill = 1 if s.role == "attention_mask" else 0
            out[s.name] = np.full(s.shape, fill, dtype=np.dtype(s.dtype if s.dtype != "bool" else bool))
        return out

    # ----------------------------------------------------------------------------------------- running
    def _call(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The float model on ``feeds``; its own failure (a wrong --input, token ids past the vocabulary) is the
        user's to fix, so it is an InputError naming the inputs, not a traceback."""
        try:
            return self._forward(feeds)
        except (EdgeportError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - whatever the user's forward raises
            raise InputError(f"{self.model_id}: the model failed when called with {self.signature.describe_inputs()}:"
                             f" {type(e).__name__}: {one_line(e, 200)}; check --input (names, shapes, dtypes) and that"
                             " the data fits the model (e.g. token ids below the vocabulary size)") from None

    def _forward(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.signature.input_names
        if self.framework == "torch":
            import torch

            mod = self.torch_module()
            with torch.no_grad():
                res = mod(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
            return flatten_outputs(res)
        if self.saved_model_dir is not None:
            import tensorflow as tf

            fn = self.model.signatures["serving_default"]
            res = fn(**{n: tf.constant(feeds[n]) for n in names})
            return {k: np.asarray(res[k]) for k in sorted(res)}
        inp = feeds[names[0]] if len(names) == 1 else [feeds[n] for n in names]
        return flatten_outputs(self.model(inp, training=False))

    def float_outputs(self, feeds: dict[str, np.ndarray], batch: int | None = None) -> dict[str, np.ndarray]:
        """Outputs of the float original, {output name: (N, ...)}; batch-1 calls when the model is pinned to it."""
        n = len(next(iter(feeds.values())))
        step = batch or (1 if self.extras.get("batch1") else 32)
        parts = [self._call({k: v[i : i + step] for k, v in feeds.items()}) for i in range(0, n, step)]
        names = self.signature.output_names or list(parts[0])
        out = {}
        for i, name in enumerate(names):
            key = name if name in parts[0] else list(parts[0])[i]
            out[name] = np.concatenate([np.asarray(p[key]) for p in parts]).astype(np.float32)
        return out

    def describe_outputs(self, labels: list[str] | None = None, role: str | None = None) -> None:
        """Run the example once and name every output (tuple -> output_0.., dict -> its keys)."""
        if self.signature.outputs:
            return
        res = self._call(self.example())
        keras_names = list(getattr(self.model, "output_names", None) or []) if self.framework == "keras" else []
        if self.saved_model_dir is None and len(keras_names) == len(res) and len(set(keras_names)) == len(res):
            res = dict(zip(keras_names, res.values()))  # Keras names its outputs by their layers
        check_batch_axis(res, self.example())
        outs = []
        for i, (k, v) in enumerate(res.items()):
            v = np.asarray(v)
            r = role if (role and i == 0) else "tensor"
            outs.append(TensorSpec(k, dtype_name(v.dtype) if v.dtype != np.float64 else "float32", tuple(int(d) for d in v.shape)
                                   or (1,), r, labels=labels if i == 0 else None))
        self.signature = Signature(self.signature.inputs, tuple(outs))


def check_batch_axis(outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> None:
    """Every output must carry the inputs' batch axis first: edgeport runs samples one batch at a time and stacks each
    output on axis 0. An output without it (a torchvision detector's list of per-image dicts, a squeezed vector, a
    sequence-first RNN) would convert and then misalign every row, so it is refused here, in one line."""
    batch = next((v.shape[0] for v in feeds.values() if np.ndim(v) >= 1), None)
    if batch is None:
        return
    for name, v in outputs.items():
        shape = tuple(np.shape(v))
        if shape and shape[0] != batch:
            raise InputError(
                f"output '{name}' has shape {shape} for a batch of {batch}: its first axis is not the batch, so rows"
                f" cannot be stacked or compared per sample; return tensors with the batch axis first (a detector: its"
                f" raw boxes and scores as (batch, ...) tensors, with NMS and per-image lists left to the app)")


def flatten_outputs(res) -> dict[str, np.ndarray]:
    """Tensor -> {"output": ...}; tuple/list -> output_0, output_1 ...; dict / ModelOutput -> its keys (nested keys
    joined with '.'), in the order torch.export flattens them."""
    out: dict[str, np.ndarray] = {}

    def conv(path: str, v):
        if hasattr(v, "detach"):
            return v.detach().cpu().numpy()
        if not isinstance(v, (np.ndarray, np.generic, int, float, bool)) and not hasattr(v, "numpy"):
            check_output(path, v)  # a cache or custom object: one line naming it, not "dtype object" later
        return np.asarray(v)

    def walk(prefix: str, v):
        if isinstance(v, dict) or (hasattr(v, "keys") and hasattr(v, "values") and not hasattr(v, "shape")):
            for k in v.keys():
                if v[k] is not None:
                    walk(f"{prefix}.{k}" if prefix else str(k), v[k])
        elif isinstance(v, (tuple, list)):
            for i, x in enumerate(v):
                if x is not None:
                    walk(f"{prefix}_{i}" if prefix else f"output_{i}", x)
        else:
            out[prefix or "output"] = conv(prefix or "output", v)

    walk("", res)
    return out


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-.") or "model"


def _need_file(p: Path, what: str, fix: str) -> None:
    if not p.exists():
        raise InputError(f"{what} not found: {p}; {fix}")


def import_modules(modules: list[str] | tuple[str, ...]) -> None:
    """--import MODULE: user code (Keras custom layers, model factories) imported before loading."""
    if "" not in sys.path:
        sys.path.insert(0, "")
    for name in modules or ():
        try:
            importlib.import_module(name)
        except Exception as e:
            raise InputError(f"--import {name}: could not import ({one_line(e, 200)}); make it importable (PYTHONPATH)") from None


def load_source(spec: Any, *, weights: str | None = None, inputs: list[TensorSpec] | None = None,
                task: str | None = None, imports: list[str] | None = None, name: str | None = None) -> Source:
    """Resolve a --model spec (or an in-memory keras.Model / torch.nn.Module with ``inputs``) into a Source."""
    from .registry import builtin_sources, source_loader

    import_modules(imports or [])
    if not isinstance(spec, str):
        src = _load_object(spec, inputs, name)
    elif (loader := source_loader(spec)) is not None:
        src = loader(spec)
    elif spec.startswith("builtin:"):
        raise InputError(f"unknown built-in model {spec!r}; known: {', '.join(builtin_sources())}")
    else:
        src = _load_path(spec, weights, inputs)
    if task:
        src.task = task
    if name:
        src.name = _safe_name(name)
    src.describe_outputs()
    return src


def _load_path(spec: str, weights: str | None, inputs) -> Source:
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
        return _load_torch_factory(spec, weights, inputs)
    if spec.endswith((".h5", ".pt", ".pth", ".onnx", ".tflite")) and not p.exists():
        _need_file(p, "model file", "check the path")
    raise InputError(
        f"cannot tell what model {spec!r} is; pass a .keras file, a SavedModel folder, a .pt2, "
        f"'package.module:factory' (with --input, and --weights unless the factory loads its own), or a builtin:* model"
    )


def _keras_signature(model, where: str) -> Signature:
    ins = []
    for t in model.inputs:
        shape = tuple(t.shape)
        if any(d is None for d in shape[1:]):
            raise UnsupportedError(f"{where}: input {t.name!r} has unknown dimensions {shape}; give the model a fixed"
                                   " keras.Input shape")
        ins.append(make_input(t.name.split(":")[0], dtype_name(t.dtype), (1, *shape[1:])))
    return Signature(tuple(ins))


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
                f"{p}: uses custom layer {m.group(1)!r}, which is not registered; pass --import MODULE naming the module"
                " that defines it (decorated with @keras.saving.register_keras_serializable), or export a SavedModel"
            ) from None
        raise InputError(f"{p}: could not load Keras model ({msg}); re-save it with model.save('model.keras')") from None
    p = p.resolve()
    return Source("keras", str(p), _safe_name(p.stem), sha256_file(p), model, _keras_signature(model, str(p)))


def _load_saved_model(p: Path) -> Source:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(p))
        fn = loaded.signatures["serving_default"]
    except Exception as e:
        raise InputError(f"{p}: could not load SavedModel ({one_line(e)}); export it with model.export() or tf.saved_model.save") from None
    ins, notes = [], []
    for name, spec in sorted(fn.structured_input_signature[1].items()):
        shape = tuple(spec.shape)
        if any(d is None for d in shape[1:]):
            raise UnsupportedError(f"{p}: input {name!r} has unknown dimensions {shape}; export with a fixed input shape")
        if shape and shape[0] is None:
            notes.append(f"input {name!r}: dynamic batch pinned to 1")
        ins.append(make_input(name, dtype_name(spec.dtype.name), (1, *shape[1:])))
    outs = []
    for name, spec in sorted(fn.structured_outputs.items()):
        shape = tuple(1 if d is None else d for d in spec.shape)
        outs.append(TensorSpec(name, dtype_name(spec.dtype.name), shape or (1,)))
    p = p.resolve()
    return Source("keras", str(p), _safe_name(p.name), sha256_file(p / "saved_model.pb"), loaded,
                  Signature(tuple(ins), tuple(outs)), saved_model_dir=p, notes=notes)


def _load_pt2(p: Path) -> Source:
    import torch

    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        raise InputError(f"{p}: could not load exported program ({one_line(e)}); write it with torch.export.save") from None
    args = ep.example_inputs[0] if ep.example_inputs else None
    if not args:
        raise InputError(f"{p}: exported program has no example inputs; export it with example args")
    names = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    names = names if len(names) == len(args) else [f"input_{i}" for i in range(len(args))]
    ins, notes = [], []
    for n, a in zip(names, args):
        shape = tuple(int(d) for d in a.shape)
        if shape and shape[0] != 1:
            notes.append(f"input {n!r}: example batch {shape[0]} pinned to 1")
            shape = (1, *shape[1:])
        ins.append(make_input(n, dtype_name(a.dtype), shape))
    dyn = [str(s) for a in args for s in a.shape if not isinstance(s, int)]
    if dyn or any("s" in str(v.meta.get("val", "")).lower() and False for v in ep.graph.nodes):
        notes.append("dynamic dimensions fixed to the example's sizes")
    p = p.resolve()
    return Source("torch", str(p), _safe_name(p.stem), sha256_file(p), ep, Signature(tuple(ins)),
                  notes=notes, extras={"batch1": True})


def _object_hash(model) -> str:
    import hashlib

    h = hashlib.sha256()
    try:
        if hasattr(model, "state_dict"):
            for k, v in sorted(model.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().numpy().tobytes())
        else:
            for w in model.weights:
                h.update(w.path.encode() if hasattr(w, "path") else b"")
                h.update(np.asarray(w).tobytes())
    except Exception:
        h.update(repr(model).encode())
    return "in-memory:" + h.hexdigest()


def _load_object(model, inputs, name: str | None) -> Source:
    """An in-memory keras.Model or torch.nn.Module (the Python API and the pytest plugin)."""
    mod = type(model).__module__
    if mod.startswith(("keras", "tf_keras", "tensorflow")) or hasattr(model, "inputs") and hasattr(model, "export"):
        sig = Signature(tuple(inputs)) if inputs else _keras_signature(model, type(model).__name__)
        sha = _object_hash(model)
        return Source("keras", f"python:{type(model).__name__}@{sha[-8:]}", _safe_name(name or getattr(model, "name", "model")),
                      sha, model, sig)
    import torch

    if isinstance(model, torch.nn.Module):
        if not inputs:
            raise InputError(f"{type(model).__name__}: a PyTorch model needs its inputs, e.g."
                             " inputs=[parse_input_spec('x:float32[1,3,32,32]')]")
        model.eval()
        sha = _object_hash(model)
        cls = type(model).__name__
        model, note = bind_inputs(model, [s.name for s in inputs], cls)
        return Source("torch", f"python:{cls}@{sha[-8:]}", _safe_name(name or cls.lower()),
                      sha, model, Signature(tuple(inputs)), notes=[note] if note else [])
    raise InputError(f"cannot convert a {type(model).__name__}; pass a keras.Model, a torch.nn.Module or a model path")


def _load_torch_factory(spec: str, weights: str | None, inputs) -> Source:
    import torch

    mod_name, fn_name = spec.split(":")
    if not inputs:
        raise InputError(f"{spec}: a PyTorch model needs its inputs: --input NAME:DTYPE[D0,...] (repeatable), e.g."
                         " --input x:float32[1,3,96,96], or --input-shape 1,3,96,96 for one float input")
    try:
        if "" not in sys.path:
            sys.path.insert(0, "")
        factory = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise InputError(f"cannot import {spec} ({one_line(e)}); make the module importable (PYTHONPATH) and check the name") from None
    try:
        model = factory()
    except Exception as e:
        raise InputError(f"{spec}() raised {type(e).__name__}: {one_line(e, 200)}; fix the factory so it builds the model") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module; the factory must build the model")
    sha = _object_hash(model)
    if weights:
        wp = Path(weights)
        _need_file(wp, "weights file", "pass an existing .safetensors or .pt state dict")
        if wp.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                state = load_file(str(wp))
            except Exception as e:
                raise InputError(f"{wp}: not a readable safetensors file ({one_line(e, 120)}); save with safetensors.torch.save_file") from None
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
        res = model.load_state_dict(state, strict=False)
        bad = [f"missing {k}" for k in res.missing_keys] + [f"unexpected {k}" for k in res.unexpected_keys]
        if bad:
            more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
            raise InputError(f"{wp}: weights do not fit {spec} ({', '.join(bad[:6])}{more}); check the factory and"
                             " weights match") from None
        sha = sha256_file(wp)
        weights = str(wp.resolve())
    model.eval()
    model, note = bind_inputs(model, [s.name for s in inputs], spec)
    return Source("torch", spec, _safe_name(fn_name if fn_name not in ("build", "create", "model") else mod_name.split(".")[-1]),
                  sha, model, Signature(tuple(inputs)), weights=weights, notes=[note] if note else [])


def parse_shape(text: str | None) -> TensorSpec | None:
    """--input-shape 1,3,96,96: the short form for one float32 input named 'x'."""
    if not text:
        return None
    try:
        shape = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise InputError(f"--input-shape {text!r} is not a list of integers; write it like 1,3,96,96") from None
    if not shape or any(d <= 0 for d in shape):
        raise InputError(f"--input-shape {text!r} must be positive integers, like 1,3,96,96")
    return make_input("x", "float32", shape)
