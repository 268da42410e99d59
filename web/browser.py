"""The browser evaluator: Playwright drives the demo page in headless Chromium and collects its report rows."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from edgeport.errors import EdgeportError, InputError, one_line
from edgeport.manifest import Manifest
from edgeport.report import Report, Row
from edgeport.console import log as _log

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]



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


def launch(p):
    exe = find_chromium()
    try:
        return p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:
        raise InputError(
            "no usable Chromium: install one (Debian/Ubuntu: `apt-get install chromium`, or `playwright install chromium`)"
            f" or set EDGEPORT_CHROMIUM=/path/to/chrome ({one_line(e, 120)})"
        ) from None


def run_page_benchmark(folder: Path, *, backends: str = "cpu,wasm,webgl,webgpu", quick: bool = False,
                       timeout_s: float = 900, browser=None) -> tuple[dict, list[str]]:
    """Serve `folder`, open the page in benchmark mode, return (page report, console errors).

    Pass an already-launched Playwright ``browser`` to reuse it; otherwise one is launched and closed here."""
    from .server import start_background

    if browser is None:
        find_chromium()  # fail fast, with the fix, before starting the server and the driver
    srv, url = start_background(folder)
    try:
        if browser is not None:
            return _bench_in(browser, url, backends, quick, timeout_s)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = launch(p)
            try:
                return _bench_in(b, url, backends, quick, timeout_s)
            finally:
                b.close()
    finally:
        srv.shutdown()
        srv.server_close()


def _bench_in(browser, url: str, backends: str, quick: bool, timeout_s: float) -> tuple[dict, list[str]]:
    errors: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url + f"?bench=1&backends={backends}" + ("&quick=1" if quick else ""))
        page.wait_for_function("['bench-done','error'].includes(document.querySelector('#status').dataset.state)",
                               timeout=timeout_s * 1000)
        if page.eval_on_selector("#status", "e => e.dataset.state") == "error":
            raise EdgeportError(f"browser page failed: {page.text_content('#status')}")
        return json.loads(page.text_content("#report")), errors
    finally:
        page.close()


def evaluate_in_browser(manifests: list[Manifest], options=None, *, report: Report | None = None,
                        float_preds: dict | None = None, quick: bool = False) -> list[Row]:
    """Rows for every web artifact x browser backend; fills the TF.js manifests' pending parity."""
    folders = sorted({m.folder for m in manifests})
    rows: list[Row] = []
    for folder in folders:
        _log(f"browser: benchmarking web artifacts in {folder} with headless Chromium ...")
        try:
            page_report, errors = run_page_benchmark(folder, quick=quick)
        except InputError:
            raise  # no Chromium, no JS runtimes: the user must act; not a row
        except EdgeportError as e:
            rows.append(Row(artifact=str(folder), target="?", recipe="?", source="?", runtime="chromium", backend="-",
                            threads=None, device="chromium", error=str(e)))
            continue
        if report is not None:
            report.extra.setdefault("browser", {})[str(folder)] = {**page_report.get("extra", {}), **page_report.get("host", {})}
        by_name = {m.name: m for m in manifests if m.folder == folder}
        for r in page_report["rows"]:
            m = by_name.get(r["artifact"])
            rows.append(_row_from_page(r, m, report, float_preds or {}))
        _fill_tfjs_parity(page_report["rows"], by_name)
    return rows


def _row_from_page(r: dict, m: Manifest | None, report: Report | None, float_preds: dict) -> Row:
    known = set(Row.__dataclass_fields__)
    row = Row(**{k: v for k, v in r.items() if k in known})
    if m is not None:
        row.manifest = str(m.path)
        row.gzip_bytes = m.gzip_bytes()
    fa = (report.float_baseline.get(row.source) if report else None)
    row.float_accuracy = fa
    if row.accuracy is not None and fa is not None:
        row.accuracy_drop_pp = round(100 * (fa - row.accuracy), 4)
    preds = r.get("predictions")
    ref = float_preds.get(row.source)
    if preds is not None and ref is not None:
        row.agreement = float((np.asarray(preds) == np.asarray(ref)).mean())
    elif r.get("probe"):
        row.agreement = r["probe"]["top1_agreement"]
    if r.get("probe"):
        row.max_abs_diff = r["probe"]["max_abs_diff"]
    return row


def _fill_tfjs_parity(rows: list[dict], by_name: dict[str, Manifest]) -> None:
    """Replace TF.js 'pending' parity with what the browser measured (probe batch, per backend)."""
    from edgeport.edge import parity as par

    for name, m in by_name.items():
        if m.target != "tfjs":
            continue
        measured = {r["backend"]: r["probe"] for r in rows if r["artifact"] == name and r.get("probe") and not r.get("error")}
        if not measured:
            continue
        primary = measured.get("cpu") or next(iter(measured.values()))
        out = {"name": m.signature["outputs"][0]["name"], "max_abs_diff": primary["max_abs_diff"], "max_rel_diff": None,
               "top1_agreement": primary["top1_agreement"], "samples": primary["samples"]}
        backend = "cpu" if "cpu" in measured else next(iter(measured))
        m.parity = par.record([out], m.recipe, f"tfjs (headless Chromium), {backend}", by_backend=measured)
        m.write(m.folder)
