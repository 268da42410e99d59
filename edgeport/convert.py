"""The conversion pipeline: source -> (target, recipe) artifacts, each with a manifest and measured parity.

The steps, in order (see :func:`convert`): load the source and read its named signature; decide the task; plan the
(target, recipe) pairs; take calibration and probe rows, kept apart; run the float model on the probe; then for each
pair convert in a hidden staging folder, measure parity with the real runtime there, move the files into place and
write the manifest last (a manifest means a complete artifact).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import data as dat
from .config import ConvertOptions
from .console import log as _log
from .errors import InputError, ParityError
from .fileio import sha256_file
from .manifest import Manifest, file_entries
from .metrics import infer_task, parity_record
from .registry import check_recipe, get_converter, get_target, versions_for
from .sources import Source, load_source


@dataclass(frozen=True)
class Plan:
    """What will be converted: (target, recipe) pairs, validated before any work starts."""

    pairs: tuple[tuple[str, str], ...]
    needs_calib: bool


def plan(framework: str, targets: list[str], recipes: list[str]) -> Plan:
    from edgeport.quantization import get_recipe

    pairs = []
    for t in targets:
        c = get_converter(framework, t)
        wanted = list(c.recipes) if recipes == ["all"] else recipes
        for r in wanted:
            check_recipe(framework, t, r)
            pairs.append((t, r))
    if not pairs:
        raise InputError("nothing to convert; name at least one --to target and --quant recipe (see `edgeport targets`)")
    return Plan(tuple(pairs), any(get_recipe(r).needs_calibration for _, r in pairs))


def convert(
    model: Any,
    targets: list[str],
    recipes: list[str],
    out: str | Path,
    options: ConvertOptions = ConvertOptions(),
    *,
    weights: str | None = None,
    inputs: list | None = None,
    task: str | None = None,
    imports: list[str] | None = None,
    name: str | None = None,
    on_done: Callable[[Manifest], None] | None = None,
) -> list[Manifest]:
    """Convert a model to every requested (target, recipe). Returns the manifests written.

    ``model`` is a spec (``builtin:*``, ``.keras``, SavedModel folder, ``.pt2``, ``pkg.mod:factory``), a Source, or
    an in-memory keras.Model / torch.nn.Module (then ``inputs`` gives its TensorSpecs for torch).

    Example::

        from edgeport import convert
        convert("builtin:simplecnn-torch", ["pte", "tflite"], ["fp32", "int8"], "artifacts/")
    """
    from edgeport.converters.common import Job, cleanup

    src = model if isinstance(model, Source) else load_source(model, weights=weights, inputs=inputs, task=task,
                                                              imports=imports, name=name)
    src.task = infer_task(src.signature, task or src.task)
    for note in src.notes:
        _log(f"note: {src.name}: {note}")
    pl = plan(src.framework, targets, recipes)
    calib, probe, meta = dat.calibration_and_probe(src.signature, src.preprocessing, calib=options.calib, data=options.data,
                                                   default_data=src.default_data, need_calib=pl.needs_calib,
                                                   n_calib=options.calib_samples)
    if probe is None:
        probe = dat.noise_probe(src.signature)
        meta["probe"] = {"data": "normal(0,1) seed=0", "indices": list(range(len(next(iter(probe.values())))))} if probe else None
    if probe is None:
        raise InputError(f"{src.model_id} has integer inputs ({src.signature.describe_inputs()}); pass --data data.npz"
                         " (or --calib) with real rows, one array per input, so that parity is measured on valid ids")
    float_out = src.float_outputs(probe)
    example = {k: v[:1] for k, v in probe.items()}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preprocessing = _place_preprocessing_files(src.preprocessing, out)
    written: list[Manifest] = []
    cache: dict = {}
    try:
        for i, (t, r) in enumerate(pl.pairs, 1):
            conv = get_converter(src.framework, t)
            base = f"{src.name}.{r}"
            _log(f"[{i}/{len(pl.pairs)}] {src.name} -> {t} {r} ({conv.tool}) ...")
            t0 = time.perf_counter()
            work = Path(tempfile.mkdtemp(prefix=f".{base}.{t}.", suffix=".part", dir=out))
            try:
                job = Job(src, r, work, base, calib if r == "int8" else None, options, example, cache)
                produced = conv.fn(job)
                seconds = time.perf_counter() - t0
                m = Manifest(
                    name=f"{base}.{t}",
                    source={"framework": src.framework, "model": src.model_id, "sha256": src.sha256, "weights": src.weights,
                            "default_data": src.default_data,
                            "notes": src.notes},
                    target=t, recipe=r, task=src.task, entry=produced.entry,
                    files=file_entries(work, produced.files),
                    signature=produced.signature.to_dict(),
                    preprocessing=preprocessing,
                    parity={"status": "pending"},
                    probe={},
                    calibration=meta.get("calibration") if r == "int8" else None,
                    delegation=produced.delegation,
                    conversion={"converter": conv.tool, "seconds": round(seconds, 3), "notes": produced.notes},
                    quantization=produced.quantization,
                    tools=versions_for(t),
                )
                probe_file = f"{m.name}.probe.npz"
                np.savez(work / probe_file, **{f"in:{k}": v for k, v in probe.items()},
                         **{f"out:{k}": v for k, v in float_out.items()})
                m.probe = {**(meta.get("probe") or {}), "file": probe_file, "sha256": sha256_file(work / probe_file),
                           "samples": int(len(next(iter(probe.values()))))}
                m.path = work / (m.name + ".manifest.json")
                _measure_parity(m, probe, float_out, options)
                _publish(work, out, (produced.moved or produced.files) + [probe_file], m)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            _log(f"    {m.total_bytes:,} B in {seconds:.1f}s; parity: {parity_summary(m)}")
            written.append(m)
            if on_done:
                on_done(m)
    finally:
        cleanup(cache)
    return written


def parity_summary(m: Manifest) -> str:
    p = m.parity
    if p.get("status") != "measured":
        return "pending (browser)"
    o = p["outputs"][0]
    if m.task == "embedding":
        s = f"cos mean {o['cosine_mean']:.5f} min {o['cosine_min']:.5f}"
    elif m.task == "classification":
        s = f"max|d| {o['max_abs_diff']:.2g} agree {o.get('top1_agreement', float('nan')):.3f}"
    else:
        s = f"max|d| {o['max_abs_diff']:.2g} SNR {o['snr_db'] if o['snr_db'] is not None else 'inf'} dB"
    return s + ("" if p.get("within_tolerance") else " (OUT OF TOLERANCE)")


def _place_preprocessing_files(pre: dict, out: Path) -> dict:
    """Copy a tokenizer file beside the artifacts and record it by relative name and sha256, so that an app (and
    the page) can reproduce the inputs from the artifact folder alone."""
    pre = dict(pre or {"kind": "tensor"})
    tok = (pre.get("tokenizer") or {}).get("file")
    if tok and Path(tok).is_absolute():
        src = Path(tok)
        sha = sha256_file(src)
        dest = out / f"tokenizer-{sha[:12]}.json"
        if not dest.is_file():
            tmp = out / f".{dest.name}.part"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        pre["tokenizer"] = {**pre["tokenizer"], "file": dest.name, "sha256": sha}
    return pre


def _measure_parity(m: Manifest, probe: dict, float_out: dict, options: ConvertOptions) -> None:
    """Run the artifact with its real runtime on the probe rows; browser-only formats stay 'pending'."""
    t = get_target(m.target)
    if not t.native:
        m.parity = {"status": "pending", "by": "browser evaluator (edgeport evaluate --browser chromium)"}
        return
    r = t.runner(m, threads=1)
    r.load()
    got = r.run(probe)
    if not m.delegation:
        m.delegation = r.delegation()
    m.parity = parity_record(m.task, m.recipe, float_out, got, f"{r.runtime} {r.runtime_version}")
    if not m.parity["within_tolerance"] and options.strict_parity:
        raise ParityError(m.name, m.parity["failures"])


def _publish(work: Path, out: Path, names: list[str], m: Manifest) -> None:
    """Move artifact files into place, then write the manifest last: a manifest means a complete artifact."""
    stale = out / (m.name + ".manifest.json")
    if stale.exists():
        stale.unlink()  # the old artifact is being replaced; never leave a manifest pointing at new files
    for n in names:
        dest = out / n
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(work / n, dest)
    m.write(out)
