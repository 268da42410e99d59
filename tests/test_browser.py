"""The demo page in real headless Chromium, driven by Playwright: drawing, every web artifact, benchmark mode.

Uses the session fixtures of conftest.py: `artifacts` (the built-in models converted), `browser` (one Chromium)
and `browser_report` (the page's benchmark mode over `artifacts`, quick timing)."""

import json
import math
import os

import numpy as np
import pytest

from edgeport.web.browser import decode_outputs
from edgeport.web.server import start_background


# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page_url(artifacts):
    srv, url = start_background(artifacts)
    yield url
    srv.shutdown()
    srv.server_close()


def open_page(browser, url, width=1200):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("document.querySelector('#status').dataset.state === 'ready'", timeout=120_000)
    return page, errors


def draw(page, points):
    box = page.locator("#pad").bounding_box()
    sx, sy = box["width"] / 280, box["height"] / 280
    page.mouse.move(box["x"] + points[0][0] * sx, box["y"] + points[0][1] * sy)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=2)
    page.mouse.up()


def predictions(page, seq, n):
    """The answers written after update number `seq` of #predictions, once `n` artifacts have answered."""
    page.wait_for_function(f"Number(document.querySelector('#predictions').dataset.seq || 0) > {seq}"
                           f" && Object.keys(JSON.parse(document.querySelector('#predictions').textContent)).length >= {n}",
                           timeout=120_000)
    return json.loads(page.text_content("#predictions"))


def seq(page):
    return int(page.eval_on_selector("#predictions", "e => e.dataset.seq || 0"))


def draw_artifacts(manifests):
    """Web artifacts (a browser adapter) that are single-image classifiers: every built-in tflite and tfjs one."""
    from edgeport.registry import get_target

    return sorted(m.name for m in manifests.values() if get_target(m.target).browser and m.task == "classification"
                  and m.sig.single_image is not None)


def test_page_loads_without_console_errors(browser, page_url, manifests):
    page, errors = open_page(browser, page_url)
    assert errors == []
    cards = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.artifact)")
    assert sorted(cards) == draw_artifacts(manifests)
    assert page.is_visible("#draw-panel") and not page.is_visible("#sentence-panel")
    note = page.text_content("#backend-note")
    assert "webgpu: no WebGPU adapter" in note or "All backends" in note  # shown as unavailable, not an error
    page.close()


def test_drawn_one_and_zero(browser, page_url, manifests):
    page, errors = open_page(browser, page_url)
    names = draw_artifacts(manifests)
    s = seq(page)
    draw(page, [(140, 40 + 10 * i) for i in range(21)])  # a vertical stroke: "1"
    preds = predictions(page, s, len(names))
    assert sorted(preds) == names
    for n, p in preds.items():
        assert "error" not in p, f"{n}: {p}"
        assert len(p["top3"]) == 3 and p["ms"] > 0
    page.click("#clear")
    s = seq(page)
    loop = [(140 + 60 * math.sin(t / 30 * 2 * math.pi), 140 - 95 * math.cos(t / 30 * 2 * math.pi)) for t in range(32)]
    draw(page, loop)  # a closed loop: "0"
    preds = predictions(page, s, len(names))
    for n in names:
        if ".fp32." in n:
            assert preds[n]["top1"] == "0", f"{n}: {preds[n]}"
    assert errors == []
    page.close()


def test_page_fits_a_phone(browser, page_url):
    page, _ = open_page(browser, page_url, width=390)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()


def test_benchmark_rows_for_each_backend(browser_report, manifests):
    report, errors = browser_report
    assert errors == []
    rows = report["rows"]
    assert {r["artifact"] for r in rows} == set(draw_artifacts(manifests))
    tfjs = {r["backend"] for r in rows if r["runtime"] == "tfjs" and not r["error"] and not r["skipped"]}
    assert {"cpu", "wasm", "webgl"} <= tfjs
    webgpu = [r for r in rows if r["backend"] == "webgpu"]
    # Without an adapter (CI): skipped, not a failure; with one (a GPU machine): measured. Never an error.
    assert webgpu and all(not r["error"] for r in webgpu)
    for r in rows:
        if r["skipped"]:
            continue
        assert r["error"] is None, r
        assert r["samples"] == 360 and 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert set(r["outputs"]) == {"logits"} and r["device"] == "chromium" and r["threads"] in (None, 1, os.cpu_count())


def test_browser_outputs_match_native(browser_report, manifests):
    """LiteRT.js rows (fp32 and the int8-I/O models too) against the native LiteRT interpreter, on the same data."""
    from edgeport.data import load_dataset, model_inputs
    from edgeport.registry import runner_for

    report, _ = browser_report
    ds = load_dataset("builtin:digits", "heldout")
    for r in report["rows"]:
        if r["runtime"] != "litert.js" or r["skipped"]:
            continue
        m = manifests[r["artifact"]]
        got = decode_outputs(m, r["outputs"])["logits"]
        runner = runner_for(m.target)(m, threads=1)
        runner.load()
        native = runner.run(model_inputs(ds, m.sig, m.preprocessing, root=m.folder))["logits"]
        assert (got.argmax(1) == native.argmax(1)).mean() >= 0.99, r["artifact"]
        if m.recipe == "fp32":
            np.testing.assert_allclose(got, native, atol=1e-4, err_msg=r["artifact"])


def test_tfjs_fp32_agrees_with_keras(browser_report, manifests):
    report, _ = browser_report
    m = manifests["simplecnn-keras.fp32.tfjs"]
    _, ref = m.probe_arrays()
    rows = [r for r in report["rows"] if r["artifact"] == m.name and not r["error"] and not r["skipped"]]
    assert len(rows) >= 3
    for r in rows:
        got = decode_outputs(m, r["probe_outputs"])["logits"]
        assert len(got) >= 64
        assert np.abs(got - ref["logits"]).max() <= 1e-3, r["backend"]
        assert (got.argmax(1) == ref["logits"].argmax(1)).all()


class _CrashingBrowser:
    """The session's Chromium, whose tabs really crash (CDP Page.crash kills the renderer) when the page asks for a
    victim's evaluation data, i.e. when it starts that artifact."""

    def __init__(self, browser, victims):
        self.browser, self.victims, self.crashes = browser, victims, 0

    def new_page(self, *a, **k):
        page = self.browser.new_page(*a, **k)
        cdp = page.context.new_cdp_session(page)

        def crash(route):
            self.crashes += 1
            try:
                cdp.send("Page.crash")
            except Exception:  # noqa: BLE001 - the tab is gone before CDP answers
                pass
            try:
                route.abort()
            except Exception:  # noqa: BLE001
                pass

        for v in self.victims:
            page.route(f"**/api/data/{v}", crash)
        return page


@pytest.mark.parametrize("victims", [(1,), (1, 2)], ids=["one", "two-the-last-left"])
def test_a_crashed_tab_costs_only_the_artifact_it_was_on(browser, manifests, victims):
    """A renderer that dies (OOM, a runtime abort) is one error row; the other artifacts of the folder keep their
    rows, scored from their real outputs. The artifact in flight is found from the page's own data requests, so
    recovery takes two fresh tabs per crash, not one per artifact; a crash among the artifacts left over, down to
    the last one, is handled the same way."""
    from edgeport.web.browser import evaluate_in_browser

    names = sorted(n for n, m in manifests.items() if m.target in ("tflite", "tfjs") and m.recipe == "fp32")[:3]
    bad = [names[i] for i in victims]
    scored = {}
    crashing = _CrashingBrowser(browser, bad)
    rows, _ = evaluate_in_browser([manifests[n] for n in names], None,
                                  lambda m, outs: scored.setdefault(m.name, sorted(outs)) and {},
                                  quick=True, browser=crashing, threads=[1], backends="wasm")
    by = {r.artifact: r for r in rows}
    assert set(by) == set(names)
    for n in names:
        if n in bad:
            assert by[n].error and "tab crashed running " + n in by[n].error, by[n].error
        else:
            assert by[n].error is None and by[n].latency_ms["p50"] > 0, (n, by[n].error)
            assert scored[n] == ["logits"]
    assert crashing.crashes == 2 * len(bad)  # each crash: the run it ended, then the victim alone


def test_browser_without_data_measures_the_probe_rows(browser, tmp_path):
    """No --data and no default set: the page gets the probe rows the native side measures (64 of 100 data rows
    here), so browser rows are scored against the float outputs recorded on those same rows."""
    import torch

    from edgeport.config import ConvertOptions, EvaluateOptions
    from edgeport.convert import convert
    from edgeport.evaluate import PROBE_DATA, evaluate
    from edgeport.signature import make_input
    from edgeport.sources import load_source

    torch.manual_seed(0)
    src = load_source(torch.nn.Sequential(torch.nn.Linear(6, 4)).eval(), inputs=[make_input("x", "float32", (1, 6))])
    np.savez(tmp_path / "rows.npz", x=np.random.default_rng(0).normal(size=(100, 6)).astype(np.float32))
    (m,) = convert(src, ["tflite"], ["fp32"], tmp_path / "art", ConvertOptions(data=str(tmp_path / "rows.npz")),
                   task="classification")
    report = evaluate([tmp_path / "art"], EvaluateOptions(threads=("1",)), browser=browser, quick=True)
    web = [r for r in report.rows if r.device == "chromium" and not r.skipped]
    native = [r for r in report.rows if r.device == "local"]
    assert web and native and report.extra["data_by_source"][m.source["model"]] == PROBE_DATA
    for r in web + native:
        assert r.error is None and r.samples == 64 and r.agreement == 1.0 and r.accuracy is None, (r.backend, r.error)


def test_a_pixel_front_over_the_digits_model_answers_a_drawing_like_the_model(browser, tmp_path):
    """An Android input front (uint8 RGBA pixels in, gray inside the model) over simplecnn-torch: the page gives it the
    digits-shaped drawing with the grey level in R, G and B and alpha opaque (as edgeport.data does), so the drawn
    "0" and "1" get the answers the plain model gives."""
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert

    convert("builtin:simplecnn-torch", ["tflite"], ["fp32"], tmp_path / "plain", ConvertOptions())
    convert("builtin:simplecnn-torch", ["tflite"], ["fp32"], tmp_path / "front",
            ConvertOptions(input_format="rgba-uint8-nhwc"), name="simplecnn-torch-rgba")
    for f in (tmp_path / "front").iterdir():
        f.rename(tmp_path / "plain" / f.name)
    srv, url = start_background(tmp_path / "plain")
    try:
        page, errors = open_page(browser, url)
        names = sorted(page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.artifact)"))
        assert names == ["simplecnn-torch-rgba.fp32.tflite", "simplecnn-torch.fp32.tflite"], names
        for stroke, want in (([(140, 40 + 10 * i) for i in range(21)], "1"),
                             ([(140 + 60 * math.sin(t / 30 * 2 * math.pi), 140 - 95 * math.cos(t / 30 * 2 * math.pi))
                               for t in range(32)], "0")):
            page.click("#clear")
            s = seq(page)
            draw(page, stroke)
            preds = predictions(page, s, 2)
            assert preds["simplecnn-torch.fp32.tflite"]["top1"] == want, preds
            front, plain = preds["simplecnn-torch-rgba.fp32.tflite"], preds["simplecnn-torch.fp32.tflite"]
            assert front["top1"] == want, preds
            for a, b in zip(front["top3"], plain["top3"]):  # the same pixels: the same probabilities
                assert a["label"] == b["label"] and abs(a["p"] - b["p"]) < 1e-3, (front, plain)
        assert errors == []
        page.close()
    finally:
        srv.shutdown()
        srv.server_close()
