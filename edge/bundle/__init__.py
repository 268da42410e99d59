"""``edgeport bundle ARTIFACT... --for PLACE --out DIR``: what an app needs beside converted artifacts.

A bundler is one module of this package with a ``bundle(manifests, options, staging) -> dict`` function, named in
:data:`BUNDLERS`; ``--for`` picks it. The folder is written in a staging folder beside ``--out`` and renamed into
place at the end, so a failed or refused bundle leaves nothing half-written.

Example::

    from edgeport.edge.bundle import BundleOptions, bundle
    bundle(["artifacts/simplecnn-torch-rgb8.fp32.tflite.manifest.json"], "android", "app-bundle/", BundleOptions())
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeport.errors import InputError
from edgeport.manifest import SUFFIX, Manifest, find_manifests

# --for name -> (module of this package, what it writes). Adding a place is one module and one line here.
BUNDLERS = {
    "android": ("android", "a .tflite with TFLite Model Metadata, a .pte with its preprocessing file, Kotlin call sites"),
    "mcu": ("mcu", "a C array and an op resolver for TFLite Micro (issue 20)"),
}
MARKER = "bundle.json"  # the file that says a folder is a bundle edgeport wrote (and may replace)


@dataclass(frozen=True)
class BundleOptions:
    # One label a line, for a classifier whose manifest has none (a user's own model).
    labels: str | None = None
    # Image normalisation in 0-255 pixel units (MediaPipe's convention), one value or R,G,B; None: the manifest's.
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    # auto | none | image-classifier | text-embedder | text-classifier: the MediaPipe task the .tflite is written for.
    mediapipe: str = "auto"
    # Run the bundled files with MediaPipe Tasks and LiteRT's CompiledModel against edgeport's runner.
    verify: bool = True
    # An `edgeport evaluate` report.json whose rows give the measured speed and accuracy in the README.
    report: str | None = None


def get_bundler(name: str):
    if name not in BUNDLERS:
        raise InputError(f"unknown --for {name!r}; known: {', '.join(BUNDLERS)}")
    module, what = BUNDLERS[name]
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{module}":
            raise
        raise InputError(f"--for {name} ({what}) is not available yet in this edgeport; use --for android") from None
    return mod.bundle


def resolve(paths: list[str]) -> list[Manifest]:
    """Manifests from manifest files, artifact files (x.tflite -> x.tflite.manifest.json) or folders of them."""
    out = []
    for p in find_manifests(paths):
        if not str(p).endswith(SUFFIX) and Path(str(p) + SUFFIX).is_file():
            p = Path(str(p) + SUFFIX)
        if not p.exists():
            raise InputError(f"{p} does not exist; pass artifacts written by `edgeport convert` (or their manifests)")
        out.append(Manifest.read(p))
    if not out:
        raise InputError(f"no manifests in {', '.join(paths)}; pass artifacts written by `edgeport convert`")
    return out


def bundle(paths: list[str], place: str, out: str | Path, options: BundleOptions = BundleOptions()) -> dict:
    """Write the bundle for ``place`` into ``out``; returns its summary (also written as ``out/bundle.json``)."""
    fn = get_bundler(place)
    manifests = resolve(paths)
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise InputError(f"{out} exists and is not a bundle folder; pass a new or empty --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.part-", dir=out.parent))
    try:
        summary = fn(manifests, options, staging)
        summary = {"for": place, **summary, "files": sorted(str(p.relative_to(staging)) for p in staging.rglob("*")
                                                             if p.is_file())}
        (staging / MARKER).write_text(json.dumps(summary, indent=1, default=str) + "\n")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    summary["files"].append(MARKER)
    return summary
