"""The demo page in real headless Chromium, driven by Playwright: drawing, every web artifact, benchmark mode."""

import json
import math

import pytest

from edgeport.web.server import start_background


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


def predictions(page, n):
    page.wait_for_function(f"Object.keys(JSON.parse(document.querySelector('#predictions').textContent || '{{}}')).length >= {n}"
                           " && document.querySelector('#status').dataset.state === 'ready'", timeout=120_000)
    return json.loads(page.text_content("#predictions"))


def web_artifacts(manifests):
    return sorted(m.name for m in manifests.values()
                  if m.target == "tfjs" or (m.target == "tflite" and m.recipe in ("fp32", "int8")
                                            and all(t["dtype"] != "int8" for t in m.signature["inputs"])))


def test_page_loads_without_console_errors(browser, page_url, manifests):
    page, errors = open_page(browser, page_url)
    assert errors == []
    cards = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.artifact)")
    assert sorted(cards) == web_artifacts(manifests)
    note = page.text_content("#backend-note")
    assert "webgpu" in note.lower() or "All backends" in note  # WebGPU shown as unavailable here, not an error
    page.close()


def test_drawn_one_and_zero(browser, page_url, manifests):
    page, errors = open_page(browser, page_url)
    names = web_artifacts(manifests)
    draw(page, [(140, 40 + 10 * i) for i in range(21)])  # a vertical stroke: "1"
    preds = predictions(page, len(names))
    assert sorted(preds) == names
    for n, p in preds.items():
        assert "error" not in p, f"{n}: {p}"
        assert len(p["top3"]) == 3 and p["ms"] > 0
    page.click("#clear")
    loop = [(140 + 60 * math.sin(t / 30 * 2 * math.pi), 140 - 95 * math.cos(t / 30 * 2 * math.pi)) for t in range(32)]
    draw(page, loop)  # a closed loop: "0"
    page.wait_for_timeout(200)
    preds = predictions(page, len(names))
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
    tfjs = {r["backend"] for r in rows if r["runtime"] == "tfjs" and not r.get("error")}
    assert {"cpu", "wasm", "webgl"} <= tfjs
    webgpu = [r for r in rows if r["backend"] == "webgpu"]
    assert webgpu and all(r.get("unavailable") for r in webgpu)  # no adapter here: unavailable, not a failure
    for r in rows:
        if r.get("unavailable"):
            continue
        assert r["error"] is None, r
        assert r["samples"] == 360 and 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]


def test_browser_accuracy_matches_native(browser_report, native_report):
    report, _ = browser_report
    native, _ = native_report
    for r in report["rows"]:
        if r["runtime"] != "litert.js" or r.get("error"):
            continue
        nat = [n for n in native.rows if n.artifact == r["artifact"] and n.threads == 1]
        assert nat, r["artifact"]
        assert abs(100 * (r["accuracy"] - nat[0].accuracy)) <= 0.5, r["artifact"]


def test_tfjs_fp32_agrees_with_keras(browser_report):
    report, _ = browser_report
    rows = [r for r in report["rows"] if r["artifact"] == "simplecnn-keras.fp32.tfjs" and not r.get("error")]
    assert len(rows) >= 3
    for r in rows:
        assert r["probe"]["samples"] >= 64
        assert r["probe"]["max_abs_diff"] <= 1e-3, r["backend"]
        assert r["probe"]["top1_agreement"] == 1
