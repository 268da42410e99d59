"""What an artifact actually holds: its stored constants counted by dtype, read back from the file after conversion.

A recipe says what it should do ("weights int8 per channel"); this says what it did: bytes and tensors per stored
dtype, weight tensors (rank >= 2: kernels, matrices, embedding tables) stored quantized against kept float, and
bytes stored more than once (the same data under two constants, e.g. a tied embedding and output layer).

Each target plugin registers a reader for its format (``@weights_reader("tflite")``) that lists the stored
constants as :class:`Stored`; :func:`count` turns them into the manifest's ``weights`` block.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import one_line

QUANTIZED = ("int8", "uint8", "int4", "uint4", "int16", "uint16")  # stored weight dtypes that count as quantized
FLOAT = ("fp32", "fp16", "bf16", "fp64")


@dataclass(frozen=True)
class Stored:
    """One constant as the artifact stores it."""

    dtype: str  # fp32 | fp16 | bf16 | int8 | uint8 | int4 | int16 | int32 | int64 | ... (as stored, not as computed)
    nbytes: int  # bytes of data in the file
    rank: int  # dimensions: rank >= 2 is a weight (kernel, matrix, table); biases, scales and shapes are not
    digest: str | None = None  # content hash of the stored bytes; equal digests in distinct storage are duplicates
    key: object = None  # the storage it lives in (a buffer index): tensors sharing one storage are counted once


_READERS: dict[str, Callable[[Path], Iterable[Stored]]] = {}


def weights_reader(target: str):
    """Register ``fn(entry path) -> iterable of Stored`` as the reader of ``target``'s artifacts."""

    def deco(fn):
        _READERS[target] = fn
        return fn

    return deco


def digest(data) -> str:
    return hashlib.sha256(memoryview(data).cast("B") if not isinstance(data, bytes) else data).hexdigest()


def summarize(stored: Iterable[Stored]) -> dict:
    """The manifest's ``weights`` block from the stored constants."""
    by_key: dict = {}
    for s in stored:
        k = s.key if s.key is not None else id(s)
        by_key.setdefault(k, s)  # a storage shared by several tensors holds its bytes once
    bytes_by, count_by, seen = {}, {}, {}
    quantized = floating = duplicated = 0
    for s in by_key.values():
        bytes_by[s.dtype] = bytes_by.get(s.dtype, 0) + s.nbytes
        count_by[s.dtype] = count_by.get(s.dtype, 0) + 1
        if s.rank >= 2:
            quantized += s.dtype in QUANTIZED
            floating += s.dtype in FLOAT
        if s.digest and s.nbytes >= 64:  # tiny constants (shapes, zero points) repeat by nature
            if s.digest in seen:
                duplicated += s.nbytes
            seen[s.digest] = True
    total = sum(bytes_by.values())
    float_bytes = sum(v for k, v in bytes_by.items() if k in FLOAT)
    return {"bytes_by_dtype": dict(sorted(bytes_by.items(), key=lambda kv: -kv[1])),
            "tensors_by_dtype": dict(sorted(count_by.items(), key=lambda kv: -kv[1])),
            "quantized_layers": int(quantized), "float_layers": int(floating), "duplicated_bytes": int(duplicated),
            "total_bytes": int(total), "float_share": round(float_bytes / total, 4) if total else None,
            "how": "read back from the artifact after conversion"}


def count(target: str, entry: Path) -> dict | None:
    """The ``weights`` block of an artifact (None when its target registered no reader). A reader that fails
    records why instead: counting must never cost a conversion."""
    fn = _READERS.get(target)
    if fn is None:
        return None
    try:
        return summarize(fn(Path(entry)))
    except Exception as e:  # noqa: BLE001 - a format detail we cannot read is a note, not a failed artifact
        return {"error": f"could not read the stored constants: {type(e).__name__}: {one_line(e, 200)}"}


def short(w: dict | None) -> str:
    """"int8 61.2K, fp32 1.3K; 3 int8 / 1 float layers" for a table cell."""
    if not w or "bytes_by_dtype" not in w:
        return "-" if not w else "unreadable"

    def k(n):
        return f"{n / 2**20:.1f}M" if n >= 2**20 else f"{n / 1024:.1f}K" if n >= 1024 else f"{n}B"

    parts = ", ".join(f"{d} {k(n)}" for d, n in w["bytes_by_dtype"].items() if n)
    layers = f"; {w['quantized_layers']} quantized / {w['float_layers']} float layers"
    dup = f"; {k(w['duplicated_bytes'])} stored twice" if w.get("duplicated_bytes") else ""
    return (parts or "no constants") + layers + dup


def warnings(manifests) -> list[str]:
    """Quantized artifacts that are not what their recipe promises: not smaller than the fp32 artifact of the same
    model and target, or holding most of their weight bytes in float; and any artifact storing data twice."""
    fp32 = {(m.source["model"], m.target): m for m in manifests if m.recipe == "fp32"}
    out = []
    for m in manifests:
        w = getattr(m, "weights", None) or {}
        if "bytes_by_dtype" in w and w.get("duplicated_bytes", 0) >= 1024:
            out.append(f"{m.name}: {w['duplicated_bytes']:,} B of constants are stored more than once")
        if m.recipe in ("fp32", "fp16", "uint16"):
            continue
        base = fp32.get((m.source["model"], m.target))
        if base is not None and m.total_bytes >= base.total_bytes:
            out.append(f"{m.name}: {m.recipe} is not smaller than fp32 ({m.total_bytes:,} B against"
                       f" {base.total_bytes:,} B)")
        if w.get("float_share") is not None and w["float_share"] > 0.5:
            out.append(f"{m.name}: {100 * w['float_share']:.0f}% of its {w['total_bytes']:,} weight bytes stay float"
                       f" ({w['float_layers']} float against {w['quantized_layers']} quantized layers)")
    return out
