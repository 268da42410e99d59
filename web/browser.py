"""The browser evaluator: Playwright drives the page's benchmark mode in headless Chromium; the page returns every
output of every sample, and Python scores them (one metrics implementation for native and browser rows).

Thread counts: the evaluator's (``--threads 1,all``, resolved to numbers) go to the page through /api/config's
bench settings; the page runs one pass per count and each row states the threads and the wasm build it really got.
What the browser offers (cross-origin isolation, SIMD, relaxed SIMD, threads, WebGPU, WebNN, ...) comes back once
per run as the page report's ``capabilities``."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from edgeport.console import log as _log
from edgeport.registry import get_target
from edgeport.errors import EdgeportError, InputError, one_line
from edgeport.manifest import Manifest
from edgeport.report import Row

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
BACKENDS = "cpu,wasm,webgl,webgpu"
# score(manifest, {output name: (N, ...) float32}) -> Row fields (accuracy, agreement, cosine_mean, ...)
Score = Callable[[Manifest, dict], dict]


def find_chromium() -> str | None:
    """$EDGEPORT_CHROMIUM, else a system Chromium; None means Playwright's own browser (if the user installed it)."""
    env = os.environ.get("EDGEPORT_CHROMIUM")
    if env:
        if not Path(env).is_file():
            raise InputError(f"EDGEPORT_CHROMIUM={env} does not exist; install Chromium (apt-get install chromium,"
                             " or `playwright install chromium`) or point EDGEPORT_CHROMIUM at its executable")
        return env
    for c in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if c and Path(c).is_file():
            return c
    return None


def unavailable() -> str | None:
    """Why the browser runtimes cannot run here (one line with the fix), or None: the runtime registry asks."""
    from .server import NODE_MODULES, WEB

    try:
        exe = find_chromium()
    except InputError as e:
        return str(e)
    if exe is None:
        try:
            from playwright._impl._driver import compute_driver_executable  # noqa: F401  (Playwright's own browser)
        except ImportError:
            return "no Chromium: apt-get install chromium, or set EDGEPORT_CHROMIUM=/path/to/chrome"
    if not (NODE_MODULES / "@tensorflow" / "tfjs").is_dir():
        return f"JS runtimes are not installed; run `npm ci --prefix {WEB}` (or ./run setup)"
    return None


def launch(p):
    exe = find_chromium()
    try:
        return p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:
        raise InputError(
            "no usable Chromium: install one (Debian/Ubuntu: `apt-get install chromium`, or `playwright install chromium`)"
            f" or set EDGEPORT_CHROMIUM=/path/to/chrome ({one_line(e, 120)})"
        ) from None


def run_page_benchmark(folder: Path, *, backends: str = BACKENDS, quick: bool = False, timeout_s: float = 900,
                       browser=None, data: str | None = "builtin:digits", bench: dict | None = None,
                       threads=None, artifacts: list[str] | None = None) -> tuple[dict, list[str]]:
    """Serve `folder`, open the page in benchmark mode, return (page report, console errors).

    ``data``: the evaluation data spec (None: each artifact's own probe data set); ``bench``: the timing loop
    (web.server.BENCH_DEFAULT keys; ``quick`` picks BENCH_QUICK); ``threads``: the thread counts, one pass each
    (ints or "all"; default the bench settings' [1, "all"]); ``artifacts``: only these manifest names (default all).
    Pass an already-launched Playwright ``browser`` to reuse it; otherwise one is launched and closed here.

    A tab that crashes (out of memory, a runtime that aborts the renderer) costs only the artifacts it crashed on:
    the run is repeated one artifact per fresh tab, and an artifact that crashes its own tab gets an error row."""
    from .server import BENCH_DEFAULT, BENCH_QUICK, start_background

    if browser is None:
        find_chromium()  # fail fast, with the fix, before starting the server and the driver
    settings = {**(BENCH_QUICK if quick else BENCH_DEFAULT), **(bench or {})}
    if threads is not None:
        settings["threads"] = list(threads)
    srv, url = start_background(folder, data=data, bench=settings)
    try:
        if browser is not None:
            return _bench_isolating(browser, url, backends, timeout_s, artifacts, folder)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = launch(p)
            try:
                return _bench_isolating(b, url, backends, timeout_s, artifacts, folder)
            finally:
                b.close()
    finally:
        srv.shutdown()
        srv.server_close()


class TabCrashed(EdgeportError):
    """The page's renderer died (out of memory, or a runtime that aborted it); ``last``: the artifact it was on."""

    def __init__(self, msg: str, last: str | None = None):
        super().__init__(msg)
        self.last = last


def _bench_isolating(browser, url: str, backends: str, timeout_s: float, artifacts: list[str] | None,
                     folder: Path, top: bool = True) -> tuple[dict, list[str]]:
    """_bench_in, where a crashed tab costs only the artifact it was on: that one is rerun alone (a crashed row if
    it crashes again), and the others in a fresh tab (the same again if that one crashes). Each retry gets the full
    ``timeout_s``. Only a crash of the whole run of a single artifact (``top``) is raised to the caller."""
    try:
        return _bench_in(browser, url, backends, timeout_s, artifacts)
    except TabCrashed as e:
        names = artifacts or [m.name for m in _web_manifests(folder)]
        if len(names) <= 1:
            if top:
                raise
            return {"rows": [{"artifact": n, "crashed": str(e)} for n in names]}, []
        suspect = e.last if e.last in names else names[0]
        _log(f"browser: {one_line(e, 200)}; running {suspect} in a tab of its own and the other"
             f" {len(names) - 1} in another")
    merged, errors = _bench_isolating(browser, url, backends, timeout_s, [suspect], folder, top=False)
    rest, more = _bench_isolating(browser, url, backends, timeout_s, [n for n in names if n != suspect], folder,
                                  top=False)
    for k, v in rest.items():
        merged.setdefault(k, v)
    merged["rows"] = merged.get("rows", []) + rest.get("rows", [])
    return merged, errors + more


def _web_manifests(folder: Path) -> list[Manifest]:
    """The readable web manifests of ``folder`` (what its page lists)."""
    from edgeport.manifest import find_manifests

    ms = []
    for p in find_manifests([folder]):
        try:
            ms.append(Manifest.read(p))
        except EdgeportError:
            continue
    return _web_only(ms)


def _web_only(manifests) -> list[Manifest]:
    """The manifests a browser adapter runs (an unreadable one, or one of an unknown target, is not)."""
    out = []
    for m in manifests:
        try:
            if get_target(m.target).browser:
                out.append(m)
        except EdgeportError:
            continue
    return out


def _bench_in(browser, url: str, backends: str, timeout_s: float,
              artifacts: list[str] | None = None) -> tuple[dict, list[str]]:
    from urllib.parse import unquote, urlencode

    errors: list[str] = []
    crashed: list[bool] = []
    page = browser.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("crash", lambda *_: crashed.append(True))
    requested: list[str] = []  # the artifacts whose data the page asked for, in order: the last is in flight
    lost = lambda e: bool(crashed) or "crash" in str(e).lower()  # noqa: E731 - playwright's Error of a dead tab
    page.on("request", lambda r: requested.append(unquote(r.url.split("/api/data/", 1)[1]))
            if "/api/data/" in r.url else None)
    query = urlencode([("bench", "1"), ("backends", backends)] + [("artifact", a) for a in artifacts or []])
    try:
        try:
            page.goto(f"{url}?{query}")
            try:
                page.wait_for_function("['bench-done','error'].includes(document.querySelector('#status').dataset.state)",
                                       timeout=timeout_s * 1000)
            except Exception as e:  # playwright's TimeoutError, or the tab's crash
                if crashed:
                    raise
                raise EdgeportError(f"browser page did not finish within {timeout_s:g} s ({one_line(e, 120)});"
                                    f" last progress: {page.text_content('#bench-progress')}") from None
            if page.eval_on_selector("#status", "e => e.dataset.state") == "error":
                raise EdgeportError(f"browser page failed: {page.text_content('#status')}"
                                    + (f" (console: {one_line(errors[0], 200)})" if errors else ""))
            report = json.loads(page.text_content("#report"))
            # Outputs stay in the page as float32 until asked for, one row at a time (no giant string); a row whose
            # outputs cannot be handed over is that row's error, and a crash here is blamed on that row's artifact.
            for i, r in enumerate(report.get("rows", [])):
                if "pending" in (r.get("outputs"), r.get("probe_outputs")):
                    requested.append(r.get("artifact"))
                    try:
                        r.update(json.loads(page.evaluate("i => window.edgeportRowOutputs(i)", i)))
                    except Exception as e:  # noqa: BLE001 - playwright's Error: a page-side failure or a crash
                        if lost(e):
                            raise
                        r.update(outputs=None, probe_outputs=None,
                                 error=f"{r.get('runtime')}/{r.get('backend')}: outputs could not leave the page"
                                       f" ({one_line(e, 160)})")
            return report, errors
        except EdgeportError:
            raise
        except Exception as e:  # playwright's Error: the tab crashed or the driver lost it
            if lost(e):
                what = ", ".join(artifacts) if artifacts else "the benchmark"
                raise TabCrashed(f"the browser tab crashed running {what} (out of memory, or the runtime aborted"
                                 " the renderer)", last=requested[-1] if requested else None) from None
            raise EdgeportError(f"browser page failed: {one_line(e, 200)}") from None
    finally:
        try:
            page.close()
        except Exception:  # noqa: BLE001 - a crashed tab may already be gone
            pass


def decode_outputs(m: Manifest, encoded: dict | None) -> dict[str, np.ndarray] | None:
    """The page's base64 float32 outputs of all samples -> {name: (N, *shape[1:])}, in the manifest's output order."""
    if not encoded:
        return None
    out = {}
    for s in m.sig.outputs:
        if s.name not in encoded:
            raise EdgeportError(f"{m.name}: the page returned no output {s.name!r}")
        a = np.frombuffer(base64.b64decode(encoded[s.name]), "<f4")
        per = int(np.prod(s.shape[1:]))
        if per == 0 or a.size % per:
            raise EdgeportError(f"{m.name}: output {s.name!r} has {a.size} values, not a multiple of {per}")
        out[s.name] = a.reshape((-1, *s.shape[1:])).astype(np.float32)
    return out


def evaluate_in_browser(manifests: list[Manifest], data: str | None, score: Score, *, quick: bool = False,
                        bench: dict | None = None, browser=None, threads=None,
                        backends: str = BACKENDS) -> tuple[list[Row], dict]:
    """Rows for every web artifact x browser backend x thread count (``threads``: ints or "all", default 1 and
    all), scored by ``score(manifest, outputs)``, and the page's run facts (``{folder: {extra..., host...,
    capabilities}}``). Fills TF.js manifests' pending parity with what the browser measured.

    An unavailable backend is a row with ``skipped`` set; a page or artifact failure is an error row, never a lost
    report. Raises InputError only when the user must act (no Chromium, no JS runtimes)."""
    web = _web_only(manifests)
    rows: list[Row] = []
    facts: dict = {}
    for folder in sorted({m.folder for m in web}):
        mine = [m for m in web if m.folder == folder]
        _log(f"browser: evaluating {len(mine)} web artifact(s) in {folder} in headless Chromium ...")
        try:
            page_report, errors = run_page_benchmark(folder, quick=quick, bench=bench, browser=browser, data=data,
                                                     backends=backends, threads=threads,
                                                     artifacts=[m.name for m in mine])
        except InputError:
            raise  # no Chromium, no JS runtimes: the user must act; not a row
        except EdgeportError as e:
            rows += [_error_row(m, "-", str(e)) for m in mine]
            continue
        facts[str(folder)] = {**page_report.get("extra", {}), **page_report.get("host", {}),
                              "capabilities": page_report.get("capabilities"), "console_errors": errors[:20]}
        by_name: dict[str, list[dict]] = {}
        for r in page_report.get("rows", []):
            by_name.setdefault(r.get("artifact"), []).append(r)
        for m in mine:
            page_rows = by_name.get(m.name)
            if not page_rows:
                try:  # the page lists only artifacts whose files check out; say what the check found
                    m.check_files(hashes=False)
                    why = "the page did not list it"
                except EdgeportError as e:
                    why = one_line(e, 300)
                rows.append(_error_row(m, "-", f"the page did not run {m.name}: {why}"))
                continue
            if page_rows[0].get("crashed"):
                rows.append(_error_row(m, "-", page_rows[0]["crashed"] + "; the other artifacts were measured"
                                       " in tabs of their own"))
                continue
            rows += [_row(m, r, score) for r in page_rows]
            if not get_target(m.target).native:  # no host runtime measured its parity at conversion: the page did
                _fill_parity(m, page_rows)
    return rows, facts


def browser_capabilities(facts: dict) -> dict | None:
    """The capabilities the page detected, from evaluate_in_browser's facts (the same browser for every folder)."""
    return next((f["capabilities"] for f in facts.values() if f.get("capabilities")), None)


def _base(m: Manifest, backend: str, runtime: str = "browser") -> Row:
    return Row(artifact=m.name, target=m.target, recipe=m.recipe, source=str((m.source or {}).get("model", "")),
               runtime=runtime, backend=backend, threads=None, device="chromium", manifest=str(m.path), task=m.task,
               bytes=m.total_bytes, where="browser", weights=m.weights)


def _error_row(m: Manifest, backend: str, error: str) -> Row:
    row = _base(m, backend)
    row.error = error
    return row


def _row(m: Manifest, r: dict, score: Score) -> Row:
    row = _base(m, r.get("backend") or "-", r.get("runtime") or "browser")
    for k in ("threads", "runtime_version", "load_ms", "latency_ms", "runs", "samples", "skipped", "error", "build"):
        if r.get(k) is not None:
            setattr(row, k, r[k])
    if row.error or row.skipped:
        return row
    try:
        outs = decode_outputs(m, r.get("outputs"))
        if outs is None:
            raise EdgeportError(f"{m.name}: the page returned no outputs")
        known = set(Row.__dataclass_fields__)
        for k, v in (score(m, outs) or {}).items():
            if k in known:
                setattr(row, k, v)
        try:
            row.gzip_bytes = m.gzip_bytes()
        except OSError:
            pass
    except EdgeportError as e:
        row.error = one_line(e, 300)
    except Exception as e:  # noqa: BLE001 - a scoring bug must not lose the report
        row.error = f"scoring failed: {type(e).__name__}: {one_line(e, 200)}"
    return row


def _fill_parity(m: Manifest, page_rows: list[dict]) -> None:
    """A TF.js manifest's parity, measured in the browser on the convert-time probe rows (cpu backend first)."""
    from edgeport.metrics import parity_record

    probe = m.probe_arrays()
    if probe is None:
        return
    _, ref = probe
    # one row per backend: the fewest threads (the outputs do not depend on them)
    measured = {r["backend"]: r for r in sorted(page_rows, key=lambda r: -(r.get("threads") or 0))
                if r.get("probe_outputs") and not r.get("error")}
    if not measured:
        return
    backend = "cpu" if "cpu" in measured else sorted(measured)[0]
    try:
        by_backend = {}
        for b, r in sorted(measured.items()):
            got = decode_outputs(m, r["probe_outputs"])
            rec = parity_record(m.task, m.recipe, ref, got, f"{r.get('runtime', 'tfjs')} (headless Chromium), {b}")
            by_backend[b] = {"within_tolerance": rec["within_tolerance"], "outputs": rec["outputs"],
                             "failures": rec["failures"]}
        got = decode_outputs(m, measured[backend]["probe_outputs"])
        r0 = measured[backend]
        m.parity = parity_record(m.task, m.recipe, ref, got,
                                 f"{r0.get('runtime', 'tfjs')} {r0.get('runtime_version', '')} (headless Chromium), {backend}",
                                 by="browser", backend=backend, by_backend=by_backend)
    except EdgeportError as e:
        m.parity = {"status": "failed", "by": "browser", "error": one_line(e, 300)}
    m.write(m.folder)


def _register() -> None:
    import sys

    from edgeport.registry import register_browser

    register_browser("chromium", sys.modules[__name__])


_register()
