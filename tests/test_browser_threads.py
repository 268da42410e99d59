"""Browser speed as a site would ship it (issue 12): every wasm runtime at 1 thread and at every core, each row with
its thread count and wasm build, beside the native row of the same artifact at the same threads; what the browser
offers recorded once per run; the draw page on the fastest setup. Real headless Chromium (the session `browser`
fixture of conftest.py) on a few of the built-in artifacts. No timing goals here: benchmarks/bench_browser_threads.py
measures."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgeport.errors import InputError
from edgeport.report import Report, table
from edgeport.web.server import STATIC, bench_threads, make_server, start_background

# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


ALL = os.cpu_count() or 1
# One built-in model, one artifact per browser runtime: LiteRT.js (.tflite, fp32 and int8), TF.js, onnxruntime-web.
PICK = ("simplecnn-keras.fp32.tflite", "simplecnn-keras.int8.tflite", "simplecnn-keras.fp32.tfjs",
        "simplecnn-keras.fp32.onnx")
HAS_ORT = (STATIC / "adapters" / "ort.js").is_file()


@pytest.fixture(scope="module")
def few(artifacts, tmp_path_factory) -> Path:
    """The picked artifacts (each with its manifest, probe and files), copied out of the session's artifacts."""
    out = tmp_path_factory.mktemp("few")
    for name in PICK:
        found = [p for p in artifacts.iterdir() if p.name == name or p.name.startswith(name + ".")]
        if not any(p.name.endswith(".manifest.json") for p in found):
            continue  # a target this build does not register
        for p in found:
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, out / p.name)
    return out


@pytest.fixture(scope="module")
def threads_report(few, browser, tmp_path_factory) -> tuple[Report, Path]:
    from edgeport.config import EvaluateOptions
    from edgeport.evaluate import evaluate

    out = tmp_path_factory.mktemp("threads-report")
    return evaluate([few], EvaluateOptions(threads=("1", "all")), out=out, browser=browser, quick=True), out


def _wasm_rows(report: Report, runtime: str):
    return [r for r in report.rows if r.device == "chromium" and r.runtime == runtime and r.backend == "wasm"]


@pytest.mark.parametrize("runtime,build", [("litert.js", "threaded"), ("tfjs", "threaded"),
                                           ("onnxruntime-web", "threaded")])
def test_wasm_rows_at_one_and_all_threads(threads_report, runtime, build):
    report, _ = threads_report
    if runtime == "onnxruntime-web" and not HAS_ORT:
        pytest.skip("no onnxruntime-web adapter in this checkout")
    rows = _wasm_rows(report, runtime)
    assert rows, f"no {runtime} wasm rows"
    for r in rows:
        assert r.error is None and not r.skipped, (r.artifact, r.threads, r.error, r.skipped)
        assert r.build and "simd" in r.build and build in r.build, r.build
        assert r.latency_ms["p50"] > 0 and r.samples == 360
    by_artifact: dict[str, set] = {}
    for r in rows:
        by_artifact.setdefault(r.artifact, set()).add(r.threads)
    assert all(t == {1, ALL} for t in by_artifact.values()), by_artifact


def test_litertjs_uses_the_relaxed_simd_threaded_build(threads_report):
    report, _ = threads_report
    caps = report.extra["browser_capabilities"]
    if not (caps["relaxedSimd"] and caps["threads"]):
        pytest.skip("this Chromium lacks relaxed SIMD or wasm threads")
    assert {r.build for r in _wasm_rows(report, "litert.js")} == {"relaxed-simd threaded (litert_wasm_threaded_internal)"}


def test_capabilities_recorded_once_per_run(threads_report):
    report, out = threads_report
    caps = report.extra["browser_capabilities"]
    assert caps["crossOriginIsolated"] is True and caps["sharedArrayBuffer"] is True  # the server's COOP/COEP
    assert caps["simd"] is True and caps["threads"] is True
    for k in ("relaxedSimd", "webgpu", "webnn", "webgl", "hardwareConcurrency", "userAgent", "jspi"):
        assert k in caps, k
    assert caps["webnn"] is False  # not in this Chromium; recorded, not assumed
    saved = json.loads((out / "report.json").read_text())
    assert saved["extra"]["browser_capabilities"] == caps
    html = (out / "report.html").read_text()
    assert "id='browser-capabilities'" in html and "relaxed SIMD" in html and "WebNN no" in html


def test_browser_rows_sit_beside_native_with_the_ratio(threads_report):
    report, out = threads_report
    text = table(report)
    lines = text.splitlines()
    assert "x native" in lines[1]
    for t in (1, ALL):
        native = next(r for r in report.rows if r.artifact == "simplecnn-keras.int8.tflite" and r.device == "local"
                      and r.threads == t)
        browser = next(r for r in _wasm_rows(report, "litert.js") if r.artifact == native.artifact and r.threads == t)
        ratio = browser.latency_ms["p50"] / native.latency_ms["p50"]
        at = [i for i, ln in enumerate(lines) if ln.startswith(native.artifact)]
        row_native = next(i for i in at if "ai-edge-litert/xnnpack" in lines[i] and f"  {t}  " in lines[i])
        assert "litert.js/wasm" in lines[row_native + 1] and f"{ratio:.2f}x" in lines[row_native + 1]
    assert "fastest in the browser:" in text and text.rstrip().splitlines()[-1].startswith("browser: ")
    html = (out / "report.html").read_text()
    assert "x native" in html and "fastest in the browser" in html


def test_reference_backends_are_labelled(threads_report):
    report, _ = threads_report
    text = table(report)
    cpu = [r for r in report.rows if r.runtime == "tfjs" and r.backend == "cpu" and not r.error]
    assert cpu and all(r.threads == 1 for r in cpu)
    assert "TF.js cpu (plain JS): reference only, not a deployment choice" in text
    webgl = [r for r in report.rows if r.backend == "webgl" and not r.error and not r.skipped]
    if webgl and "software" in (webgl[0].build or ""):
        assert "not a deployment choice" in text.split(webgl[0].build, 1)[1].splitlines()[0]


def test_bench_thread_settings_reach_the_page(few):
    assert bench_threads([1, "all", "2", 1]) == [1, "all", 2]
    for bad in ([0], ["two"], [], [True]):
        with pytest.raises(InputError, match="bench threads"):
            bench_threads(bad)
    srv = make_server(few, port=0, bench={"threads": [1, 3]})
    assert srv.RequestHandlerClass.bench["threads"] == [1, 3]
    srv.server_close()


def test_draw_page_runs_the_fastest_setup(few, browser):
    srv, url = start_background(few)
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(url)
        page.wait_for_function("document.querySelector('#status').dataset.state === 'ready'", timeout=120_000)
        setup = json.loads(page.eval_on_selector("#setup", "e => e.dataset.setup"))
        cores = page.evaluate("navigator.hardwareConcurrency")
        assert cores == ALL  # the override used for TF.js's thread pool is gone once it has started
        for rt in ("litert.js", "tfjs") + (("onnxruntime-web",) if HAS_ORT else ()):
            assert setup[rt]["backend"] == "wasm" and setup[rt]["threads"] == cores, (rt, setup[rt])
            assert "threaded" in setup[rt]["build"], setup[rt]
        assert "Running: " in page.text_content("#setup") and "thread" in page.text_content("#setup")
        assert "relaxedSimd" in page.text_content("#capabilities")
        assert errors == []
    finally:
        page.close()
        srv.shutdown()
        srv.server_close()
