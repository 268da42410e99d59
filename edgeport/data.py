"""Data sets: builtin:digits (scikit-learn's handwritten digits) and user .npz files.

Images travel as uint8 28x28 grayscale ("raw pixels", ink high). The manifest's preprocessing turns raw
pixels into the model input: ``x = pixels * scale + offset`` then the layout (NCHW or NHWC) is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import defaults
from .errors import CalibrationError, InputError

BUILTIN_DIGITS = "builtin:digits"
IMAGE_SIZE = 28


@dataclass(frozen=True)
class Split:
    """A data split. ``pixels`` are uint8 (N, 28, 28) for the built-in set, or None for user .npz data,
    where ``x`` is already in the model's input layout."""

    x: np.ndarray  # float32 model-ready batch, canonical (N, 28, 28) for builtin data
    y: np.ndarray | None  # int64 labels, or None (calibration data)
    pixels: np.ndarray | None = None
    name: str = ""


def _upsample(images8: np.ndarray) -> np.ndarray:
    from scipy.ndimage import zoom

    out = np.stack([zoom(im, IMAGE_SIZE / 8, order=1, mode="nearest", grid_mode=True) for im in images8])
    return out


@lru_cache(maxsize=1)
def _digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float64) / 16.0
    up = np.clip(_upsample(images), 0.0, 1.0)
    pixels = np.round(up * 255.0).astype(np.uint8)
    return pixels, d.target.astype(np.int64)


@lru_cache(maxsize=1)
def _digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    _, y = _digits_pixels()
    idx = np.arange(len(y))
    train, held = train_test_split(
        idx, test_size=defaults.HELDOUT_FRACTION, random_state=defaults.SEED, stratify=y
    )
    return np.sort(train), np.sort(held)


def pixels_to_input(pixels: np.ndarray, scale: float = 1.0 / 255.0, offset: float = 0.0) -> np.ndarray:
    """The preprocessing every runner applies (native and browser): float32(pixels) * scale + offset."""
    return pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)


def digits(split: str) -> Split:
    """builtin:digits split: 'train' (1,437) or 'heldout' (360); fixed and seeded, the same everywhere."""
    pixels, y = _digits_pixels()
    train, held = _digits_split_indices()
    idx = {"train": train, "heldout": held}[split]
    px = pixels[idx]
    return Split(x=px.astype(np.float32) / np.float32(255.0), y=y[idx], pixels=px, name=f"{BUILTIN_DIGITS}:{split}")


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """(N, H, W) canonical images -> model layout. Arrays already 4-D are returned as they are."""
    if x.ndim == 4:
        return x
    if layout == "NCHW":
        return x[:, None, :, :]
    if layout == "NHWC":
        return x[:, :, :, None]
    raise InputError(f"unknown layout {layout!r}; use NCHW or NHWC")


def probe_indices(n: int = defaults.PROBE_SAMPLES) -> list[int]:
    """A fixed, seeded probe batch: positions inside the held-out split."""
    held = digits("heldout")
    rng = np.random.default_rng(defaults.SEED)
    return sorted(rng.choice(len(held.y), size=min(n, len(held.y)), replace=False).tolist())


def load_npz(path: str | Path, *, need_labels: bool) -> Split:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}; pass an existing .npz with array 'x'"
                         + (" and 'y'" if need_labels else "") + f" or use {BUILTIN_DIGITS}")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "x" not in z.files:
                raise InputError(f"{p}: no array 'x' (found: {', '.join(z.files) or 'none'}); save with np.savez(path, x=...)")
            x = np.asarray(z["x"])
            y = np.asarray(z["y"]).astype(np.int64) if "y" in z.files else None
    except InputError:
        raise
    except Exception as e:  # corrupt zip, pickled object arrays, ...
        raise InputError(f"{p}: not a readable .npz ({type(e).__name__}); write it with numpy.savez") from None
    if need_labels and y is None:
        raise InputError(f"{p}: no array 'y' of labels; evaluation data needs x and y")
    if y is not None and len(y) != len(x):
        raise InputError(f"{p}: x has {len(x)} samples but y has {len(y)}; they must match")
    return Split(x=x.astype(np.float32), y=y, name=str(p))


def calibration_set(spec: str | None, input_shape: tuple[int, ...], layout: str, n: int = defaults.CALIB_SAMPLES) -> np.ndarray:
    """Representative set for static quantization, validated against the model's input shape."""
    if spec in (None, BUILTIN_DIGITS):
        train = digits("train")
        x = to_layout(train.x[:n], layout)
        source = f"{BUILTIN_DIGITS} (first {n} training samples)"
    else:
        x = load_npz(spec, need_labels=False).x
        source = spec
    validate_batch(x, input_shape, source, what="calibration data", exc=CalibrationError)
    return x


def validate_batch(x: np.ndarray, input_shape: tuple[int, ...], source: str, *, what: str, exc=InputError) -> None:
    want = tuple(int(d) for d in input_shape[1:])
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != want:
        raise exc(
            f"{what} {source} has sample shape {tuple(x.shape[1:])}, but the model takes {want}"
            f" (batch shape {(None, *want)}); save x as an array of shape (N, {', '.join(map(str, want))})"
        )
    if len(x) == 0:
        raise exc(f"{what} {source} is empty; give at least one sample")
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise exc(f"{what} {source} holds {bad} NaN/Inf value(s); clean or drop those samples")


def is_builtin(spec: str | None) -> bool:
    return spec in (None, BUILTIN_DIGITS)


def shifted_training_set(shift: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Training split plus copies shifted by +-shift pixels on each axis: cheap, deterministic augmentation
    that lifts held-out accuracy of the tiny CNNs from about 96% to about 98.5%."""
    tr = digits("train")
    xs, ys = [tr.x], [tr.y]
    for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
        xs.append(np.roll(np.roll(tr.x, dy, axis=1), dx, axis=2))
        ys.append(tr.y)
    return np.concatenate(xs), np.concatenate(ys)
