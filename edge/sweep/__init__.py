"""`edgeport sweep MATRIX.toml --out DIR`: every (model, target, recipe) conversion and every (artifact, runtime)
measurement of a model zoo as jobs on a process pool or a Dask cluster, cached by content and resumable, with one
report and a coverage table.

The pieces: :mod:`.matrix` (the TOML file), :mod:`.jobs` (content keys, what a job carries, the worker functions and
the two adapters into convert/evaluate), :mod:`.run` (plan, cache, schedulers, driver), :mod:`.report` (coverage,
Markdown, HTML), :mod:`.limits` (failure groups and the converters' known limitations).
"""

from __future__ import annotations

import sys


def sweep(matrix, out, **kw):
    """See :func:`edgeport.edge.sweep.run.sweep`."""
    from .run import sweep as _sweep

    return _sweep(matrix, out, **kw)


def add_parser(sub, common) -> None:
    """The `sweep` subcommand (edgeport/cli.py calls this; the logic stays here)."""
    s = sub.add_parser("sweep", parents=[common], allow_abbrev=False,
                       help="convert and measure a whole model zoo (a TOML matrix), cached and resumable, on a local"
                       " pool or a Dask cluster; one report with a coverage table")
    s.add_argument("matrix", help="a .toml with [defaults] and [[model]] tables whose keys are convert/evaluate flag"
                   " names (model, input, weights, calib, data, to, quant, runtime, threads, max-drop ...)")
    s.add_argument("--out", default="sweep", help="output folder: report.json/html, coverage.md/json, artifacts/,"
                   " .cache/ (default sweep/)")
    s.add_argument("--scheduler", default="local", help="local (a process pool sized to the cores, the default) or"
                   " tcp://HOST:8786 (a Dask scheduler whose workers have edgeport installed)")
    s.add_argument("--workers", type=int, default=None, help="local pool size (default: the number of cores)")
    s.add_argument("--retry-failed", action="store_true", help="run again the jobs whose cached result is a failure")
    s.add_argument("--report-only", action="store_true", help="write the report from what the cache holds, running"
                   " nothing (jobs without a result are 'not run')")
    s.add_argument("--shared-fs", action="store_true", help="Dask workers read the matrix's files and the cache from"
                   " the same paths (by default a job carries its files to the worker)")
    s.set_defaults(fn=cmd_sweep)


def cmd_sweep(a) -> int:
    from pathlib import Path

    from edgeport.errors import InputError

    if a.workers is not None and a.workers < 1:
        raise InputError(f"--workers {a.workers}: pass a positive number of worker processes")
    report, cov, stats = sweep(a.matrix, a.out, scheduler=a.scheduler, workers=a.workers, retry_failed=a.retry_failed,
                               carry=False if a.shared_fs else None, report_only=a.report_only)
    print("\n".join(cov["summary_lines"]))
    for g, items in cov["failures"].items():
        print(f"{g}: {len(items)} failure(s)", file=sys.stderr)
    print(f"\nsweep: {stats.planned} jobs, {stats.ran} ran, {stats.cached} cached, {stats.failed} failed,"
          f" {stats.retried} retried; {stats.seconds:.1f} s")
    print(f"report: {Path(a.out) / 'report.html'}, coverage: {Path(a.out) / 'coverage.md'}")
    return 0
