"""Measure artifacts at each thread count, in a process of their own: one list of row fields per artifact.

Run by the evaluator through the worker pool (``edgeport.pool``, handler :func:`handler`), one worker per runtime
taking that runtime's artifacts in order; a crash here costs one row, not the sweep (a fresh worker takes the rest).
The job names model-ready inputs (``in:<name>`` arrays, already preprocessed for this artifact), optional labels
``y`` and optional float-model outputs (``out:<name>``) to compare against.
"""

from __future__ import annotations

import gc
import time

import numpy as np


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so the peak measures the model, not the imports before it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def latency(fn, x1, *, warmup: int, min_runs: int, min_seconds: float, max_runs: int = 1000) -> tuple[dict, int]:
    """At least `warmup` untimed runs, then at least `min_runs` timed runs, going on until `min_seconds` have
    passed unless `max_runs` is reached first (a 0.05 ms model gets 1,000 runs, not 40,000)."""
    for _ in range(warmup):
        fn(x1)
    # The loop is kept lean (bound locals, one clock read per boundary) because for a 30 us model every
    # attribute lookup shows up as harness overhead (benchmarks/bench_harness.py).
    clock = time.perf_counter
    times: list[float] = []
    append = times.append
    gc_was_on = gc.isenabled()
    gc.disable()  # as timeit does: a collection landing inside one run is the harness's noise, not the model's
    try:
        start = t1 = clock()
        deadline = start + min_seconds
        while len(times) < min_runs or (t1 < deadline and len(times) < max_runs):
            t0 = clock()
            fn(x1)
            t1 = clock()
            append(t1 - t0)
    finally:
        if gc_was_on:
            gc.enable()
    a = np.asarray(times) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "std": float(a.std())}, len(a)


def load_job_arrays(path: str) -> tuple[dict, np.ndarray | None, dict | None]:
    with np.load(path, allow_pickle=False) as z:
        feeds = {k[3:]: z[k] for k in z.files if k.startswith("in:")}
        ref = {k[4:]: z[k] for k in z.files if k.startswith("out:")} or None
        y = z["y"] if "y" in z.files else None
    return feeds, y, ref


def measure(job: dict) -> list[dict]:
    """Every row of one artifact on one runtime: each variant (an emulated CPU ...) at each thread count."""
    from edgeport.manifest import Manifest
    from edgeport.registry import get_runtime, get_target

    m = Manifest.read(job["manifest"])
    m.check_files(hashes=job.get("verify", True))
    feeds, y, _ = load_job_arrays(job["data"])
    ref = load_job_arrays(job["reference"])[2] if job.get("reference") else None
    rt = get_runtime(job["runtime"]) if job.get("runtime") else get_target(m.target).host_runtime
    cls, options = rt.runner, job.get("options") or {}
    host = _HostOutputs(m, rt, feeds)
    out = []
    for variant in cls.variants(options):
        for t in (job["threads"] if cls.threaded else [1]):
            out.append({"threads": t, **measure_one(m, job, feeds, y, ref, t, cls=cls, options=options,
                                                    variant=variant, host=host)})
    return out


class _HostOutputs:
    """The same artifact's outputs from the runtime named by ``compare_to`` (the format's host runtime), computed
    once per artifact, for the row's vs_host column."""

    def __init__(self, m, rt, feeds: dict):
        self.m, self.rt, self.feeds, self._outs, self.error = m, rt, feeds, None, None

    def compare(self, outs: dict) -> dict | None:
        from edgeport.errors import one_line
        from edgeport.metrics import compare
        from edgeport.registry import get_runtime

        if not self.rt.compare_to:
            return None
        if self.rt.compare_to == "host":
            from edgeport.registry import get_target

            ref_rt = get_target(self.m.target).host_runtime
            if ref_rt is None or ref_rt is self.rt:
                return None
        else:
            ref_rt = get_runtime(self.rt.compare_to)
        if self._outs is None and self.error is None:
            try:
                r = ref_rt.runner(self.m, threads=1)
                r.import_runtime()
                r.load()
                self._outs = r.run(self.feeds)
            except Exception as e:  # the comparison is a column, not the row: say why it is missing
                self.error = f"{type(e).__name__}: {one_line(e, 200)}"
        if self.error:
            return {"runtime": ref_rt.name, "error": self.error}
        primary = self.m.primary_output
        c = compare(self._outs[primary], outs[primary], primary)
        res = {"runtime": ref_rt.name, "output": primary, "max_abs_diff": c["max_abs_diff"], "snr_db": c["snr_db"],
               "scale": float(np.abs(self._outs[primary]).max()),  # max|host output|: what max_abs_diff is relative to
               "cosine_mean": c["cosine_mean"], "outputs": {k: compare(self._outs[k], outs[k], k)["max_abs_diff"]
                                                             for k in self._outs if k in outs}}
        if "top1_agreement" in c:
            res["agreement"] = c["top1_agreement"]
        return res


def measure_one(m, job: dict, feeds: dict, y, ref, threads: int, *, cls=None, options=None, variant=None,
                host: _HostOutputs | None = None) -> dict:
    from edgeport.errors import ArtifactError
    from edgeport.metrics import task_metrics
    from edgeport.registry import runner_for

    cls = cls or runner_for(m.target)
    r = cls(m, threads=threads, options=options, variant=variant)
    r.import_runtime()
    gc.collect()
    peak_ok = _reset_peak()
    rss0 = _status_kb("VmRSS") or 0
    t0 = time.perf_counter()
    r.load()
    load_ms = (time.perf_counter() - t0) * 1e3
    outs = r.run(feeds)
    for name, v in outs.items():
        if v.dtype.kind == "f":
            bad = int((~np.isfinite(v.reshape(len(v), -1))).any(axis=-1).sum())
            if bad:
                raise ArtifactError(f"{m.name}: the runtime produced NaN/Inf in output {name!r} for {bad} of {len(v)}"
                                    " samples; the artifact is corrupt or numerically broken, re-convert it")
    lat = runs = None
    if r.measures_latency:
        x1 = r.prepare({k: v[:1] for k, v in feeds.items()})
        lat, runs = latency(r.invoke_one, x1, warmup=job["warmup"], min_runs=job["min_runs"],
                            min_seconds=job["min_seconds"])
    peak = _status_kb("VmHWM") if peak_ok else None
    out = {
        "bytes": m.total_bytes,
        "gzip_bytes": m.gzip_bytes(),
        "load_ms": load_ms if r.measures_latency else None,
        "latency_ms": lat,
        "runs": runs,
        "peak_rss_delta_bytes": None if peak is None or not r.measures_latency else int(max(0, peak - rss0)),
        "samples": int(len(next(iter(feeds.values())))),
        "runtime": r.runtime,
        "runtime_version": r.runtime_version,
        "backend": r.backend,
        **task_metrics(m.task, ref, outs, y, m.primary_output),
    }
    if not r.measures_latency and r.latency_note:
        out["note"] = r.latency_note
    d = r.delegation()
    if d:
        out["delegated"], out["ops_total"] = d["delegated"], d["total"]
    if host is not None:
        vs = host.compare(outs)
        if vs is not None:
            out["vs_host"] = vs
    out.update(r.extra_fields())
    return out


def handler(payload: dict, note):
    """The pool's worker side (edgeport.pool): import the runtime once, then measure each job it is given."""
    if payload.get("runtime"):
        from edgeport.registry import get_runtime

        get_runtime(payload["runtime"]).runner.import_runtime()
    return measure
