"""Sweep jobs: what each one is keyed by, what it carries, and the functions a worker runs.

A conversion job is one (model, target, recipe); a measurement job is one (artifact, runtime). A job is a plain
dict (it travels to a process pool or a Dask worker); its result is a dict with the artifact's files as bytes, so
the artifacts come back to the sweep's folder whichever machine made them.

The two calls into the rest of edgeport (``edgeport.convert`` and ``edgeport.evaluate.evaluate``) are
:func:`convert_adapter` and :func:`evaluate_adapter`, and nothing else here knows their signatures.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from edgeport.fileio import sha256_file

from .matrix import Entry, Matrix

# Bumped when what a cached result holds changes shape, so that an old cache is never read as a new one.
CACHE_FORMAT = 1
def _dropped(name: str) -> bool:
    """convert's logs (edgeport.log, edgeport-<run>.log) stay on the worker: library chatter, not the artifact."""
    return name.endswith(".log")


# --------------------------------------------------------------------------------------------------- content keys
def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _tree_sha(p: Path) -> str:
    if p.is_file():
        return sha256_file(p)
    return _digest({f.relative_to(p).as_posix(): sha256_file(f) for f in sorted(p.rglob("*")) if f.is_file()})


def _python_files(module: str, root: Path) -> dict[str, Path]:
    """The .py files of ``module``'s top-level package (or the single module) when they live under ``root``: what a
    remote worker needs to import a factory, and what its cache key reads. Installed packages are not carried."""
    top = module.split(".")[0]
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(str(root))
    if spec is None or not spec.origin or not Path(spec.origin).resolve().is_relative_to(root):
        return {}
    origin = Path(spec.origin).resolve()
    if spec.submodule_search_locations:  # a package: all of it (its modules may import each other)
        base = origin.parent
        return {f.relative_to(base.parent).as_posix(): f for f in sorted(base.rglob("*.py"))}
    return {origin.name: origin}


def _builtin_files() -> dict[str, Path]:
    """The files of the package that registers the built-in models (read, not imported: edge/ does not import
    demo/), so that a built-in's cache key follows its code and training recipe."""
    spec = importlib.util.find_spec("edgeport.demo")
    if spec is None or not spec.submodule_search_locations:
        return {}
    base = Path(list(spec.submodule_search_locations)[0])
    return {f.relative_to(base).as_posix(): f for f in sorted(base.rglob("*")) if f.is_file() and f.suffix in (".py", ".json")}


def source_files(entry: Entry, root: Path) -> dict[str, Path]:
    """Every file the conversion reads: the model (or the factory's code), weights, calibration and data files.
    Keys are the names the files get when carried to a worker."""
    files: dict[str, Path] = {}
    spec = entry.spec
    if spec.startswith("builtin:"):
        pass  # installed with edgeport on every worker; keyed by the demo package's files below
    elif ":" in spec and not Path(spec).exists():
        files.update({f"py/{k}": v for k, v in _python_files(spec.split(":")[0], root).items()})
    else:
        p = Path(spec)
        if p.is_dir():
            files.update({f"model/{p.name}/{f.relative_to(p).as_posix()}": f for f in sorted(p.rglob("*")) if f.is_file()})
        else:
            files[f"model/{p.name}"] = p
    for mod in entry.get("import", []):
        files.update({f"py/{k}": v for k, v in _python_files(mod, root).items()})
    for k in ("weights", "calib", "data"):
        v = entry.get(k)
        if v and not v.startswith("builtin:"):
            files[f"{k}/{Path(v).name}"] = Path(v)
    return files


def file_shas(files: dict[str, Path], cache: dict) -> dict[str, str]:
    out = {}
    for k, p in files.items():
        st = p.stat()
        ck = (str(p), st.st_size, st.st_mtime_ns)
        if ck not in cache:
            cache[ck] = sha256_file(p)
        out[k] = cache[ck]
    return out


CONVERT_KEYS = ("input", "input-shape", "import", "task", "calib", "data", "int8-io", "strict-parity", "max-drop",
                "min-cosine", "timeout")
EVAL_KEYS = ("data", "threads", "budget", "min-cosine", "min-snr", "eval-timeout", "quick")


def convert_key(entry: Entry, target: str, recipe: str, shas: dict[str, str], versions: dict) -> str:
    opts = {k: entry.get(k) for k in CONVERT_KEYS if entry.get(k) is not None}
    for k in ("calib", "data"):  # a file is its content, not its path; a named set is its name
        if opts.get(k) and not opts[k].startswith("builtin:"):
            opts[k] = "file"
    spec = entry.spec if not Path(entry.spec).exists() else Path(entry.spec).name
    builtin = {}
    if entry.spec.startswith("builtin:"):
        builtin = {k: sha256_file(p) for k, p in _builtin_files().items()}
    return _digest({"format": CACHE_FORMAT, "kind": "convert", "spec": spec, "name": entry.label, "target": target,
                    "recipe": recipe, "options": opts, "files": shas, "builtin": builtin, "versions": versions})


def measure_key(ckey: str, entry: Entry, runtime: str, shas: dict[str, str], versions: dict) -> str:
    opts = {k: entry.get(k) for k in EVAL_KEYS if entry.get(k) is not None}
    data_sha = {k: v for k, v in shas.items() if k.startswith("data/")}
    return _digest({"format": CACHE_FORMAT, "kind": "measure", "artifact": ckey, "runtime": runtime, "options": opts,
                    "data": data_sha, "versions": versions})


# ------------------------------------------------------------------------------------------------- the adapters
def convert_adapter(spec: str, target: str, recipe: str, out: Path, o: dict, name: str):
    """One (target, recipe) of one model into ``out``, through the public API as `edgeport convert` calls it."""
    from edgeport.convert import convert
    from edgeport.config import ConvertOptions
    from edgeport.convert import CONVERT_TIMEOUT_S
    from edgeport.report import Budget
    from edgeport.signature import parse_input_spec
    from edgeport.sources import parse_shape

    inputs = [parse_input_spec(t) for t in o.get("input") or []] or ([parse_shape(o["input-shape"])] if o.get("input-shape") else None)
    from edgeport.recipes import get_recipe

    budget = None
    if get_recipe(recipe).budget:  # convert refuses a budget on a recipe that cannot hold one (fp32, uint8 ...)
        kw = {k: o[f] for k, f in (("max_drop_pp", "max-drop"), ("min_cosine", "min-cosine"), ("min_snr_db", "min-snr"))
              if o.get(f) is not None}
        budget = Budget(**kw) if kw else None
    opts = ConvertOptions(calib=o.get("calib"), data=o.get("data"), int8_io=bool(o.get("int8-io")),
                          strict_parity=bool(o.get("strict-parity")), budget=budget)
    return convert(spec, [target], [recipe], out, opts, weights=o.get("weights"), inputs=inputs, task=o.get("task"),
                   imports=o.get("import") or None, name=name, isolate=True,
                   timeout_s=float(o.get("timeout") or CONVERT_TIMEOUT_S), quiet=True)


def evaluate_adapter(manifest: Path, runtime: str, o: dict) -> tuple[list, dict, dict]:
    """One artifact on one runtime: (rows, float baselines by source, report extras)."""
    from edgeport import defaults
    from edgeport.config import EvaluateOptions
    from edgeport.evaluate import evaluate
    from edgeport.report import Budget

    budget = Budget(max_drop_pp=float(o.get("budget", defaults.ACCURACY_BUDGET_PP)),
                    min_cosine=float(o.get("min-cosine", defaults.MIN_COSINE)),
                    min_snr_db=float(o.get("min-snr", defaults.MIN_SNR_DB)))
    opts = EvaluateOptions(threads=tuple(o.get("threads") or ("1",)), data=o.get("data"), budget=budget,
                           timeout_s=float(o.get("eval-timeout", defaults.WORKER_TIMEOUT_S)))
    report = evaluate([manifest], opts, browser="chromium" if runtime == "chromium" else None, quick=bool(o.get("quick")))
    rows = [r for r in report.rows if (r.device == "chromium") == (runtime == "chromium")]
    return rows, report.float_baseline, report.extra


# ----------------------------------------------------------------------------------------------- worker side
def _materialize(job: dict, tmp: Path) -> dict:
    """Write the carried files under ``tmp`` and point the job's options at them; or use the shared paths."""
    o = dict(job["opts"])
    spec = job["spec"]
    carried = job.get("carried")
    if carried is None:
        if job.get("root") and job["root"] not in sys.path:
            sys.path.insert(0, job["root"])
        return {"spec": spec, "opts": o}
    base = tmp / "in"
    for rel, blob in carried.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    if (base / "py").is_dir() and str(base / "py") not in sys.path:
        sys.path.insert(0, str(base / "py"))
    for k in ("weights", "calib", "data"):
        if o.get(k) and not o[k].startswith("builtin:"):
            o[k] = str(base / k / Path(o[k]).name)
    if Path(spec).is_absolute():
        spec = str(base / "model" / Path(spec).name)
    return {"spec": spec, "opts": o}


def _forget(tmp: Path) -> None:
    """A long-lived worker (Dask) must not keep a carried module imported from a folder that is gone: the next job
    may carry another version of it."""
    for p in [p for p in sys.path if p.startswith(str(tmp))]:
        sys.path.remove(p)
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", "") or "").startswith(str(tmp)):
            del sys.modules[name]


def _error(e: BaseException) -> dict:
    from edgeport.errors import ConversionFailed, EdgeportError, one_line

    if isinstance(e, ConversionFailed):
        return {"type": "ConversionFailed", "message": " ".join(e.failures[0][1].split()) if e.failures else one_line(e)}
    if isinstance(e, EdgeportError):
        return {"type": type(e).__name__, "message": " ".join(str(e).split())}
    tb = traceback.extract_tb(e.__traceback__)
    return {"type": type(e).__name__, "message": one_line(e, 400),
            "where": [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in tb[-4:]]}


def _hush() -> list[str]:
    """edgeport's progress lines of a job stay with its result (the driver prints one line per job): parallel
    workers would interleave them on the terminal."""
    from edgeport import console

    lines: list[str] = []
    console.relay_to(lines.append)
    return lines


def _run_job(job: dict, prefix: str, body, on_failure=None) -> dict:
    """The frame both kinds of job share: a private folder, edgeport's progress lines kept with the result, every
    failure but an interrupt made this job's result (the sweep goes on), the folder's modules forgotten after, and
    the seconds taken. ``body(tmp)`` returns the ok result's fields; ``on_failure(tmp, res)`` adds to a failure's."""
    t0 = time.monotonic()
    notes = _hush()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tmp = Path(tmp)
        res: dict = {"key": job["key"], "host": os.uname().nodename}
        try:
            res.update(status="ok", **body(tmp))
        except BaseException as e:  # noqa: BLE001 - every failure is this job's result; the sweep goes on
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            res.update(status="failed", error=_error(e), notes=notes[-20:])
            if on_failure is not None:
                on_failure(tmp, res)
        _forget(tmp)
    res["seconds"] = round(time.monotonic() - t0, 2)
    return res


def run_convert(job: dict) -> dict:
    """Worker: convert one (model, target, recipe); return the artifact's files as bytes, or the one-line reason."""

    def body(tmp: Path) -> dict:
        m = _materialize(job, tmp)
        out = tmp / "out"
        ms = convert_adapter(m["spec"], job["target"], job["recipe"], out, m["opts"], job["name"])
        return {"manifest": f"{ms[0].name}.manifest.json",
                "files": {f.relative_to(out).as_posix(): f.read_bytes() for f in sorted(out.rglob("*"))
                          if f.is_file() and not _dropped(f.name) and ".part" not in f.as_posix()}}

    def failed(tmp: Path, res: dict) -> None:
        logs = sorted((tmp / "out").glob("edgeport*.log"))  # the run's own log: edgeport-<time>-<pid>.log
        if logs:
            res["log_tail"] = logs[-1].read_text(errors="replace").splitlines()[-30:]
        # the worker's folder is gone once this returns: point at where the log's tail is kept instead
        res["error"]["message"] = re.sub(rf"see {re.escape(str(tmp))}\S*",
                                         f"its log's tail is in the sweep's .cache/convert/{job['key']}/result.json",
                                         res["error"]["message"])
        res["files"] = {}

    return _run_job(job, "edgeport-sweep-", body, failed)


def run_measure(job: dict) -> dict:
    """Worker: measure one artifact on one runtime; return its rows as dicts."""

    def body(tmp: Path) -> dict:
        if job.get("root") and job["root"] not in sys.path:
            sys.path.insert(0, job["root"])
        o = dict(job["opts"])
        if job.get("py"):  # a factory's code, for the float reference when --data is given
            for rel, blob in job["py"].items():
                p = tmp / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(blob)
            sys.path.insert(0, str(tmp / "py"))
        if job.get("files") is not None:  # carried: the artifact's files, and the evaluation data
            folder = tmp / "art"
            for rel, blob in job["files"].items():
                p = folder / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(blob)
            if job.get("data_blob") is not None:
                dp = tmp / "data" / Path(o["data"]).name
                dp.parent.mkdir(parents=True)
                dp.write_bytes(job["data_blob"])
                o["data"] = str(dp)
        else:
            folder = Path(job["folder"])
        from edgeport.console import quiet

        with quiet(tmp / "edgeport.log"):  # the runtimes' C++ start-up lines stay off the sweep's terminal
            rows, base, extra = evaluate_adapter(folder / job["manifest"], job["runtime"], o)
        return {"rows": [asdict(r) for r in rows], "float_baseline": base,
                "extra": {k: extra[k] for k in ("browser_capabilities", "reference_by_source", "data_by_source")
                          if k in extra}}

    return _run_job(job, "edgeport-sweep-eval-", body)
