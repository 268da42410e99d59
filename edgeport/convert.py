"""The conversion pipeline: source -> (target, recipe) artifacts, each with a manifest and measured parity.

The steps, in order (see :func:`convert`): load the source and read its named signature; decide the task; plan the
(target, recipe) pairs; take calibration and probe rows, kept apart; run the float model on the probe; then for each
pair convert in a hidden staging folder, measure parity with the real runtime there, write the manifest there, move
the files into place and the manifest last (a manifest means a complete artifact).

Isolation: a model given as a spec is converted in the worker pool (:mod:`edgeport.pool`, handler
:func:`worker_handler`), one worker per run, replaced after a crash; the worker reports each job's start and end on a
pipe, so a segfault or a hang costs the artifact it was making, and the other jobs still run. Everything a run stages lives in one
``.edgeport-run-*.part`` folder of ``out`` (:class:`edgeport.fileio.RunFolder`), removed at the end, on error and
on SIGTERM, and swept by the next run if the process was killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import console
from . import data as dat
from .config import ConvertOptions
from .console import log as _log
from .errors import ConversionFailed, EdgeportError, InputError, ParityError, Terminated, UnsupportedError, one_line
from .fileio import RunFolder, sha256_file
from .manifest import SUFFIX, Manifest, file_entries
from .pool import Pool
from .metrics import infer_task, parity_record
from .weights import count as count_weights
from .weights import warnings as weight_warnings
from .registry import check_recipe, get_converter, get_target, versions_for
from .tasks import get_task
from .sources import Source, load_source

# Per-job limit for an isolated conversion (the model load of a fresh worker included); a job past it is a hang.
CONVERT_TIMEOUT_S = float(os.environ.get("EDGEPORT_CONVERT_TIMEOUT_S", "1800"))


@dataclass(frozen=True)
class Plan:
    """What will be converted: (target, recipe) pairs, validated before any work starts."""

    pairs: tuple[tuple[str, str], ...]
    needs_calib: bool
    # (target, recipe, why) of an explicit recipe list that a requested target does not have: left out, said once.
    skipped: tuple[tuple[str, str, str], ...] = ()

    def skipped_line(self) -> str | None:
        """``skipped tflite uint8: no such recipe for keras -> tflite`` (None when nothing was left out)."""
        if not self.skipped:
            return None
        return "skipped " + "; ".join(f"{t} {r}: {why}" for t, r, why in self.skipped)


def _known_names(targets: list[str], recipes: list[str]) -> None:
    from edgeport.recipes import get_recipe

    for t in targets:
        get_target(t)
    for r in recipes:
        if r != "all":
            get_recipe(r)


def plan(framework: str, targets: list[str], recipes: list[str]) -> Plan:
    """The (target, recipe) pairs: ``["all"]`` is every recipe of each target; an explicit list applies each recipe
    to the requested targets that have it (the others are ``skipped``), and a recipe none of them has is an error."""
    from edgeport.recipes import get_recipe

    convs = {t: get_converter(framework, t) for t in targets}
    pairs, skipped = [], []
    if recipes == ["all"]:
        pairs = [(t, r) for t, c in convs.items() for r in c.recipes]
    else:
        for r in recipes:
            get_recipe(r)
            if not any(r in c.recipes for c in convs.values()):
                if len(convs) == 1:
                    check_recipe(framework, targets[0], r)  # raises, naming that target's recipes
                raise UnsupportedError(f"recipe {r!r} does not exist for {framework} -> {', '.join(convs)}; supported: "
                                       + "; ".join(f"{t}: {', '.join(c.recipes)}" for t, c in convs.items()))
        for t, c in convs.items():
            for r in recipes:
                if r in c.recipes:
                    pairs.append((t, r))
                else:
                    skipped.append((t, r, f"no such recipe for {framework} -> {t}"))
    if not pairs:
        raise InputError("nothing to convert; name at least one --to target and --quant recipe (see `edgeport targets`)")
    return Plan(tuple(pairs), any(get_recipe(r).needs_calibration for _, r in pairs), tuple(skipped))


def _budget_holders(framework: str | None = None) -> list[str]:
    """``target recipe`` pairs whose converter holds an accuracy budget (for ``framework``, or for any)."""
    from .registry import targets as all_targets

    return sorted({f"{t.name} {r}" for t in all_targets().values() for f, c in t.converters.items()
                   if framework in (None, f) for r in c.budget})


def _budget_precheck(targets: list[str], recipes: list[str], budget, task: str | None, model: Any) -> None:
    """Before the model loads: a budget flag for another task than an explicit --task, or for targets and recipes
    of which none can hold a budget whatever the framework, is one line."""
    from edgeport.recipes import get_recipe

    if budget is None:
        return
    if task:
        budget.for_task(task, model if isinstance(model, str) else "this model")
    wanted = [(t, r) for t in targets for c in get_target(t).converters.values()
              for r in (c.recipes if recipes == ["all"] else recipes) if r in c.recipes]
    if not any(get_recipe(r).budget and any(r in c.budget for c in get_target(t).converters.values())
               for t, r in wanted):
        _refuse_budget(budget, sorted({f"{t} {r}" for t, r in wanted}), _budget_holders())


def check_budget(budget, src: Source, model: Any, pl: Plan) -> None:
    """Once the model's task and framework are known: the budget must be its task's (``--max-drop`` for a
    classifier ...) and some planned recipe must hold it; a planned recipe that could hold one on a target without
    a budget search is refused too (it would come out plain)."""
    from edgeport.recipes import get_recipe

    if budget is None:
        return
    budget.for_task(src.task, model if isinstance(model, str) else src.model_id)
    holders = [(t, r) for t, r in pl.pairs if get_recipe(r).budget]
    cannot = [f"{t} {r}" for t, r in holders if r not in get_converter(src.framework, t).budget]
    if holders and not cannot:
        return
    _refuse_budget(budget, cannot or [f"{t} {r}" for t, r in pl.pairs], _budget_holders(src.framework), src.framework)


def _refuse_budget(budget, pairs: list[str], able: list[str], framework: str | None = None) -> None:
    flag = " / ".join(t.flag for t in budget.given()) or "an accuracy budget"
    raise UnsupportedError(f"{flag}: {', '.join(pairs)} cannot hold an accuracy budget (no budget search there); these can"
                           f"{f' for {framework} models' if framework else ''}: {', '.join(able) or 'none'}")


@dataclass
class Shared:
    """What every job of one source shares: the rows, the float outputs, the manifest fields from the source."""

    src: Source
    source_record: dict  # the manifest's "source"
    calib: dict | None
    probe: dict
    float_out: dict
    example: dict
    meta: dict
    preprocessing: dict
    options: ConvertOptions
    holdout: dict | None = None  # rows (+ "y") that judge an accuracy budget; never calibrated on


@dataclass
class Failure:
    name: str  # the artifact that was not written
    reason: str  # one line
    error: EdgeportError | None = None  # a typed error (bad input, unsupported op, parity) rather than a crash


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
    isolate: bool | None = None,
    timeout_s: float = CONVERT_TIMEOUT_S,
    quiet: bool | None = None,
) -> list[Manifest]:
    """Convert a model to every requested (target, recipe). Returns the manifests written.

    ``model`` is a spec (``builtin:*``, ``.keras``, SavedModel folder, ``.pt2``, ``pkg.mod:factory``), a Source, or
    an in-memory keras.Model / torch.nn.Module (then ``inputs`` gives its TensorSpecs for torch).

    Each (target, recipe) is a job of its own; one that fails costs that artifact only:

    - ``isolate`` (default: True for a spec, False for a Source or an in-memory model, which cannot be sent to
      another process): convert in a worker process, so that a crash (segfault) or a hang past ``timeout_s``
      seconds is one failed job and the next jobs run in a fresh worker.
    - When some jobs fail, the others are still written and :class:`edgeport.errors.ConversionFailed` is raised at
      the end, carrying ``.manifests`` (written) and ``.failures`` (``[(artifact name, reason)]``). When every job
      fails with an edgeport error (bad input, unsupported op, parity with ``strict_parity``), the first one is
      raised instead, as it would be for one job.
    - ``quiet``: True sends every library's output (C++ included, fd level) to the run's own
      ``<out>/edgeport-<time>-<pid>.log`` (the CLI's
      default); False leaves it on the terminal (``-v``); None (default) keeps this process's output as it is and
      logs only the worker's.

    Example::

        from edgeport import convert
        convert("builtin:simplecnn-torch", ["pte", "tflite"], ["fp32", "int8"], "artifacts/")
    """
    if isolate is None:
        isolate = isinstance(model, str)
    if isolate and not isinstance(model, str):
        raise InputError(f"isolate=True needs a model spec (a path, builtin:* or pkg.mod:factory), not a"
                         f" {type(model).__name__}; in-memory models convert in this process (isolate=False)")
    out = Path(out)
    with RunFolder(out) as run, _sigterm_raises(), console.quiet(run.log, enabled=bool(quiet), shown=run.kept_log):
        for n in run.removed:
            _log(f"removed {out / n}: staging left by an interrupted run")
        _known_names(targets, recipes)  # a target or recipe that does not exist fails before the model loads
        if options.profile == "mcu":  # so does a target or recipe the device profile cannot make
            from .micro import check_profile

            check_profile(targets, recipes)
        _budget_precheck(targets, recipes, options.budget, task, model)  # so does a budget that cannot apply
        src = model if isinstance(model, Source) else load_source(model, weights=weights, inputs=inputs, task=task,
                                                                  imports=imports, name=name)
        src = _front(src, options, name)
        if task or src.task:
            src.task = infer_task(src.signature, task or src.task)
        else:  # inferred: labels in --data speak for classification; say what was chosen and how to change it
            labels = dat.npz_labels(options.data) if options.data and not dat.is_named(options.data) else None
            src.task = infer_task(src.signature, labels=labels)
            _log(f"note: {src.name}: task {src.task}, inferred from {'the labels in --data and ' if labels is not None else ''}"
                 f"{src.signature.describe_inputs()} -> {src.signature.describe_outputs()}; pass --task"
                 " classification|embedding|regression to choose it")
        for note in src.notes:
            _log(f"note: {src.name}: {note}")
        pl = plan(src.framework, targets, recipes)
        if pl.skipped:
            _log(pl.skipped_line())
        check_budget(options.budget, src, model, pl)
        _check_collisions(src, pl, out)
        calib, probe, meta = dat.calibration_and_probe(src.signature, src.preprocessing, calib=options.calib,
                                                       data=options.data, default_data=src.default_data,
                                                       need_calib=pl.needs_calib, n_calib=options.calib_samples)
        if probe is None:
            probe = dat.noise_probe(src.signature)
            meta["probe"] = {"data": "normal(0,1) seed=0", "indices": list(range(len(next(iter(probe.values())))))} if probe else None
        if probe is None:
            raise InputError(f"{src.model_id} has integer inputs ({src.signature.describe_inputs()}); pass --data data.npz"
                             " (or --calib) with real rows, one array per input, so that parity is measured on valid ids")
        float_out = src.float_outputs(probe)
        probe, float_out = _fit_probe(probe, float_out, meta)
        example = {k: v[:1] for k, v in probe.items()}
        shared = Shared(src, _source_record(src), calib, probe, float_out, example, meta,
                        _place_preprocessing_files(src.preprocessing, out, run.dir), options,
                        _budget_rows(src, options, pl))
        run.keep_log = bool(quiet)  # the CLI keeps its log; the API keeps the workers' log only when a job failed
        jobs = list(enumerate(pl.pairs, 1))
        results: dict[int, Manifest | Failure] = {}

        def finished(i: int, res: Manifest | Failure) -> None:
            results[i] = res
            if isinstance(res, Failure):
                _log(f"    {res.name}: FAILED: {res.reason}")
            else:
                _log(f"    {res.name}: {res.total_bytes:,} B in {res.conversion.get('seconds', 0):.1f}s;"
                     f" parity: {parity_summary(res)}")
                if on_done:
                    on_done(res)

        def started(i: int) -> None:
            t, r = pl.pairs[i - 1]
            _log(f"[{i}/{len(pl.pairs)}] {src.name} -> {t} {r} ({get_converter(src.framework, t).tool}) ...")

        # The workers' output goes to the active log (this run's, or an outer one such as the demo's), else to this
        # run's own log; -v (quiet=False) leaves it on the terminal.
        log_file, shown = console.active_log() or (run.log, run.kept_log)
        if isolate:
            _run_isolated(model, dict(weights=weights, inputs=inputs, task=task, imports=imports, name=name), shared,
                          jobs, out, run, timeout_s, log=(log_file, shown) if quiet is not False else None,
                          started=started, finished=finished)
        else:
            _run_in_process(shared, jobs, out, run.dir, started=started, finished=finished)
        written = [r for _, r in sorted(results.items()) if isinstance(r, Manifest)]
        failed = [r for _, r in sorted(results.items()) if isinstance(r, Failure)]
        for w in weight_warnings(written):  # what the artifacts hold, against what their recipes promise
            _log(f"warning: {w}")
        if not failed:
            run.keep_log = bool(quiet)
            return written
        if not written and all(f.error is not None for f in failed):
            run.keep_log = False
            raise failed[0].error
        run.keep_log = bool(quiet) or (isolate and quiet is None)  # a log that holds the failing tools' output
        log = str(shown) if run.keep_log or shown != run.kept_log else None
        raise ConversionFailed(written, [(f.name, f.reason) for f in failed], log=log)


def _front(src: Source, options: ConvertOptions, name: str | None) -> Source:
    """The source with its input front (``--input-format``), in the parent and in each worker alike."""
    if not options.input_format:
        return src
    from .fronts import apply_front
    from .sources import _safe_name

    out = apply_front(src, options.input_format, options.mean, options.std)
    if name:
        out.name = _safe_name(name)
    return out


def _fit_probe(probe: dict, float_out: dict, meta: dict) -> tuple[dict, dict]:
    """The probe rows that fit defaults.PROBE_MAX_BYTES (inputs and float outputs), at least PROBE_MIN_SAMPLES."""
    from . import defaults

    n = len(next(iter(probe.values())))
    per_row = sum(v[:1].nbytes for v in (*probe.values(), *float_out.values()))
    keep = max(min(n, defaults.PROBE_MIN_SAMPLES), min(n, defaults.PROBE_MAX_BYTES // max(per_row, 1)))
    if keep >= n:
        return probe, float_out
    _log(f"note: probe rows cut from {n} to {keep} ({per_row:,} B each) to keep each artifact's probe sidecar"
         f" near {defaults.PROBE_MAX_BYTES // 2**20} MiB")
    if meta.get("probe") and "indices" in meta["probe"]:
        meta["probe"]["indices"] = list(meta["probe"]["indices"])[:keep]
    return {k: v[:keep] for k, v in probe.items()}, {k: v[:keep] for k, v in float_out.items()}


def _budget_rows(src: Source, options: ConvertOptions, pl: Plan) -> dict | None:
    """With an accuracy budget: every held-out row of --data (or the model's own set), with labels "y" when the set
    has them. The calibration rows come from --calib or the set's train split, never from these."""
    from edgeport.recipes import get_recipe

    if options.budget is None or not any(get_recipe(r).budget for _, r in pl.pairs):
        return None
    spec = options.data or src.default_data
    if not spec:
        raise InputError(f"an accuracy budget needs held-out rows to judge it: pass --data data.npz with one array per"
                         f" input ({src.signature.describe_inputs()}) and labels y for classification")
    if options.calib and options.calib == options.data:
        raise InputError("--calib and --data name the same file: the rows that judge the budget must not be the rows"
                         " that calibrate; split them into two files")
    ds = dat.load_dataset(spec, "heldout")
    rows = dat.model_inputs(ds, src.signature, src.preprocessing, what="budget data")
    if ds.y is not None and get_task(src.task).labels:
        rows["y"] = ds.y
    return rows


def _source_record(src: Source) -> dict:
    return {"framework": src.framework, "model": src.model_id, "sha256": src.sha256, "weights": src.weights,
            "default_data": src.default_data, "notes": src.notes}


def _check_collisions(src: Source, pl: Plan, out: Path) -> None:
    """Refuse to overwrite an artifact of the same name that another model made (a different source and sha256)."""
    for t, r in pl.pairs:
        p = out / f"{src.name}.{r}.{t}{SUFFIX}"
        if not p.is_file():
            continue
        try:
            other = json.loads(p.read_text()).get("source") or {}
        except (OSError, ValueError, AttributeError):
            continue  # unreadable: the new artifact replaces it
        if not isinstance(other, dict):
            continue
        if other.get("sha256") != src.sha256 and other.get("model") != src.model_id:
            raise InputError(f"{p} was converted from another model ({other.get('model')}); converting {src.model_id}"
                             f" would overwrite it; pass --name NEW_NAME (or another --out) to keep both")


def _run_in_process(shared: Shared, jobs, out: Path, staging: Path, *, started, finished) -> None:
    from edgeport.job import cleanup

    cache: dict = {}
    try:
        for i, (t, r) in jobs:
            started(i)
            try:
                finished(i, convert_one(shared, t, r, out, staging, cache))
            except EdgeportError as e:
                finished(i, Failure(f"{shared.src.name}.{r}.{t}", " ".join(str(e).split()), e))
            except Exception as e:  # a converter bug: this artifact fails, the others go on
                finished(i, Failure(f"{shared.src.name}.{r}.{t}", f"{type(e).__name__}: {one_line(e, 300)}"))
    finally:
        cleanup(cache)


def convert_one(shared: Shared, t: str, r: str, out: Path, staging: Path, cache: dict) -> Manifest:
    """One (target, recipe): convert in a staging folder, measure parity there, then publish. Returns the manifest."""
    from edgeport.job import Job
    from edgeport.recipes import get_recipe

    src, options = shared.src, shared.options
    conv = get_converter(src.framework, t)
    base = f"{src.name}.{r}"
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f"{base}.{t}.", dir=staging))
    try:
        calibrated = get_recipe(r).needs_calibration
        job = Job(src, r, work, base, shared.calib if calibrated else None, options, shared.example, cache,
                  holdout=shared.holdout)
        produced = conv.fn(job)
        seconds = time.perf_counter() - t0
        m = Manifest(
            name=f"{base}.{t}",
            source=dict(shared.source_record),
            target=t, recipe=r, task=src.task, entry=produced.entry,
            files=file_entries(work, produced.files),
            signature=produced.signature.to_dict(),
            preprocessing=shared.preprocessing,
            parity={"status": "pending"},
            probe={},
            calibration=shared.meta.get("calibration") if calibrated else None,
            delegation=produced.delegation,
            conversion={"converter": conv.tool, "seconds": round(seconds, 3), "notes": produced.notes},
            quantization=produced.quantization,
            tools=versions_for(t),
        )
        probe_file = f"{m.name}.probe.npz"
        np.savez(work / probe_file, **{f"in:{k}": v for k, v in shared.probe.items()},
                 **{f"out:{k}": v for k, v in shared.float_out.items()})
        m.weights = count_weights(t, work / produced.entry)
        m.probe = {**(shared.meta.get("probe") or {}), "file": probe_file, "sha256": sha256_file(work / probe_file),
                   "samples": int(len(next(iter(shared.probe.values()))))}
        m.path = work / (m.name + SUFFIX)
        _measure_parity(m, shared.probe, shared.float_out, options)
        _publish(work, out, (produced.moved or produced.files) + [probe_file], m)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return m


# ------------------------------------------------------------------------------------------------ isolation
@contextlib.contextmanager
def _sigterm_raises():
    """In the main thread, turn SIGTERM into :class:`Terminated` so that ``finally`` blocks (worker kill, staging
    removal) run; a handler someone else installed is left alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
            signal.SIG_DFL, None):
        yield
        return

    def handler(signum, frame):
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# What a conversion lost to its worker says (edgeport.pool words the rest).
MESSAGES = {"hung": "timed out after {timeout:g}s (converter hung); raise --timeout or check the model{where}",
            "crashed": "converter crashed ({signal}) while making this artifact; the other jobs went on{where}",
            "exit": "converter process exited with status {rc} without a result{where}",
            "setup_hung": "timed out after {timeout:g}s loading the model in the worker{where}"}


def _run_isolated(spec: str, load_kw: dict, shared: Shared, jobs, out: Path, run: RunFolder, timeout_s: float, *,
                  log: tuple[Path, Path] | None, started, finished) -> None:
    """Run the jobs in the worker pool (edgeport.pool): one worker loads the model once and takes them in order;
    after a crash or a hang the job it was on fails and a fresh worker takes the rest."""
    arrays = run.dir / "arrays.npz"
    blobs = {f"probe:{k}": v for k, v in shared.probe.items()}
    blobs.update({f"float:{k}": v for k, v in shared.float_out.items()})
    blobs.update({f"calib:{k}": v for k, v in (shared.calib or {}).items()})
    blobs.update({f"holdout:{k}": v for k, v in (shared.holdout or {}).items()})
    np.savez(arrays, **blobs)
    weights_file = None
    if shared.src.framework == "torch" and not hasattr(shared.src.model, "graph_signature"):
        # The worker rebuilds the module from the spec; these are the exact weights the float reference came from
        # (a factory without --weights initialises randomly in each process).
        from safetensors.torch import save_model

        weights_file = run.dir / "weights.safetensors"
        save_model(shared.src.model, str(weights_file))
    payload = {
        "spec": spec, "load": {**load_kw, "inputs": [s.to_dict() for s in load_kw.get("inputs") or []] or None},
        "sys_path": list(sys.path), "source": shared.source_record, "task": shared.src.task, "name": shared.src.name,
        "signature": shared.src.signature.to_dict(), "weights_file": str(weights_file) if weights_file else None,
        "arrays": str(arrays), "meta": shared.meta, "preprocessing": shared.preprocessing,
        "options": dataclasses.asdict(shared.options), "out": str(out.resolve()), "staging": str(run.dir),
    }
    names = {i: f"{shared.src.name}.{r}.{t}" for i, (t, r) in jobs}
    order = [i for i, _ in jobs]

    def landed(k: int, res) -> None:
        i = order[k]
        if res.ok:
            try:
                finished(i, Manifest.read(res.value))
            except EdgeportError as e:
                finished(i, Failure(names[i], " ".join(str(e).split()), e))
        else:
            finished(i, Failure(names[i], res.error, res.exception() if res.kind else None))

    with Pool("edgeport.convert:worker_handler", payload, timeout_s=timeout_s, log=log[0] if log else "inherit",
              where=f"; see {log[1]}" if log else "", messages=MESSAGES, on_note=lambda t: _log(f"    {t}"),
              workdir=run.dir) as pool:
        pool.run([list(pair) for _, pair in jobs], on_start=lambda k: started(order[k]), on_result=landed)


def worker_handler(job: dict, note):
    """The conversion worker (edgeport.pool): load the model once, then convert each (target, recipe) it is given."""
    console.relay_to(note)  # progress of long jobs (a budget search) reaches the user
    from .signature import Signature, TensorSpec

    kw = dict(job["load"])
    kw["inputs"] = [TensorSpec.from_dict(d) for d in kw["inputs"]] if kw.get("inputs") else None
    src = _front(load_source(job["spec"], **kw), ConvertOptions(**job["options"]), None)
    if job["weights_file"]:
        from safetensors.torch import load_model

        load_model(src.model, job["weights_file"])
        src.model.eval()
    elif not str(src.sha256).startswith("in-memory:") and src.sha256 != job["source"]["sha256"]:
        raise InputError(f"{job['spec']} changed on disk during the conversion (sha256 differs); run again")
    src.task, src.name = job["task"], job["name"]
    src.signature = Signature.from_dict(job["signature"])
    with np.load(job["arrays"], allow_pickle=False) as z:
        part = {p: {k.split(":", 1)[1]: z[k] for k in z.files if k.startswith(p + ":")} for p in ("probe", "float", "calib", "holdout")}
    probe = part["probe"]
    shared = Shared(src, job["source"], part["calib"] or None, probe, part["float"], {k: v[:1] for k, v in probe.items()},
                    job["meta"], job["preprocessing"], ConvertOptions(**job["options"]), part["holdout"] or None)
    from edgeport.job import cleanup

    cache: dict = {}

    def run_one(pair) -> str:
        t, r = pair
        return str(convert_one(shared, t, r, Path(job["out"]), Path(job["staging"]), cache).path)

    run_one.close = lambda: cleanup(cache)
    return run_one


def parity_summary(m: Manifest) -> str:
    p = m.parity
    if p.get("status") != "measured":
        return "pending (browser)"
    from .report import parity_text

    return parity_text(m.task, p["outputs"][0]) + ("" if p.get("within_tolerance") else " (OUT OF TOLERANCE)")


def _place_preprocessing_files(pre: dict, out: Path, staging: Path) -> dict:
    """Copy a tokenizer file beside the artifacts and record it by relative name and sha256, so that an app (and
    the page) can reproduce the inputs from the artifact folder alone."""
    pre = dict(pre or {"kind": "tensor"})
    tok = (pre.get("tokenizer") or {}).get("file")
    if tok and Path(tok).is_absolute():
        src = Path(tok)
        sha = sha256_file(src)
        dest = out / f"tokenizer-{sha[:12]}.json"
        if not dest.is_file():
            tmp = staging / dest.name
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
    """Write the manifest in the staging folder (where a full disk fails harmlessly), move the artifact's files into
    place, then the manifest last: a manifest means a complete artifact. Moves are renames; if one fails, the files
    already moved are removed again, so no file is left without its manifest."""
    staged = m.write(work)
    final = out / staged.name
    if final.exists():
        final.unlink()  # the old artifact is being replaced; never leave a manifest pointing at new files
    moved: list[Path] = []
    try:
        for n in names:
            dest = out / n
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(work / n, dest)
            moved.append(dest)
        os.replace(staged, final)
    except BaseException:
        for d in moved:
            if d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    d.unlink()
        raise
    m.path = final
