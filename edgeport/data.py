"""Data sets and how they become a model's named inputs.

A :class:`Dataset` holds raw data in one of three kinds:
- ``pixels``: uint8 images (N, H, W) or (N, H, W, C); the manifest's image preprocessing makes the input tensor;
- ``text``: sentences; the manifest's text preprocessing (tokenizer file, max length, padding) makes the inputs;
- ``tensors``: model-ready arrays, one per input name (a single-input model also accepts ``x``).
Labels ``y`` are optional. Named sets (``builtin:digits``, ``builtin:sentences``) come from the dataset registry;
anything else is an ``.npz`` file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import defaults
from .errors import CalibrationError, InputError
from .signature import Signature, numpy_dtype


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # pixels | text | tensors
    pixels: np.ndarray | None = None
    texts: tuple[str, ...] | None = None
    tensors: dict[str, np.ndarray] | None = None
    y: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        if self.kind == "pixels":
            return len(self.pixels)
        if self.kind == "text":
            return len(self.texts)
        return len(next(iter(self.tensors.values())))

    def take(self, idx, suffix: str = "") -> "Dataset":
        idx = np.asarray(idx, dtype=np.int64)
        return replace(
            self, name=self.name + suffix,
            pixels=None if self.pixels is None else self.pixels[idx],
            texts=None if self.texts is None else tuple(self.texts[i] for i in idx),
            tensors=None if self.tensors is None else {k: v[idx] for k, v in self.tensors.items()},
            y=None if self.y is None else self.y[idx],
        )


# The data spec "the artifact's own probe rows (its sidecar)": what evaluate measures a model with no --data and no
# default set on, natively and in the page alike.
PROBE_SPEC = "probe:"


def is_named(spec: str | None) -> bool:
    return bool(spec) and spec.startswith("builtin:")


def load_dataset(spec: str, split: str = "heldout") -> Dataset:
    """A named set (its ``split``: train | heldout) or an .npz file (all of it)."""
    from .registry import dataset_loader

    if is_named(spec):
        return dataset_loader(spec)(split)
    return load_npz(spec)


def npz_labels(path: str | Path) -> np.ndarray | None:
    """Only the labels ``y`` of an .npz (npz members load one at a time: the inputs stay on disk); None when it has
    none or cannot be read (loading it for real, later, says why)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["y"]) if "y" in z.files else None
    except Exception:  # noqa: BLE001 - missing, corrupt: load_npz's one-line error comes with the real load
        return None


def load_npz(path: str | Path) -> Dataset:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}; pass an existing .npz with one array per model input (or x) and"
                         " optional labels y")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # corrupt zip, pickled object arrays, ...
        raise InputError(f"{p}: not a readable .npz ({type(e).__name__}); write it with numpy.savez") from None
    y = arrays.pop("y", None)
    if not arrays:
        raise InputError(f"{p}: holds no input arrays (found: {', '.join(sorted(arrays)) or 'none'}); save one array per"
                         " model input, e.g. np.savez(path, input_ids=..., attention_mask=..., y=...)")
    for k, v in arrays.items():
        if v.ndim == 0:
            raise InputError(f"{p}: array {k!r} is a scalar; save an array with the sample axis first, shape (N, ...)")
    lens = {k: len(v) for k, v in arrays.items()}
    if len(set(lens.values())) > 1:
        raise InputError(f"{p}: arrays have different sample counts {lens}; every input needs the same N")
    n = next(iter(lens.values()))
    if n == 0:
        raise InputError(f"{p}: holds 0 samples; give at least one")
    if y is not None:
        if y.ndim != 1 or len(y) != n:
            raise InputError(f"{p}: y has shape {y.shape} but the inputs have {n} samples; save y as (N,) integer labels")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise InputError(f"{p}: y holds non-integer values; labels must be integer class indices")
        elif y.dtype.kind not in "iub":
            raise InputError(f"{p}: y has dtype {y.dtype}; labels must be integer class indices")
        y = y.astype(np.int64)
    return Dataset(str(p), "tensors", tensors=arrays, y=y)


def model_inputs(ds: Dataset, sig: Signature, preprocessing: dict, *, root: Path | None = None,
                 what: str = "data", exc=InputError) -> dict[str, np.ndarray]:
    """Raw data -> {input name: (N, ...) array} in the model's dtypes, by the manifest's preprocessing."""
    kind = (preprocessing or {}).get("kind", "tensor")
    if ds.kind == "tensors":
        feeds = _match_tensors(ds, sig, what, exc)
    elif ds.kind == "pixels":
        img = sig.single_image
        if kind != "image" or img is None:
            raise exc(f"{what} {ds.name} holds images, but the model takes {sig.describe_inputs()}"
                      f" (preprocessing: {kind}); pass an .npz with one array per input")
        feeds = {img.name: pixels_to_input(ds.pixels, preprocessing, img.layout or "NHWC")}
    elif ds.kind == "text":
        if kind != "text":
            raise exc(f"{what} {ds.name} holds sentences, but the model takes {sig.describe_inputs()} without a tokenizer;"
                      " pass an .npz of token arrays instead")
        feeds = tokenize(list(ds.texts), preprocessing, root=root)
        feeds = {s.name: feeds[s.name] for s in sig.inputs if s.name in feeds}
    else:
        raise exc(f"{what} {ds.name}: unknown data kind {ds.kind!r}")
    return _check_fit(feeds, sig, ds.name, what, exc)


def _match_tensors(ds: Dataset, sig: Signature, what: str, exc) -> dict[str, np.ndarray]:
    t = ds.tensors
    if len(sig.inputs) == 1 and sig.inputs[0].name not in t and "x" in t:
        return {sig.inputs[0].name: t["x"]}
    missing = [s.name for s in sig.inputs if s.name not in t]
    if missing:
        raise exc(f"{what} {ds.name} lacks array(s) {', '.join(map(repr, missing))} (has: {', '.join(sorted(t))});"
                  f" the model takes {sig.describe_inputs()}; save one array per input name")
    return {s.name: t[s.name] for s in sig.inputs}


def _check_fit(feeds: dict[str, np.ndarray], sig: Signature, source: str, what: str, exc) -> dict[str, np.ndarray]:
    out = {}
    for s in sig.inputs:
        x = np.asarray(feeds[s.name])
        if x.ndim != len(s.shape) or tuple(x.shape[1:]) != tuple(s.shape[1:]):
            raise exc(f"{what} {source}: array {s.name!r} has sample shape {tuple(x.shape[1:])}, but the model takes"
                      f" {tuple(s.shape[1:])}; save it as shape (N, {', '.join(map(str, s.shape[1:]))})")
        if len(x) == 0:
            raise exc(f"{what} {source}: array {s.name!r} is empty; give at least one sample")
        quantized_io = s.quantization and x.dtype.kind == "f"
        if s.is_float or quantized_io:
            if x.dtype.kind not in "fiub":
                raise exc(f"{what} {source}: array {s.name!r} has dtype {x.dtype}; the model takes {s.dtype}")
            x = x.astype(np.float32)
            if not np.all(np.isfinite(x)):
                bad = int(x.size - np.count_nonzero(np.isfinite(x)))
                raise exc(f"{what} {source}: array {s.name!r} holds {bad} NaN/Inf value(s); clean or drop those samples")
        else:
            if x.dtype.kind == "f" and not np.all(x == np.round(x)):
                raise exc(f"{what} {source}: array {s.name!r} holds fractions, but the model takes {s.dtype}"
                          " (token ids, indices); save integers")
            x = x.astype(numpy_dtype(s.dtype))
        out[s.name] = x
    return out


def pixels_to_input(pixels: np.ndarray, pre: dict, layout: str) -> np.ndarray:
    """The preprocessing every runner and the page apply: float32(pixels) * scale + offset, then the layout."""
    x = pixels.astype(np.float32) * np.float32(pre.get("scale", 1.0)) + np.float32(pre.get("offset", 0.0))
    if x.ndim == 3:  # (N, H, W) grayscale -> one channel
        x = x[:, None] if layout == "NCHW" else x[..., None]
    elif x.ndim == 4 and layout == "NCHW" and x.shape[-1] in (1, 3, 4):
        x = np.transpose(x, (0, 3, 1, 2))
    ch = pre.get("channels")  # an input front takes RGB(A): gray pixels are repeated, alpha is opaque
    if ch and layout == "NHWC" and x.shape[-1] != ch:
        x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x[..., :3]
        if ch == 4:
            x = np.concatenate([x, np.full(x.shape[:-1] + (1,), 255.0, x.dtype)], axis=-1)
    return np.ascontiguousarray(x)


def tokenize(texts: list[str], pre: dict, *, root: Path | None = None) -> dict[str, np.ndarray]:
    """Sentences -> token arrays with the manifest's tokenizer file (Hugging Face ``tokenizers``), padded/truncated
    to its max length; names come from ``pre['inputs']`` (role -> input name)."""
    from tokenizers import Tokenizer

    tok_path = Path(pre["tokenizer"]["file"])
    if not tok_path.is_absolute() and root is not None:
        tok_path = root / tok_path
    if not tok_path.is_file():
        raise InputError(f"tokenizer file {tok_path} not found; keep it beside the manifest (re-run edgeport convert)")
    tok = Tokenizer.from_file(str(tok_path))
    n = int(pre["max_length"])
    tok.enable_truncation(n)
    tok.enable_padding(length=n, pad_id=int(pre.get("pad_id", 0)), pad_token=pre.get("pad_token", "[PAD]"))
    enc = tok.encode_batch(texts)
    dt = np.dtype(np.int64)  # model_inputs casts to each input's own dtype
    arrays = {"token_ids": np.asarray([e.ids for e in enc], dt), "attention_mask": np.asarray([e.attention_mask for e in enc], dt),
              "token_type_ids": np.asarray([e.type_ids for e in enc], dt)}
    return {name: arrays[role] for role, name in pre.get("inputs", {}).items() if role in arrays}


def calibration_and_probe(sig: Signature, preprocessing: dict, *, calib: str | None, data: str | None,
                          default_data: str | None, need_calib: bool, n_calib: int = defaults.CALIB_SAMPLES,
                          n_probe: int = defaults.PROBE_SAMPLES, root: Path | None = None):
    """Calibration rows and parity-probe rows, kept apart. Returns (calib feeds | None, probe feeds | None, meta).

    - a named set (built-in): calibrate on its train split, probe on its held-out split;
    - ``--calib`` and ``--data``: calibrate on the first, probe on the second;
    - only one file: its last rows (a quarter, at most n_probe) are the probe, the rest calibrate.
    """
    meta: dict = {}
    cal_spec = calib or (default_data if not data else None)
    probe_spec = data or default_data or calib
    cal = probe = None
    if probe_spec and is_named(probe_spec):
        ds = load_dataset(probe_spec, "heldout")
        idx = probe_indices(len(ds), n_probe)
        probe = model_inputs(ds.take(idx), sig, preprocessing, root=root, what="probe data")
        meta["probe"] = {"data": f"{probe_spec}:heldout", "indices": idx}
    if need_calib:
        if cal_spec is None:
            raise CalibrationError(f"int8 needs a representative set; pass --calib data.npz with one array per input"
                                   f" ({sig.describe_inputs()})")
        ds = load_dataset(cal_spec, "train")
        n = len(ds)
        keep = np.arange(n)
        if not is_named(cal_spec) and cal_spec == probe_spec:
            k = min(n_probe, max(1, n // 4)) if n >= 2 else 0
            keep = np.arange(n - k)
            if k:
                probe = model_inputs(ds.take(np.arange(n - k, n)), sig, preprocessing, root=root, what="probe data",
                                     exc=CalibrationError)
                meta["probe"] = {"data": cal_spec, "indices": list(range(n - k, n)), "kept_apart_from_calibration": True}
        keep = keep[:n_calib]
        cal = model_inputs(ds.take(keep), sig, preprocessing, root=root, what="calibration data", exc=CalibrationError)
        meta["calibration"] = {"source": cal_spec + (":train" if is_named(cal_spec) else ""), "samples": int(len(keep))}
    if probe is None and probe_spec and not is_named(probe_spec):
        ds = load_dataset(probe_spec)
        idx = list(range(min(n_probe, len(ds))))
        probe = model_inputs(ds.take(idx), sig, preprocessing, root=root, what="probe data")
        meta["probe"] = {"data": probe_spec, "indices": idx}
    return cal, probe, meta


def probe_indices(n: int, k: int = defaults.PROBE_SAMPLES) -> list[int]:
    rng = np.random.default_rng(defaults.SEED)
    return sorted(rng.choice(n, size=min(k, n), replace=False).tolist())


def noise_probe(sig: Signature, n: int = defaults.PROBE_SAMPLES) -> dict[str, np.ndarray] | None:
    """A seeded N(0,1) probe for all-float models without data; None when any input is an integer (ids, masks):
    noise is never a valid token id."""
    pixels = [s for s in sig.inputs if s.dtype == "uint8" and s.role == "image"]  # an input front: random pixels
    if not all(s.is_float for s in sig.inputs if s not in pixels):
        return None
    rng = np.random.default_rng(defaults.SEED)
    return {s.name: rng.integers(0, 256, (n, *s.shape[1:])).astype(np.uint8) if s in pixels
            else rng.standard_normal((n, *s.shape[1:])).astype(np.float32) for s in sig.inputs}


def save_feeds(path: Path, feeds: dict[str, np.ndarray], **extra) -> None:
    np.savez(path, **{f"in:{k}": v for k, v in feeds.items()}, **{k: v for k, v in extra.items() if v is not None})
