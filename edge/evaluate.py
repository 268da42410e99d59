"""`edgeport evaluate`: every artifact, its real runtime, one report of size, accuracy and speed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeport import data as dat
from edgeport.config import EvaluateOptions
from edgeport.errors import EdgeportError, InputError, one_line
from edgeport.manifest import Manifest, find_manifests
from edgeport.report import Report, Row, table

from .runners import native_targets, resolve_threads
from edgeport.console import log as _log



def _load_data(spec: str, folder: Path) -> tuple[Path, dict]:
    """Write the evaluation data once for all workers. Built-in data travels as raw pixels."""
    p = folder / "data.npz"
    if dat.is_builtin(spec):
        held = dat.digits("heldout")
        np.savez(p, pixels=held.pixels, y=held.y)
        return p, {"pixels": held.pixels, "y": held.y}
    s = dat.load_npz(spec, need_labels=True)
    # Shapes are checked per artifact against its signature (an error row); here only emptiness and NaN/Inf.
    dat.validate_batch(s.x, (1, *s.x.shape[1:]), spec, what="evaluation data")
    np.savez(p, x=s.x, y=s.y)
    return p, {"x": s.x, "y": s.y}


def _reference(m: Manifest, data: dict, cache: dict, folder: Path) -> tuple[Path | None, float | None, str | None]:
    """Float logits of the source model on the evaluation data, computed once per source."""
    from .worker import prepare_inputs

    key = (m.source["model"], m.source.get("sha256"), m.preprocessing.get("layout"))
    if key in cache:
        return cache[key]
    from edgeport.sources import load_source

    try:
        shape = tuple(m.source["input_shape"]) if m.source.get("input_shape") else None
        src = load_source(m.source["model"], weights=m.source.get("weights"), input_shape=shape)
        if src.sha256 != m.source.get("sha256"):
            raise InputError(f"source {m.source['model']} changed since conversion (sha256 differs)")
        x = prepare_inputs(m, data)
        logits = src.float_outputs(x)
        path = folder / f"ref{len(cache)}.npy"
        np.save(path, logits)
        acc = float((logits.argmax(-1) == data["y"]).mean())
        cache[key] = (path, acc, None)
    except Exception as e:
        cache[key] = (None, None, f"no float reference for {m.source['model']}: {one_line(e, 200)}")
        _log(cache[key][2])
    return cache[key]


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _run_worker(job: dict, folder: Path, timeout: float) -> list[dict] | dict:
    jp = folder / f"job-{time.monotonic_ns()}.json"
    job["result"] = str(jp.with_suffix(".out.json"))
    jp.write_text(json.dumps(job))
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeport.edge.worker", str(jp)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g}s (runtime hung); raise --timeout or check the artifact"}
    if proc.returncode < 0:
        return {"error": f"runtime crashed ({_signal_name(proc.returncode)}) on this artifact; re-convert it"}
    out = Path(job["result"])
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker failed (exit {proc.returncode}): {tail[:200]}"}
    return json.loads(out.read_text())


def evaluate(paths: list[str | Path], options: EvaluateOptions = EvaluateOptions(), *, out: str | Path | None = None,
             verify: bool = True, browser: str | None = None, quick: bool = False) -> Report:
    """Evaluate artifacts natively (each in its own subprocess) and, with ``browser``, in headless Chromium.

    Example::

        from edgeport import evaluate
        report = evaluate(["artifacts/"], out="report/")
        print(report.picks(0.5))
    """
    manifests = find_manifests(paths)
    if not manifests:
        raise InputError(f"no *.manifest.json found in {', '.join(map(str, paths))}; run `edgeport convert` first")
    threads = [resolve_threads(t) for t in options.threads]
    threads = list(dict.fromkeys(threads))
    report = Report(data=options.data)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeport-eval-") as tmp:
        folder = Path(tmp)
        data_path, data = _load_data(options.data, folder)
        refs: dict = {}
        loaded: list[Manifest] = []
        for i, mp in enumerate(manifests, 1):
            try:
                m = Manifest.read(mp)
            except EdgeportError as e:
                report.rows.append(Row(artifact=Path(mp).name.replace(".manifest.json", ""), target="?", recipe="?", source="?",
                                       runtime="-", backend="-", threads=None, device="local", manifest=str(mp), error=str(e)))
                continue
            loaded.append(m)
            ref_path, float_acc, ref_err = _reference(m, data, refs, folder)
            if float_acc is not None:
                report.float_baseline[m.source["model"]] = float_acc
            if m.target not in native_targets():
                continue  # browser-only format (TF.js): measured by the browser evaluator
            _log(f"[{i}/{len(manifests)}] {m.name}: threads {','.join(map(str, threads))} ...")
            job = {"manifest": str(mp), "data": str(data_path), "reference": str(ref_path) if ref_path else None,
                   "threads": threads, "verify": verify, "warmup": options.warmup,
                   "min_runs": 20 if quick else options.min_runs, "min_seconds": 0.2 if quick else options.min_seconds}
            res = _run_worker(job, folder, options.timeout_s)
            results = res if isinstance(res, list) else [{"threads": t, **res} for t in threads]
            for r in results:
                row = Row(artifact=m.name, target=m.target, recipe=m.recipe, source=m.source["model"],
                          runtime=r.get("runtime", _runtime_of(m.target)), backend=r.get("backend", "xnnpack"),
                          threads=r["threads"], device="local", manifest=str(mp), bytes=m.total_bytes,
                          float_accuracy=float_acc)
                for k, v in r.items():
                    if k in Row.__dataclass_fields__ and k not in ("threads", "runtime", "backend"):
                        setattr(row, k, v)
                if row.accuracy is not None and float_acc is not None:
                    row.accuracy_drop_pp = round(100 * (float_acc - row.accuracy), 4)
                report.rows.append(row)
                if row.error:
                    _log(f"    error: {row.error}")
        if browser:
            from edgeport.web.browser import evaluate_in_browser

            float_preds = {k[0]: np.load(v[0]).argmax(-1) for k, v in refs.items() if v[0] is not None}
            report.merge(evaluate_in_browser(loaded, options, report=report, float_preds=float_preds, quick=quick))
    report.extra["wall_s"] = round(time.perf_counter() - t_start, 2)
    if out is not None:
        report.write(out)
    return report


def _runtime_of(target: str) -> str:
    return {"tflite": "ai-edge-litert", "pte": "executorch.runtime"}.get(target, target)


def run_evaluate_cli(a, options: EvaluateOptions) -> int:
    if a.device != "local":
        from .adb import evaluate_adb

        report = evaluate_adb(a.paths, options, device=a.device, tflite_benchmark=a.tflite_benchmark, pte_runner=a.pte_runner)
        report.write(a.out)
    else:
        report = evaluate(a.paths, options, out=a.out, browser=a.browser, quick=a.quick)
    print(table(report, options.budget_pp))
    print(f"\nreport: {Path(a.out) / 'report.json'} and {Path(a.out) / 'report.html'}")
    errors = [r for r in report.rows if r.error]
    if errors and a.strict:
        print(f"edgeport: error: {len(errors)} row(s) failed (--strict); first: {errors[0].artifact}: {errors[0].error}", file=sys.stderr)
        return 1
    return 0
