"""The sweep driver: plan every job, skip what the cache holds, run the rest on a pool, write one report.

Cache: ``DIR/.cache/convert/<key>/`` (the artifact's files and ``result.json``) and ``DIR/.cache/measure/<key>.json``.
A result is staged under a ``.part`` name and renamed into place, so a sweep killed at any point leaves either a
complete result or none; the next run removes the ``.part`` leftovers and does only the jobs without a result.
Failed jobs are results too (a converter that cannot take a model will not take it on the next run either);
``--retry-failed`` runs them again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edgeport.console import log as _log
from edgeport.errors import InputError
from edgeport.fileio import write_text_atomic

from . import jobs as J
from .matrix import Entry, Matrix, load_matrix

RETRIES = 2  # a job whose worker died is run again this many times before it is a failed row


@dataclass
class Job:
    kind: str  # convert | measure
    key: str
    entry: Entry
    target: str
    recipe: str
    runtime: str | None = None
    parent: str | None = None  # a measurement's conversion key
    tries: int = 0


@dataclass
class Plan:
    matrix: Matrix
    converts: list[Job]
    measures: dict[str, list[Job]]  # conversion key -> its measurements
    not_applicable: list[tuple[Entry, str, str, str]]  # (entry, target, recipe, why)
    files: dict[str, dict]  # entry label -> carried-file name -> Path
    shas: dict[str, dict]


@dataclass
class Stats:
    planned: int = 0
    cached: int = 0
    ran: int = 0
    retried: int = 0
    failed: int = 0
    seconds: float = 0.0
    hosts: dict = field(default_factory=dict)


def make_plan(matrix: Matrix) -> Plan:
    from edgeport.registry import check_recipe, get_converter, get_target, versions_for
    from edgeport.errors import UnsupportedError

    converts, measures, na, files, shas, sha_cache = [], {}, [], {}, {}, {}
    for e in matrix.entries:
        files[e.label] = J.source_files(e, matrix.root)
        shas[e.label] = J.file_shas(files[e.label], sha_cache)
        skip = set(e.get("skip", []))
        for t in e.get("to"):
            try:
                conv = get_converter(e.framework, t)
            except UnsupportedError as ex:
                if "unknown target" in str(ex):
                    raise InputError(f"{matrix.path} model {e.label}: {ex}") from None
                for r in (e.get("quant") if e.get("quant") != ["all"] else ["all"]):
                    na.append((e, t, r, f"{t} does not take {e.framework} models"))
                continue
            versions = versions_for(t)
            for r in (list(conv.recipes) if e.get("quant") == ["all"] else e.get("quant")):
                try:
                    check_recipe(e.framework, t, r)
                except UnsupportedError as ex:
                    if "unknown recipe" in str(ex) or "does not exist" not in str(ex):
                        raise InputError(f"{matrix.path} model {e.label}: {' '.join(str(ex).split())}") from None
                    na.append((e, t, r, f"{t} has no {r} recipe for {e.framework}"))
                    continue
                if f"{t}:{r}" in skip:
                    na.append((e, t, r, "skipped in the matrix"))
                    continue
                ck = J.convert_key(e, t, r, shas[e.label], versions)
                converts.append(Job("convert", ck, e, t, r))
                ms = []
                tgt = get_target(t)
                for rt in e.get("runtime"):
                    if rt == "chromium" and not tgt.browser:
                        continue
                    if rt == "native" and not tgt.native and "chromium" in e.get("runtime"):
                        continue
                    ms.append(Job("measure", J.measure_key(ck, e, rt, shas[e.label], versions), e, t, r, rt, ck))
                measures[ck] = ms
    return Plan(matrix, converts, measures, na, files, shas)


# ------------------------------------------------------------------------------------------------------ cache
class Cache:
    def __init__(self, out: Path):
        self.root = out / ".cache"
        (self.root / "convert").mkdir(parents=True, exist_ok=True)
        (self.root / "measure").mkdir(parents=True, exist_ok=True)

    def lock(self):
        """One sweep writes to a folder at a time (its .part folders would be another's leftovers); the lock goes
        with the process, SIGKILL included."""
        import fcntl

        self._lock = open(self.root / "sweep.lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another edgeport sweep is writing to {self.root.parent}; wait for it, pass another"
                             " --out, or add --report-only to see what it has done so far") from None
        for p in list((self.root / "convert").glob("*.part-*")) + list((self.root / "measure").glob("*.part-*")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    def convert_dir(self, key: str) -> Path:
        return self.root / "convert" / key

    def get(self, job: Job) -> dict | None:
        p = self.convert_dir(job.key) / "result.json" if job.kind == "convert" else self.root / "measure" / f"{job.key}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def put(self, job: Job, res: dict) -> dict:
        """Store a result atomically: files and result.json in a .part folder, renamed into place last."""
        res = {k: v for k, v in res.items() if k != "files"} | {"job": _describe(job)}
        if job.kind == "measure":
            write_text_atomic(self.root / "measure" / f"{job.key}.json", json.dumps(res, default=str))
            return res
        final = self.convert_dir(job.key)
        part = final.with_name(f"{final.name}.part-{uuid.uuid4().hex[:8]}")
        part.mkdir()
        for rel, blob in (res.pop("_files", None) or {}).items():
            p = part / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(blob)
        (part / "result.json").write_text(json.dumps(res, default=str))
        if final.exists():  # --retry-failed: the old result gives way
            shutil.rmtree(final)
        os.rename(part, final)
        return res


def _describe(job: Job) -> dict:
    return {"kind": job.kind, "model": job.entry.label, "target": job.target, "recipe": job.recipe, "runtime": job.runtime}


# -------------------------------------------------------------------------------------------------- schedulers
class LocalPool:
    """A process pool sized to the cores. A worker that dies breaks the whole pool in concurrent.futures, so the
    pool is rebuilt and the jobs it held are submitted again (each one's retry)."""

    name = "local"

    def __init__(self, workers: int | None):
        self.n = workers or max(1, os.cpu_count() or 1)
        self.gen = 0
        self._new()

    def _new(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from edgeport.procs import die_with_parent

        # spawn: a forked child of a process that has imported torch/TF can deadlock in their thread pools;
        # die_with_parent: a driver killed with SIGKILL takes its pool along instead of leaving it converting
        self.ex = ProcessPoolExecutor(self.n, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent)
        self.gen += 1

    def submit(self, fn, payload: dict, key: str):
        f = self.ex.submit(fn, payload)
        f.edgeport_gen = self.gen
        return f

    def wait(self, futures):
        from concurrent.futures import FIRST_COMPLETED, wait

        return wait(futures, return_when=FIRST_COMPLETED)[0]

    def lost(self, exc: BaseException, future) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        if not isinstance(exc, BrokenProcessPool):
            return False
        if getattr(future, "edgeport_gen", None) == self.gen:  # the first of its jobs to report: rebuild once
            self.ex.shutdown(wait=False, cancel_futures=True)
            self._new()
        return True

    def close(self):
        self.ex.shutdown(wait=False, cancel_futures=True)


class DaskPool:
    """A Dask distributed cluster (``tcp://HOST:8786``) whose workers have edgeport installed. The scheduler runs a
    task again on another worker when its worker dies (up to distributed's ``allowed-failures``); ``retries`` covers
    a job that raised."""

    name = "dask"

    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise InputError("--scheduler tcp://... needs Dask: pip install 'dask[distributed]' (or the pins in"
                             " requirements.lock)") from None
        try:
            self.client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise InputError(f"--scheduler {address}: no Dask scheduler answered ({' '.join(str(e).split())[:160]});"
                             " start one with `dask scheduler` and workers with `dask worker ADDRESS`") from None
        self.n = max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def submit(self, fn, payload: dict, key: str):
        return self.client.submit(fn, payload, key=f"{payload['kind']}-{key}-{uuid.uuid4().hex[:6]}", pure=False,
                                  retries=RETRIES)

    def wait(self, futures):
        from distributed import wait

        return wait(list(futures), return_when="FIRST_COMPLETED").done

    def lost(self, exc: BaseException, future) -> bool:
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker)

    def close(self):
        self.client.close()


def make_pool(scheduler: str, workers: int | None):
    if scheduler == "local":
        return LocalPool(workers)
    if scheduler.startswith("tcp://"):
        return DaskPool(scheduler)
    raise InputError(f"--scheduler {scheduler!r}: use local (a process pool here) or tcp://HOST:8786 (a Dask scheduler)")


# ------------------------------------------------------------------------------------------------------- driver
def _payload(job: Job, plan: Plan, cache: Cache, carry: bool) -> dict:
    e = job.entry
    base = {"kind": job.kind, "key": job.key, "root": str(plan.matrix.root)}
    if job.kind == "convert":
        p = {**base, "spec": e.spec, "target": job.target, "recipe": job.recipe, "name": e.label,
             "opts": {k: v for k, v in e.opts.items() if k in J.CONVERT_KEYS or k == "weights"}}
        if carry:
            p["carried"] = {k: f.read_bytes() for k, f in plan.files[e.label].items()}
        return p
    res = cache.get(next(j for j in plan.converts if j.key == job.parent))
    folder = cache.convert_dir(job.parent)
    p = {**base, "runtime": job.runtime, "manifest": res["manifest"], "folder": str(folder),
         "opts": {k: v for k, v in e.opts.items() if k in J.EVAL_KEYS}}
    if carry:
        p["files"] = {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*"))
                      if f.is_file() and f.name != "result.json"}
        if e.get("data") and not e.get("data").startswith("builtin:"):
            p["data_blob"] = Path(e.get("data")).read_bytes()
        p["py"] = {k: f.read_bytes() for k, f in plan.files[e.label].items() if k.startswith("py/")}
    return p


def run_jobs(plan: Plan, out: Path, pool, *, carry: bool, retry_failed: bool, stats: Stats) -> Cache:
    """Feed the pool a few jobs at a time, measurements before conversions: rows appear while the sweep runs, and a
    sweep stopped early has measured what it converted."""
    from collections import deque

    cache = Cache(out)
    cache.lock()
    convs: deque[Job] = deque()
    meas: deque[Job] = deque()
    pending: dict = {}
    n_total = len(plan.converts) + sum(map(len, plan.measures.values()))
    stats.planned = n_total
    limit = 2 * pool.n  # enough to keep every worker busy; the rest waits here, where priorities still apply

    def fresh(job: Job) -> bool:
        res = cache.get(job)
        return res is not None and not (retry_failed and res.get("status") != "ok")

    def submit(job: Job):
        fn = J.run_convert if job.kind == "convert" else J.run_measure
        pending[pool.submit(fn, _payload(job, plan, cache, carry), job.key)] = job

    def fill():
        while len(pending) < limit and (meas or convs):
            submit(meas.popleft() if meas else convs.popleft())

    def converted(job: Job):
        res = cache.get(job)
        for m in plan.measures.get(job.key, []):
            if res and res.get("status") == "ok":  # a failed conversion has nothing to measure
                if fresh(m):
                    stats.cached += 1
                else:
                    meas.append(m)

    # fp32 of every model first: a sweep stopped early still answers "which models convert at all"
    rank = {r: i for i, r in enumerate(("fp32", "fp16", "dynamic-int8", "int8"))}
    for job in sorted(plan.converts, key=lambda j: (rank.get(j.recipe, 9), j.entry.index)):
        if fresh(job):
            stats.cached += 1
            converted(job)
        else:
            convs.append(job)
    done = stats.cached
    fill()
    while pending:
        for f in pool.wait(list(pending)):
            job = pending.pop(f)
            try:
                res = f.result()
            except BaseException as exc:  # noqa: BLE001 - the worker died (or the pool broke under it)
                if pool.lost(exc, f) and job.tries < RETRIES:
                    job.tries += 1
                    stats.retried += 1
                    _log(f"  {job.entry.label} {job.target} {job.recipe}{' ' + job.runtime if job.runtime else ''}:"
                         f" worker lost ({type(exc).__name__}); retry {job.tries}/{RETRIES}")
                    submit(job)
                    continue
                res = {"key": job.key, "status": "failed", "error": {"type": type(exc).__name__,
                       "message": f"worker lost {job.tries + 1} time(s): {' '.join(str(exc).split())[:200]}"}}
            if job.kind == "convert" and res.get("status") == "ok":
                res["_files"] = res.pop("files", {})
            cache.put(job, res)
            done += 1
            stats.ran += 1
            stats.failed += res.get("status") != "ok"
            stats.hosts[res.get("host", "?")] = stats.hosts.get(res.get("host", "?"), 0) + 1
            what = f"{job.entry.label} -> {job.target} {job.recipe}" + (f" on {job.runtime}" if job.runtime else "")
            why = "" if res.get("status") == "ok" else f": {res['error']['type']}: {res['error']['message'][:160]}"
            _log(f"[{done}/{n_total}] {what}: {res.get('status')} in {res.get('seconds', 0):.1f}s{why}")
            if job.kind == "convert":
                converted(job)
        fill()
    return cache


def publish_artifacts(plan: Plan, cache: Cache, out: Path) -> dict[str, Path]:
    """DIR/artifacts/<model>/ holds this matrix's current artifacts (hard links into the cache), rebuilt whole and
    swapped in by a rename, so `edgeport evaluate DIR/artifacts/<model>` and `edgeport serve` work on them."""
    for p in out.glob("artifacts.part-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in out.glob("artifacts.old-*"):
        shutil.rmtree(p, ignore_errors=True)
    part = out / f"artifacts.part-{uuid.uuid4().hex[:8]}"
    where = {}
    for job in plan.converts:
        src = cache.convert_dir(job.key)
        res = cache.get(job)
        if not res or res.get("status") != "ok":
            continue
        dest = part / job.entry.label
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.name != "result.json":
                d = dest / f.relative_to(src)
                d.parent.mkdir(parents=True, exist_ok=True)
                if not d.exists():
                    try:
                        os.link(f, d)
                    except OSError:
                        shutil.copy2(f, d)
        where[job.key] = out / "artifacts" / job.entry.label / res["manifest"]
    part.mkdir(parents=True, exist_ok=True)
    final = out / "artifacts"
    if final.exists():
        old = out / f"artifacts.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(part, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(part, final)
    return where


def sweep(matrix: str | Path, out: str | Path, *, scheduler: str = "local", workers: int | None = None,
          carry: bool | None = None, retry_failed: bool = False, report_only: bool = False):
    """Run a sweep matrix; returns (Report, coverage dict, Stats).

    Example::

        from edgeport.edge.sweep import sweep
        report, coverage, stats = sweep("benchmarks/zoo.toml", "zoo-out/")
        print(coverage["summary"])
    """
    from .report import build_report, write_outputs

    t0 = time.monotonic()
    mx = load_matrix(matrix)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(mx)
    stats = Stats()
    remote = scheduler != "local"
    todo = [j for j in plan.converts]
    pool = None
    try:
        cache = Cache(out)
        need = any(cache.get(j) is None or (retry_failed and cache.get(j).get("status") != "ok") for j in todo) or any(
            cache.get(m) is None for ms in plan.measures.values() for m in ms)
        if need and not report_only:  # a rerun with nothing to do starts no pool (and no cluster connection)
            pool = make_pool(scheduler, workers)
            _log(f"sweep: {len(plan.converts)} conversion(s) and {sum(map(len, plan.measures.values()))} measurement(s)"
                 f" of {len(mx.entries)} model(s) on {pool.name} ({pool.n} worker(s))")
        if pool is not None:
            cache = run_jobs(plan, out, pool, carry=remote if carry is None else carry, retry_failed=retry_failed,
                             stats=stats)
        else:
            jobs_all = plan.converts + [m for ms in plan.measures.values() for m in ms]
            stats.planned = len(jobs_all)
            stats.cached = sum(cache.get(j) is not None for j in jobs_all)
    finally:
        if pool is not None:
            pool.close()
    where = publish_artifacts(plan, cache, out)
    report, coverage = build_report(plan, cache, where)
    stats.seconds = round(time.monotonic() - t0, 2)
    report.extra["sweep"] = {"matrix": str(mx.path), "scheduler": scheduler, "jobs": stats.planned, "cached": stats.cached,
                             "ran": stats.ran, "retried": stats.retried, "failed": stats.failed, "wall_s": stats.seconds,
                             "hosts": stats.hosts}
    write_outputs(report, coverage, out)
    return report, coverage, stats
