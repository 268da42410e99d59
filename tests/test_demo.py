"""The main job end to end: `edgeport demo --no-serve` from the console script, as the README runs it."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_no_serve(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.run([sys.executable, "-m", "edgeport", "demo", "--no-serve", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=1800, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    devices = {r["device"] for r in report["rows"]}
    assert {"local", "chromium"} <= devices
    assert not [r for r in report["rows"] if r["error"] and not r["error"].startswith("backend unavailable")]
    # Native and browser rows of the same .tflite artifact sit side by side.
    same = {r["artifact"] for r in report["rows"] if r["device"] == "local"} & {r["artifact"] for r in report["rows"] if r["device"] == "chromium"}
    assert "simplecnn-keras.fp32.tflite" in same
    # The browser filled the TF.js manifests' pending parity.
    m = json.loads((tmp_path / "artifacts" / "simplecnn-keras.fp32.tfjs.manifest.json").read_text())
    assert m["parity"]["status"] == "measured" and m["parity"]["outputs"][0]["max_abs_diff"] <= 1e-3
    # Fallback backends (WebGL rendered in software by SwiftShader where there is no GPU, TF.js's plain-JS cpu) are
    # skipped rows saying so, not figures; a real GPU's WebGL and every wasm backend are measured
    for r in (r for r in report["rows"] if r["device"] == "chromium" and r["backend"] in ("webgl", "cpu", "wasm")):
        fallback = "software GL" in (r.get("build") or "") or r["backend"] == "cpu"
        assert (r["skipped"] and "not a deployment target" in r["skipped"]) if fallback else r["latency_ms"], r
    assert report["extra"]["demo_wall_s"] > 0 and report["extra"]["convert_s"] > 0
    assert (tmp_path / "report" / "report.html").stat().st_size > 10_000
    assert "Best artifact per target" in p.stdout
