"""The conversion pipeline: source -> (target, recipe) artifacts, each with a manifest and measured parity."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import data as dat
from . import defaults
from .config import ConvertOptions
from .errors import CalibrationError
from .manifest import Manifest, file_entries
from .sources import Source, load_source
from .versions import tools_for
from .console import log as _log



@dataclass(frozen=True)
class Plan:
    """What will be converted: (target, recipe) pairs, validated before any work starts."""

    pairs: tuple[tuple[str, str], ...]
    needs_calib: bool


def plan(framework: str, targets: list[str], recipes: list[str]) -> Plan:
    from edgeport.converters import get_target
    from edgeport.converters.registry import check_recipe
    from edgeport.quantization import get_recipe

    pairs = []
    for t in targets:
        tgt = get_target(framework, t)
        wanted = list(tgt.recipes) if recipes == ["all"] else recipes
        for r in wanted:
            check_recipe(tgt, r)
            pairs.append((t, r))
    return Plan(tuple(pairs), any(get_recipe(r).needs_calibration for _, r in pairs))


def probe_batch(src: Source, options: ConvertOptions) -> tuple[np.ndarray, dict]:
    """The fixed, seeded probe batch, in the model's layout, and where it came from."""
    if src.is_digits:
        idx = dat.probe_indices()
        held = dat.digits("heldout")
        return dat.to_layout(held.x[idx], src.layout), {"data": f"{dat.BUILTIN_DIGITS}:heldout", "indices": idx}
    if options.calib and not dat.is_builtin(options.calib):
        x = dat.load_npz(options.calib, need_labels=False).x
        dat.validate_batch(x, src.input_shape, options.calib, what="calibration data", exc=CalibrationError)
        return x[: defaults.PROBE_SAMPLES], {"data": options.calib, "indices": list(range(min(len(x), defaults.PROBE_SAMPLES)))}
    rng = np.random.default_rng(defaults.SEED)
    x = rng.standard_normal((defaults.PROBE_SAMPLES, *src.input_shape[1:])).astype(np.float32)
    return x, {"data": f"normal(0,1) seed={defaults.SEED}", "indices": list(range(defaults.PROBE_SAMPLES))}


def convert(
    model: str | Source,
    targets: list[str],
    recipes: list[str],
    out: str | Path,
    options: ConvertOptions = ConvertOptions(),
    *,
    weights: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    on_done: Callable[[Manifest], None] | None = None,
) -> list[Manifest]:
    """Convert a model to every requested (target, recipe). Returns the manifests written.

    Example::

        from edgeport import convert
        convert("builtin:simplecnn-torch", ["pte", "tflite"], ["fp32", "int8"], "artifacts/")
    """
    from edgeport.converters import get_target
    from edgeport.converters.common import Job

    src = model if isinstance(model, Source) else load_source(model, weights=weights, input_shape=input_shape)
    pl = plan(src.framework, targets, recipes)
    probe_x, probe_meta = probe_batch(src, options)
    float_logits = src.float_outputs(probe_x)
    src.extras["probe_logits_shape"] = [1, *float_logits.shape[1:]]
    calib = None
    if pl.needs_calib:
        if options.calib is None and not src.is_digits:
            raise CalibrationError(
                f"{src.model_id}: int8 needs a representative set; pass --calib data.npz with an array x of shape"
                f" (N, {', '.join(map(str, src.input_shape[1:]))})"
            )
        calib = dat.calibration_set(options.calib, src.input_shape, src.layout, options.calib_samples)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (t, r) in enumerate(pl.pairs, 1):
        tgt = get_target(src.framework, t)
        name = f"{src.name}.{r}"
        _log(f"[{i}/{len(pl.pairs)}] {src.name} -> {t} {r} ({tgt.converter}) ...")
        t0 = time.perf_counter()
        work = Path(tempfile.mkdtemp(prefix=f".{name}.{t}.", suffix=".part", dir=out))
        try:
            job = Job(src, r, work, name, calib if r == "int8" else None, options, probe_x)
            produced = tgt.convert(job)
            seconds = time.perf_counter() - t0
            m = Manifest(
                name=f"{name}.{t}",
                source={"framework": src.framework, "model": src.model_id, "sha256": src.sha256,
                        "weights": weights, "input_shape": list(src.input_shape)},
                target=t,
                recipe=r,
                entry=produced.entry,
                files=file_entries(work, produced.files),
                signature=produced.signature,
                preprocessing=src.preprocessing or {"pixels": None, "scale": 1.0, "offset": 0.0, "layout": src.layout},
                parity={"status": "pending"},
                probe={**probe_meta, "float_logits": np.round(float_logits, 6).tolist()},
                calibration=({"source": options.calib or f"{dat.BUILTIN_DIGITS}:train[:{options.calib_samples}]",
                              "samples": int(len(calib))} if r == "int8" and calib is not None else None),
                delegation=produced.delegation,
                conversion={"converter": tgt.converter, "seconds": round(seconds, 3)},
                tools=tools_for(t, src.framework),
            )
            m.path = work / (m.name + ".manifest.json")
            _measure_parity(m, probe_x, float_logits, options)
            _publish(work, out, produced.moved or produced.files, m)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        parity = m.parity.get("outputs", [{}])[0]
        _log(f"    {m.total_bytes:,} B in {seconds:.1f}s; parity: "
             + (f"max|d|={parity['max_abs_diff']:.2g} agree={parity['top1_agreement']:.3f}" if parity else "pending (browser)"))
        written.append(m)
        if on_done:
            on_done(m)
    return written


def _measure_parity(m: Manifest, probe_x: np.ndarray, float_logits: np.ndarray, options: ConvertOptions) -> None:
    """Run the artifact with its real runtime on the probe batch; TF.js stays 'pending' for the browser."""
    from edgeport.edge import parity
    from edgeport.edge.runners import get_runner, native_targets

    if m.target not in native_targets():
        m.parity = {"status": "pending", "by": "browser evaluator (edgeport evaluate --browser chromium)"}
        return
    r = get_runner(m, threads=1)
    r.load()
    got = r.run(probe_x)
    res = parity.compare(float_logits, got, m.signature["outputs"][0]["name"])
    if not m.delegation:
        m.delegation = r.delegation()
    m.parity = parity.record([res], m.recipe, f"{r.runtime} {r.runtime_version}")
    if not m.parity["within_tolerance"] and options.strict_parity:
        from .errors import ParityError

        raise ParityError(m.name, parity.within(res, m.recipe))


def _publish(work: Path, out: Path, names: list[str], m: Manifest) -> None:
    """Move artifact files into place, then write the manifest last: a manifest means a complete artifact."""
    import os

    stale = out / (m.name + ".manifest.json")
    if stale.exists():
        stale.unlink()  # the old artifact is being replaced; never leave a manifest pointing at new files
    for n in names:
        dest = out / n
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(work / n, dest)
    m.write(out)
