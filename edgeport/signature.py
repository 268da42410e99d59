"""The named-tensor I/O contract: every input and output of a model has a name, dtype, shape and role.

A model's :class:`Signature` flows from the source through the converters, the manifest, the runners, the worker,
the browser page and the report. Runners take ``{name: array}`` and return ``{name: array}``.

Example::

    >>> parse_input_spec("input_ids:int64[1,128]")
    TensorSpec(name='input_ids', dtype='int64', shape=(1, 128), role='token_ids', ...)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .errors import InputError

DTYPES = ("float32", "float16", "int32", "int64", "uint8", "int8", "bool")
INPUT_ROLES = ("image", "token_ids", "attention_mask", "token_type_ids", "tensor")
OUTPUT_ROLES = ("logits", "embedding", "tensor")

# Input names that say what an integer input is (Hugging Face conventions).
_ROLE_BY_NAME = {"input_ids": "token_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"}


@dataclass(frozen=True)
class TensorSpec:
    name: str  # the source model's own name for the tensor (Keras input name, forward() argument, output key)
    dtype: str  # one of DTYPES
    shape: tuple[int, ...]  # fixed shape with batch 1
    role: str = "tensor"  # inputs: INPUT_ROLES; outputs: OUTPUT_ROLES
    layout: str | None = None  # NCHW | NHWC for images
    quantization: dict | None = None  # {scale, zero_point} when the artifact's I/O is integer-quantized
    labels: list[str] | None = None  # class names of a classification output
    binding: str | int | None = None  # the artifact's own name or position for this tensor (set by the converter)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise InputError(f"tensor {self.name!r}: dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
        if any((not isinstance(d, (int, np.integer))) or d <= 0 for d in self.shape):
            raise InputError(f"tensor {self.name!r}: shape {list(self.shape)} must be positive integers (batch 1 first)")

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float16")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        known = set(cls.__dataclass_fields__)
        d = {k: v for k, v in d.items() if k in known}
        d["shape"] = tuple(int(s) for s in d.get("shape", ()))
        return cls(**d)

    def with_(self, **kw) -> "TensorSpec":
        return replace(self, **kw)


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, d: dict) -> "Signature":
        return cls(tuple(TensorSpec.from_dict(t) for t in d.get("inputs", [])),
                   tuple(TensorSpec.from_dict(t) for t in d.get("outputs", [])))

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    def describe_inputs(self) -> str:
        return ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in self.inputs)

    def describe_outputs(self) -> str:
        return ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in self.outputs)

    @property
    def single_image(self) -> TensorSpec | None:
        """The one image input of a single-input image model, else None."""
        return self.inputs[0] if len(self.inputs) == 1 and self.inputs[0].role == "image" else None


def guess_role(name: str, dtype: str, shape: tuple[int, ...]) -> str:
    """What an input is, from its name, dtype and rank (recorded in the manifest; a user can always say --input)."""
    if name in _ROLE_BY_NAME:
        return _ROLE_BY_NAME[name]
    if dtype in ("float32", "float16") and len(shape) == 4 and (shape[1] in (1, 3, 4) or shape[3] in (1, 3, 4)):
        return "image"
    if dtype in ("int32", "int64") and len(shape) == 2 and ("id" in name.lower() or "token" in name.lower()):
        return "token_ids"
    return "tensor"


def image_layout(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 4:
        return None
    if shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
        return "NCHW"
    if shape[3] in (1, 3, 4):
        return "NHWC"
    return "NCHW"


def make_input(name: str, dtype: str, shape: tuple[int, ...], role: str | None = None) -> TensorSpec:
    role = role or guess_role(name, dtype, shape)
    return TensorSpec(name, dtype, tuple(int(d) for d in shape), role, image_layout(shape) if role == "image" else None)


_SPEC = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*:\s*([a-z0-9]+)\s*\[\s*([0-9,\sx]*)\]\s*$")


def parse_input_spec(text: str) -> TensorSpec:
    """``NAME:DTYPE[D0,D1,...]`` -> TensorSpec, e.g. ``input_ids:int64[1,128]`` or ``image:float32[1,3,224,224]``."""
    m = _SPEC.match(text or "")
    if not m:
        raise InputError(f"--input {text!r} is not NAME:DTYPE[D0,D1,...]; write e.g. --input input_ids:int64[1,128]")
    name, dtype, dims = m.groups()
    if dtype not in DTYPES:
        raise InputError(f"--input {text!r}: dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    try:
        shape = tuple(int(d) for d in re.split(r"[,x\s]+", dims.strip()) if d)
    except ValueError:
        raise InputError(f"--input {text!r}: dimensions must be integers, like [1,128]") from None
    if not shape or any(d <= 0 for d in shape):
        raise InputError(f"--input {text!r}: dimensions must be positive integers with batch first, like [1,128]")
    return make_input(name, dtype, shape)


def numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype(bool) if dtype == "bool" else np.dtype(dtype)


def dtype_name(dt) -> str:
    """numpy / torch / tf dtype -> one of DTYPES (raises InputError for the rest)."""
    s = str(dt).replace("torch.", "").replace("<dtype: '", "").replace("'>", "")
    s = {"float": "float32", "long": "int64", "int": "int32", "half": "float16", "bool_": "bool"}.get(s, s)
    if s not in DTYPES:
        raise InputError(f"tensor dtype {dt} is not supported; use one of {', '.join(DTYPES)}")
    return s
