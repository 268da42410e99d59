"""Native evaluation: every artifact, its real runtime, in its own subprocess; rows in the one report schema.

For each manifest the evaluator prepares, once per (data, signature, preprocessing), the model-ready inputs and,
once per source, the float model's outputs on them; the worker then runs the artifact and scores it with the
task's metrics (``edgeport.metrics``). The browser side reuses :class:`Context` to score its outputs the same way.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport import data as dat
from edgeport.config import EvaluateOptions
from edgeport.console import log as _log
from edgeport.errors import EdgeportError, InputError, one_line
from edgeport.manifest import Manifest, find_manifests
from edgeport.metrics import float_quality, task_metrics
from edgeport.pool import Pool
from edgeport.registry import Runtime, get_runtime, get_target, runtimes, targets
from edgeport.report import Report, Row
from edgeport.tasks import get_task
from edgeport.runtime import resolve_threads


@dataclass
class Prepared:
    data: str  # the data spec used for this manifest
    path: Path  # npz: in:<name> model-ready inputs, y
    feeds: dict
    y: np.ndarray | None
    ref_path: Path | None = None  # npz: out:<name> float outputs on the same inputs
    ref: dict | None = None
    ref_note: str | None = None  # where the reference came from, or why there is none
    float_quality: float | None = None


# The data spec of a model evaluated on its probe rows (no --data and no default set); the page's data=None.
PROBE_DATA = "probe rows (no --data: agreement with float only)"


@dataclass
class Context:
    """What the evaluator learned about each manifest's data and float reference; shared with the browser side."""

    folder: Path
    options: EvaluateOptions
    sources: dict = field(default_factory=dict)  # model id -> in-memory Source (Python API, pytest plugin)
    prepared: dict = field(default_factory=dict)  # manifest name -> Prepared
    _by_key: dict = field(default_factory=dict)
    _refs: dict = field(default_factory=dict)

    def prepare(self, m: Manifest, manifests: list[Manifest]) -> Prepared:
        spec = self.options.data or m.source.get("default_data")
        if not spec:
            return self._prepare_probe(m)
        sig_key = json.dumps([m.signature["inputs"], m.preprocessing, spec], sort_keys=True, default=str)
        key = hashlib.sha256(sig_key.encode()).hexdigest()[:16]
        if key not in self._by_key:
            ds = dat.load_dataset(spec, "heldout")
            feeds = dat.model_inputs(ds, m.sig, m.preprocessing, root=m.folder, what="evaluation data")
            p = self.folder / f"data-{key}.npz"
            np.savez(p, **{f"in:{k}": v for k, v in feeds.items()}, **({"y": ds.y} if ds.y is not None else {}))
            self._by_key[key] = (spec, p, feeds, ds.y)
        spec, p, feeds, y = self._by_key[key]
        _check_labels(m, y)
        prep = Prepared(spec, p, feeds, y if get_task(m.task).labels else None)
        self._reference(m, prep, key, manifests)
        self.prepared[m.name] = prep
        return prep

    def _prepare_probe(self, m: Manifest) -> Prepared:
        """No --data and no default set: the probe rows written at conversion, with the float outputs recorded then
        (agreement / cosine / SNR against float; no labels, so no accuracy)."""
        try:
            probe = m.probe_arrays()
        except EdgeportError:
            raise
        except Exception as e:  # a truncated or corrupt .probe.npz
            raise InputError(f"{m.name}: its probe file is unreadable ({type(e).__name__}); re-convert the model, or"
                             " pass --data data.npz") from None
        if not probe or not probe[0] or not probe[1]:
            raise InputError(f"{m.name}: no evaluation data (no --data, no default set, no probe rows); pass --data"
                             f" data.npz with one array per input ({m.sig.describe_inputs()}) and labels y for"
                             " classification")
        feeds, ref = probe
        key = hashlib.sha256(f"probe:{m.path}".encode()).hexdigest()[:16]
        p = self.folder / f"data-{key}.npz"
        np.savez(p, **{f"in:{k}": v for k, v in feeds.items()})
        prep = Prepared(PROBE_DATA, p, feeds, None)
        prep.ref, prep.ref_note = ref, "float outputs recorded at conversion on the probe rows"
        prep.ref_path = self.folder / f"ref-{key}.npz"
        np.savez(prep.ref_path, **{f"out:{k}": v for k, v in ref.items()})
        self.prepared[m.name] = prep
        return prep

    def _reference(self, m: Manifest, prep: Prepared, key: str, manifests: list[Manifest]) -> None:
        """Float outputs of the source model on this data; computed once per (source, data)."""
        rkey = (m.source.get("model"), m.source.get("sha256"), key)
        if rkey not in self._refs:
            self._refs[rkey] = self._compute_reference(m, prep, manifests)
        ref, note = self._refs[rkey]
        prep.ref, prep.ref_note = ref, note
        if ref is not None:
            prep.ref_path = self.folder / f"ref-{abs(hash(rkey))}.npz"
            if not prep.ref_path.exists():
                np.savez(prep.ref_path, **{f"out:{k}": v for k, v in ref.items()})
            prep.float_quality = float_quality(m.task, ref, prep.y, m.primary_output)

    def _compute_reference(self, m: Manifest, prep: Prepared, manifests: list[Manifest]):
        from edgeport.sources import load_source

        model = m.source.get("model")
        try:
            src = self.sources.get(model)
            if src is None:
                if str(model).startswith("python:"):
                    raise InputError("an in-memory model; pass it to evaluate(sources=...)")
                inputs = [s.with_(binding=None, quantization=None, dtype="float32" if s.quantization else s.dtype)
                          for s in _source_inputs(m)]
                src = load_source(model, weights=m.source.get("weights"), inputs=inputs)
                if src.sha256 != m.source.get("sha256"):
                    raise InputError(f"source {model} changed since conversion (sha256 differs)")
            src.signature = type(src.signature)(src.signature.inputs, tuple(
                s.with_(binding=None, quantization=None, dtype="float32" if s.quantization else s.dtype) for s in m.sig.outputs))
            return src.float_outputs(prep.feeds), f"float source model {model}"
        except Exception as e:
            reason = one_line(e, 200)
        # No source: an fp32 artifact of the same source, run natively, is the next best reference.
        for other in manifests:
            if (other.recipe == "fp32" and other.source.get("sha256") == m.source.get("sha256")
                    and get_target(other.target).native):
                try:
                    r = get_target(other.target).runner(other, threads=1)
                    r.load()
                    return r.run(prep.feeds), f"fp32 artifact {other.name} (source unavailable: {reason})"
                except Exception:
                    continue
        _log(f"no float reference for {model}: {reason}")
        return None, f"no float reference: {reason}"

    def score(self, m: Manifest, outputs: dict) -> dict:
        """Row fields for outputs of manifest ``m`` on its prepared data (used by the browser evaluator)."""
        prep = self.prepared[m.name]
        fields = task_metrics(m.task, prep.ref, outputs, prep.y, m.primary_output)
        return _with_drop(fields, prep)


def _source_inputs(m: Manifest):
    return m.sig.inputs


def _check_labels(m: Manifest, y) -> None:
    if y is None or not get_task(m.task).labels:
        return
    classes = int(np.prod(m.signature["outputs"][0]["shape"][1:]))
    bad = y[(y < 0) | (y >= classes)]
    if len(bad):
        raise InputError(f"{m.name}: labels must be class indices in [0, {classes - 1}] for output"
                         f" {m.primary_output!r}; found {len(bad)} outside (e.g. {int(bad[0])})")


def _with_drop(fields: dict, prep: Prepared) -> dict:
    fields = dict(fields)
    fields["float_accuracy"] = prep.float_quality
    if fields.get("accuracy") is not None and prep.float_quality is not None:
        fields["accuracy_drop_pp"] = round(100 * (prep.float_quality - fields["accuracy"]), 4)
    return fields


# What an evaluation job lost to its worker says (edgeport.pool words the rest).
MESSAGES = {"hung": "timed out after {timeout:g}s (runtime hung); raise --timeout or check the artifact",
            "crashed": "runtime crashed ({signal}) on this artifact; re-convert it",
            "exit": "worker failed (exit {rc}): {tail}",
            "setup_hung": "timed out after {timeout:g}s importing the runtime; raise --timeout"}


def worker_pool(runtime: str | None, timeout: float) -> Pool:
    """A pool whose worker imports ``runtime``'s modules at start (so that imports overlap with the parent's work,
    never with a measurement) and measures the jobs it is given (edgeport.worker)."""
    return Pool("edgeport.worker:handler", {"runtime": runtime}, timeout_s=timeout, messages=MESSAGES)


def _as_fields(res) -> list[dict] | dict:
    return res.value if res.ok else {"error": res.error}


def _run_worker(job: dict, folder: Path, timeout: float) -> list[dict] | dict:
    """One job in a worker process of its own."""
    return _run_workers([job], folder, timeout)[0]


def _run_workers(jobs: list[dict], folder: Path, timeout: float, on_result=None,
                 worker: Pool | None = None) -> list[list[dict] | dict]:
    """Measure ``jobs`` (artifacts of one runtime) in one worker process, in order, so that the runtime's import is
    paid once (ExecuTorch's costs ~5 s); ``worker``: a pool already started for this runtime. A crash or a hang
    past ``timeout`` seconds (per artifact) costs the artifact it was on, which gets an error result; a fresh worker
    takes the rest. ``on_result(i, fields)`` is called as each lands. Returns the results in job order."""
    with (worker or worker_pool(jobs[0].get("runtime") if jobs else None, timeout)) as pool:
        done = pool.run(jobs, on_result=(lambda k, res: on_result(k, _as_fields(res))) if on_result else None)
    return [_as_fields(r) for r in done]


def _base_row(m: Manifest, mp, device: str = "local", **kw) -> Row:
    return Row(artifact=m.name, target=m.target, recipe=m.recipe, source=m.source["model"], task=m.task,
               runtime=kw.pop("runtime", get_target(m.target).runtime), backend=kw.pop("backend", "-"),
               threads=kw.pop("threads", None), device=device, manifest=str(mp), bytes=m.total_bytes,
               weights=m.weights, **kw)


def select_runtimes(names=None, browser=None) -> list[Runtime]:
    """``--runtime`` names (or aliases) in the order given; by default every default (host) runtime and, with
    ``browser``, the browser runtimes. An unknown name is one line listing the known ones."""
    if names:
        out = []
        for n in names:
            r = get_runtime(n)
            if r not in out:
                out.append(r)
        return out
    return [r for r in runtimes().values() if r.default or (browser and r.started == "browser")]


def _runtimes_of(target: str) -> list[Runtime]:
    """The runtimes of a format, the host's default first, then by where they run."""
    from edgeport.registry import WHERE

    return sorted((r for r in runtimes().values() if target in r.formats),
                  key=lambda r: (not r.default, WHERE.index(r.where), r.name))


def _device_of(r: Runtime) -> str:
    return {"browser": "chromium"}.get(r.where, "local")


def _skipped(m: Manifest, r: Runtime, why: str) -> Row:
    return _base_row(m, m.path, runtime=r.name, device=_device_of(r), where=r.where, skipped=why)


def read_manifests(paths, report: Report) -> list[Manifest]:
    """Every manifest under ``paths``; an unreadable one (or an unknown target) is an error row, never dropped."""
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p} does not exist; pass a folder of artifacts or a manifest written by `edgeport convert`")
    found = find_manifests(paths)
    if not found:
        raise InputError(f"no *.manifest.json found in {', '.join(map(str, paths))}; run `edgeport convert` first")
    known = targets()
    out = []
    for mp in found:
        try:
            m = Manifest.read(mp)
            if m.target not in known:
                raise EdgeportError(f"{m.name}: unknown target {m.target!r}; known: {', '.join(known)}")
        except EdgeportError as e:
            report.rows.append(Row(artifact=Path(mp).name.replace(".manifest.json", ""), target="?", recipe="?", source="?",
                                   runtime="-", backend="-", threads=None, device="local", manifest=str(mp),
                                   error=" ".join(str(e).split())))
            continue
        out.append(m)
    return out


def evaluate_native(paths, options: EvaluateOptions = EvaluateOptions(), *, verify: bool = True, quick: bool = False,
                    sources: dict | None = None, workdir: Path,
                    selected: list[Runtime] | None = None) -> tuple[Report, list[Manifest], Context]:
    """Rows for every artifact x worker runtime (``selected``, default: the host runtimes) x thread count. A runtime
    that is not available here, or that does not take an artifact, gives a skipped row saying why."""
    threads = list(dict.fromkeys(resolve_threads(t) for t in options.threads))
    if options.data:  # a missing, unreadable or unknown data set is the user's to fix, before anything runs
        dat.load_dataset(options.data, "heldout")
    report = Report(data=options.data or "each model's default data")
    manifests = read_manifests(paths, report)
    selected = select_runtimes() if selected is None else selected
    plan: dict[str, list[int]] = {}  # worker runtime -> indexes of the manifests it runs
    skipped: dict[int, list[Row]] = {}
    for i, m in enumerate(manifests):
        for r in selected:
            if r.started != "worker" or m.target not in r.formats:
                continue
            why = r.unavailable() or r.runner.accepts(m)
            if why:
                skipped.setdefault(i, []).append(_skipped(m, r, why))
            else:
                plan.setdefault(r.name, []).append(i)
    for name in list(plan):  # a runtime's one-time set-up (a rootfs to build), here, where progress is seen
        rt = get_runtime(name)
        if rt.setup is not None:
            try:
                rt.setup()
            except EdgeportError as e:
                for i in plan.pop(name):
                    skipped.setdefault(i, []).append(_skipped(manifests[i], rt, " ".join(str(e).split())))
    # One worker per runtime, started now: each imports its runtime while the data and the float references are
    # prepared, then waits for its turn.
    workers = {name: worker_pool(name, options.timeout_s).start() for name in plan}
    try:
        return _evaluate_native(manifests, report, threads, options, verify, quick, sources, workdir, workers, plan,
                                skipped)
    finally:
        for w in workers.values():
            w.close()


def _evaluate_native(manifests, report, threads, options, verify, quick, sources, workdir, workers, plan, skipped):
    ctx = Context(workdir, options, sources=dict(sources or {}))
    slots: dict[int, list[Row]] = {}  # manifest index -> its rows, so that the report keeps the manifests' order
    preps: dict[int, Prepared] = {}
    for i, m in enumerate(manifests):
        try:
            prep = ctx.prepare(m, manifests)
        except EdgeportError as e:
            slots[i] = [_base_row(m, m.path, error=" ".join(str(e).split()))]
            continue
        preps[i] = prep
        if prep.float_quality is not None:
            report.float_baseline[m.source["model"]] = prep.float_quality
        report.extra.setdefault("data_by_source", {})[m.source["model"]] = prep.data
        report.extra.setdefault("reference_by_source", {})[m.source["model"]] = prep.ref_note
    done, total = 0, sum(1 for idx in plan.values() for i in idx if i in preps)
    for w in workers.values():
        w.wait_ready(options.timeout_s)
    for name, idx in plan.items():
        rt = get_runtime(name)
        items = [(i, manifests[i], preps[i]) for i in idx if i in preps]
        jobs = [{"manifest": str(m.path), "data": str(prep.path), "reference": str(prep.ref_path) if prep.ref_path else None,
                 "runtime": name, "options": options.runtime_options.get(name, {}),
                 "threads": threads, "verify": verify, "warmup": options.warmup,
                 "min_runs": 20 if quick else options.min_runs, "min_seconds": 0.2 if quick else options.min_seconds}
                for _, m, prep in items]
        if not jobs:
            continue
        _log(f"{name}: {len(jobs)} artifact(s) at threads {','.join(map(str, threads))}, one worker ...")

        def landed(k: int, res, items=items, rt=rt) -> None:
            nonlocal done
            i, m, prep = items[k]
            done += 1
            once = rt.runner is not None and not rt.runner.threaded  # an error is one row, not one per thread
            results = res if isinstance(res, list) else [{"threads": th, **res} for th in ([1] if once else threads)]
            rows = []
            for r in results:
                row = _base_row(m, m.path, runtime=r.get("runtime", rt.name), backend=r.get("backend", "-"),
                                threads=r["threads"], device=_device_of(rt), where=rt.where)
                for k2, v in _with_drop(r, prep).items():
                    if k2 in Row.__dataclass_fields__ and k2 not in ("threads", "runtime", "backend"):
                        setattr(row, k2, v)
                rows.append(row)
            slots.setdefault(i, []).extend(rows)
            err = next((r.error for r in rows if r.error), None)
            lat = ", ".join(f"{r.threads}t {r.latency_ms['p50']:.3g} ms" for r in rows if r.latency_ms)
            _log(f"[{done}/{total}] {m.name} on {rt.name}: " + (f"error: {err}" if err else (f"p50 {lat}" if lat else "measured")))

        _run_workers(jobs, workdir, options.timeout_s, on_result=landed, worker=workers.pop(name, None))
    for i, rows in skipped.items():
        if i in preps:
            slots.setdefault(i, []).extend(rows)
    for i in sorted(slots):
        report.rows.extend(slots[i])
    return report, manifests, ctx


def _evaluate_browser(report: Report, ctx: Context, web: list[Manifest], options: EvaluateOptions, browser,
                      quick: bool) -> None:
    from edgeport.registry import browser_evaluator

    web_side = browser_evaluator(browser if isinstance(browser, str) else "chromium")
    groups: dict[str, list[Manifest]] = {}
    for m in web:
        groups.setdefault(ctx.prepared[m.name].data, []).append(m)
    for spec, ms in groups.items():
        # the page's timing loop is the native one's: same warmup, minimum runs and minimum seconds
        bench = {"fallbacks": options.fallback_backends} if quick else {
            "warmup": options.warmup, "minRuns": options.min_runs, "minMs": options.min_seconds * 1000,
            "fallbacks": options.fallback_backends}
        rows, extra = web_side.evaluate_in_browser(
            ms, dat.PROBE_SPEC if spec == PROBE_DATA else spec, ctx.score, quick=quick, bench=bench,
            threads=list(dict.fromkeys(resolve_threads(t) for t in options.threads)),
            browser=None if isinstance(browser, str) else browser)
        report.merge(rows)
        report.extra.setdefault("browser", {}).update(extra or {})
        caps = web_side.browser_capabilities(extra or {})
        if caps:
            report.extra["browser_capabilities"] = caps


def evaluate(paths: list[str | Path], options: EvaluateOptions = EvaluateOptions(), *, out: str | Path | None = None,
             verify: bool = True, browser=None, quick: bool = False, sources: dict | None = None) -> Report:
    """Evaluate artifacts natively (each in its own subprocess) and, with ``browser="chromium"`` (or an already
    launched Playwright browser), in headless Chromium at the same thread counts; web formats without ``browser``
    get a skipped row that says how to measure them.

    Example::

        from edgeport import evaluate
        report = evaluate(["artifacts/"], out="report/")
        print(report.picks())
    """
    t_start = time.perf_counter()
    selected = select_runtimes(options.runtimes, browser)
    if not browser and any(r.started == "browser" for r in selected):
        browser = "chromium"  # --runtime litert.js: the browser that runs it
    with tempfile.TemporaryDirectory(prefix="edgeport-eval-") as tmp:
        report, manifests, ctx = evaluate_native(paths, options, verify=verify, quick=quick, sources=sources,
                                                 workdir=Path(tmp), selected=selected)
        prepared = [m for m in manifests if m.name in ctx.prepared]
        browser_rts = [r for r in selected if r.started == "browser"]
        web = [m for m in prepared if any(m.target in r.formats for r in browser_rts)]
        if browser and web:
            why = browser_rts[0].unavailable() if isinstance(browser, str) else None
            if why:
                for m in web:
                    r = next(r for r in browser_rts if m.target in r.formats)
                    report.rows.append(_skipped(m, r, why))
            else:
                _evaluate_browser(report, ctx, web, options, browser, quick)
        for r in (r for r in selected if r.started == "remote"):
            mine = [m for m in prepared if m.target in r.formats]
            why = r.unavailable()
            if why:
                report.rows += [_skipped(m, r, why) for m in mine]
            elif mine:
                report.merge(r.evaluate(mine, ctx, options))
        # An artifact that no selected runtime runs says which runtimes would.
        for m in prepared:
            if any(m.target in r.formats for r in selected):
                continue
            t = get_target(m.target)
            if t.browser and not t.native and not options.runtimes:
                why = "browser-only format; add --browser chromium to measure it"
            else:
                why = (f"no selected runtime runs {m.target} artifacts; add --runtime "
                       f"{' or '.join(r.name for r in _runtimes_of(m.target)) or '(none registered)'}")
            r0 = next(iter(_runtimes_of(m.target)), None)
            report.rows.append(_base_row(m, m.path, runtime=r0.name if r0 else "-",
                                         device=_device_of(r0) if r0 else "local",
                                         where=r0.where if r0 else "host", skipped=why))
    report.budget = options.budget
    report.extra["wall_s"] = round(time.perf_counter() - t_start, 2)
    if out is not None:
        report.write(out)
    return report
