"""Runtime plugins, each on one tiny artifact made here by its format's own toolchain (no edgeport converter, no
browser): every host runtime answers like numpy, and the registry's selection, availability and refusal paths give
rows and one-line errors, never tracebacks."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.config import EvaluateOptions
from edgeport.registry import get_runtime, runtimes, targets

from .tiny import BUILD, REF, X, artifact

HOST = sorted((r.name, r.formats[0]) for r in runtimes().values() if r.where == "host" and r.default)


def test_every_format_with_a_host_runtime_is_covered_here():
    assert {f for _, f in HOST} <= set(BUILD), "add a tiny-artifact builder for the new host runtime's format"
    assert {f for _, f in HOST} == {n for n, t in targets().items() if t.native}


@pytest.mark.parametrize("runtime,target", HOST)
def test_host_runtime_answers_like_numpy(tmp_path, runtime, target):
    from edgeport.evaluate import evaluate

    artifact(tmp_path, target)
    report = evaluate([tmp_path], EvaluateOptions(threads=("1",), runtimes=(runtime,)), quick=True)
    (row,) = report.rows
    assert row.error is None and row.skipped is None, (row.error, row.skipped)
    assert row.runtime == runtime and row.where == "host" and row.threads == 1
    assert row.max_abs_diff < 1e-4 * float(np.abs(REF).max()), row.max_abs_diff  # against the numpy reference
    assert row.agreement == 1.0 and row.samples == len(X)
    assert row.latency_ms["p50"] > 0 and row.runs >= 20


def test_runtime_selection_skips_what_cannot_run_with_a_reason(tmp_path):
    """An unavailable runtime (adb without a phone here), and a format the selected runtimes do not run, are
    skipped rows saying why and what to do; the available runtime still measures."""
    from edgeport.evaluate import evaluate

    artifact(tmp_path, "onnx")
    artifact(tmp_path, "tflite")
    why = get_runtime("adb").unavailable()
    report = evaluate([tmp_path], EvaluateOptions(threads=("1",), runtimes=("onnxruntime", "adb")), quick=True)
    by = {(r.artifact, r.runtime): r for r in report.rows}
    assert by[("tiny.fp32.onnx", "onnxruntime")].error is None
    if why:  # a machine with adb and a phone measures there instead
        assert by[("tiny.fp32.tflite", "adb")].skipped == why and "adb" in why
    report = evaluate([tmp_path], EvaluateOptions(threads=("1",), runtimes=("onnxruntime",)), quick=True)
    (tfl,) = [r for r in report.rows if r.artifact == "tiny.fp32.tflite"]
    assert tfl.skipped.startswith("no selected runtime runs tflite artifacts; add --runtime ai-edge-litert")


def test_cli_runtime_errors_are_one_line(tmp_path, capsys):
    from edgeport.app.cli import main

    artifact(tmp_path, "onnx")
    assert main(["evaluate", str(tmp_path), "--runtime", "tpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown runtime 'tpu'; known: " in err and "onnxruntime" in err
    if get_runtime("adb").unavailable():
        assert main(["evaluate", str(tmp_path), "--runtime", "adb", "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "runtime adb is not available here: adb not found" in err
    assert main(["evaluate", str(tmp_path), "--tflite-benchmark", "/x", "--out", str(tmp_path / "r")]) == 2
    assert "flags of runtime adb were given, but that runtime is not selected" in capsys.readouterr().err


def test_targets_lists_runtimes_with_availability(capsys):
    from edgeport.app.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for r in runtimes().values():
        assert r.name in out
    assert "available here" in out and "no: adb not found" in out or get_runtime("adb").unavailable() is None
