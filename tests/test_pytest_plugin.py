"""The pytest plugin (edgeport.app.pytest_plugin; the assertion is edgeport.testing): fixtures, caching, budgets that explain themselves, --edgeport-report.

The plugin is exercised the way a user meets it: test files of their own, run by pytest in a subprocess with the
plugin loaded from its pytest11 entry point. That session converts for real (LiteRT, ExecuTorch) once per module;
the outer tests read its outcome. pytester runs in-process where nothing heavy is imported (-p no:edgeport).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from edgeport.report import Report, Row
from edgeport.testing import QuantizedAccuracyError, assert_quantized_close

# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


pytest_plugins = ["pytester"]

# A user's own model, defined in their test file: a small MLP trained for a few seeded steps on separable blobs,
# with held-out rows for accuracy (written per test to tmp_path: the cache keys on content, not on the path).
USER_MODEL = '''
import numpy as np
import pytest
import torch

from edgeport.testing import assert_quantized_close


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = 2.0 * np.eye(3, 8)[y] + rng.normal(0, 0.4, (n, 8))
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = blobs(600, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return net.eval()


def held_out(tmp_path):
    x, y = blobs(300, seed=1)
    np.savez(tmp_path / "heldout.npz", x=x, y=y)
    return tmp_path / "heldout.npz"
'''

PASSING = USER_MODEL + '''

def test_builtin(edgeport_convert, edgeport_evaluate):
    # isolate=False: convert in this process (the default, a worker process per call, costs a second TF/torch start)
    manifests = edgeport_convert("builtin:simplecnn-torch", to=["tflite", "pte"], quant=["fp32", "int8"], isolate=False)
    assert [m.name for m in manifests] == ["simplecnn-torch.fp32.tflite", "simplecnn-torch.int8.tflite",
                                           "simplecnn-torch.fp32.pte", "simplecnn-torch.int8.pte"]
    assert_quantized_close(edgeport_evaluate(manifests), max_drop=1.0)


def test_builtin_again(edgeport_convert, edgeport_evaluate):
    manifests = edgeport_convert("builtin:simplecnn-torch", to="tflite", quant="int8", isolate=False)
    rows = assert_quantized_close(edgeport_evaluate(manifests), max_drop=1.0, recipe="int8")
    assert {r.artifact for r in rows} == {"simplecnn-torch.int8.tflite"}


def test_my_model(edgeport_convert, edgeport_evaluate, mlp, tmp_path):
    manifests = edgeport_convert(mlp, to=["tflite"], quant=["int8"], calib=blobs(200, seed=2)[0],
                                 inputs=["x:float32[1,8]"], name="mlp")
    report = edgeport_evaluate(manifests, data=held_out(tmp_path))
    assert report.rows[0].float_accuracy > 0.95
    assert_quantized_close(report, max_drop=2.0)


def test_my_model_again(edgeport_convert, edgeport_evaluate, mlp, tmp_path):
    manifests = edgeport_convert(mlp, to=["tflite"], quant=["int8"], calib=blobs(200, seed=2)[0],
                                 inputs=["x:float32[1,8]"], name="mlp")
    assert_quantized_close(edgeport_evaluate(manifests, data=held_out(tmp_path)), max_drop=2.0, target="tflite")
'''

# A model whose int8 breaks for a real reason: one input feature in raw units (hundreds) and the signal in another
# (hundredths); per-tensor int8 input quantization rounds the signal away, so accuracy falls to about chance.
FAILING = '''
import numpy as np
import pytest
import torch

from edgeport.testing import assert_quantized_close


def mixed_scales(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.stack([rng.normal(0, 100, n), (2 * y - 1) * 0.05 + rng.normal(0, 0.01, n)], 1)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def artifacts(edgeport_convert):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x, y = mixed_scales(512, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return edgeport_convert(net.eval(), to=["tflite"], quant=["fp32", "int8"], calib=x[:200],
                            inputs=["x:float32[1,2]"], name="mixed")


@pytest.fixture(scope="module")
def report(artifacts, edgeport_evaluate):
    return edgeport_evaluate(artifacts, data=mixed_scales(300, seed=1))


def test_fp32_within_budget(report):
    assert_quantized_close(report, max_drop=1.0, recipe="fp32")


def test_int8_over_budget(report):
    assert_quantized_close(report, max_drop=1.0)


def test_filter_matches_nothing(report):
    assert_quantized_close(report, max_drop=1.0, target="pte")
'''

# Counts what the plugin converts and evaluates, seen from inside the user's session.
COUNTING_CONFTEST = '''
import json, os

import edgeport.convert
import edgeport.evaluate

_convert, _evaluate = edgeport.convert.convert, edgeport.evaluate.evaluate


def _log(**event):
    with open(os.path.join(os.path.dirname(__file__), "calls.jsonl"), "a") as f:
        f.write(json.dumps(event) + "\\n")


def counting_convert(model, targets, recipes, *a, **kw):
    for t in targets:
        for r in recipes:
            _log(kind="convert", model=str(getattr(model, "name", model)), target=t, recipe=r)
    return _convert(model, targets, recipes, *a, **kw)


def counting_evaluate(paths, *a, **kw):
    for p in paths:
        _log(kind="evaluate", path=str(p))
    return _evaluate(paths, *a, **kw)


edgeport.convert.convert = counting_convert
edgeport.evaluate.evaluate = counting_evaluate
'''


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One user session, in a subprocess (TF and torch register native ops once per process): two test files of a
    user, the plugin loaded from its entry point, --edgeport-report on."""
    path = tmp_path_factory.mktemp("user-session")
    (path / "test_user.py").write_text(PASSING)
    (path / "test_budget.py").write_text(FAILING)
    (path / "conftest.py").write_text(COUNTING_CONFTEST)
    report = path / "edgeport-report"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--basetemp",
                           str(path / "tmp"), "--edgeport-report", str(report)],
                          cwd=path, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    calls = [json.loads(ln) for ln in (path / "calls.jsonl").read_text().splitlines()]
    return proc, proc.stdout, calls, report


def _outcome(out: str, test: str) -> str:
    m = re.search(rf"^{re.escape(test)} (PASSED|FAILED|ERROR)", out, re.M)
    return m.group(1) if m else "missing"


# ------------------------------------------------------------------------------------------ in a user's session
def test_passing_budget(session):
    proc, out, _, _ = session
    for t in ("test_builtin", "test_builtin_again", "test_my_model", "test_my_model_again"):
        assert _outcome(out, f"test_user.py::{t}") == "PASSED", out[-3000:]
    assert _outcome(out, "test_budget.py::test_fp32_within_budget") == "PASSED", out[-3000:]
    assert proc.returncode == 1 and "2 failed, 5 passed" in out, out[-3000:]
    line = [ln for ln in out.splitlines() if ln.startswith("edgeport: ")]
    assert len(line) == 1, out[-3000:]
    assert re.match(r"edgeport: 7 artifacts evaluated; 7 converted, 2 reused; worst int8 drop \d+\.\d\d pp"
                    r" \(mixed\.int8\.tflite\); report: ", line[0]), line[0]


def test_each_artifact_converted_and_evaluated_once(session):
    _, out, calls, _ = session
    converted = sorted((c["model"], c["target"], c["recipe"]) for c in calls if c["kind"] == "convert")
    builtin = "builtin:simplecnn-torch"
    assert converted == sorted([(builtin, "tflite", "fp32"), (builtin, "tflite", "int8"), (builtin, "pte", "fp32"),
                                (builtin, "pte", "int8"), ("mlp", "tflite", "int8"), ("mixed", "tflite", "fp32"),
                                ("mixed", "tflite", "int8")]), converted
    evaluated = [c["path"] for c in calls if c["kind"] == "evaluate"]
    assert len(evaluated) == 7 and len(set(evaluated)) == 7, evaluated


def test_edgeport_report_writes_json_and_html(session):
    _, out, _, folder = session
    report = json.loads((folder / "report.json").read_text())
    arts = {r["artifact"] for r in report["rows"]}
    assert arts == {"simplecnn-torch.fp32.tflite", "simplecnn-torch.int8.tflite", "simplecnn-torch.fp32.pte",
                    "simplecnn-torch.int8.pte", "mlp.int8.tflite", "mixed.fp32.tflite", "mixed.int8.tflite"}
    assert all(r["error"] is None and r["accuracy"] is not None for r in report["rows"])
    html = (folder / "report.html").read_text()
    assert "mlp.int8.tflite" in html and "simplecnn-torch.int8.pte" in html
    assert f"report: {folder / 'report.json'}" in out


def test_failing_budget_names_artifact_and_drop(session):
    _, out, _, _ = session
    assert _outcome(out, "test_budget.py::test_int8_over_budget") == "FAILED", out[-3000:]
    head = re.search(r"E\s+edgeport\.testing\.QuantizedAccuracyError: edgeport: mixed\.int8\.tflite over budget:"
                     r" top-1 drop (\d+\.\d\d) pp > 1 pp", out)
    assert head, out[-5000:]
    assert float(head.group(1)) > 20  # the signal feature is rounded away: about chance
    # the table: artifact, runtime, metric, float baseline, value with the drop, budget
    row = re.search(r"E\s+mixed\.int8\.tflite\s+ai-edge-litert/xnnpack 1t\s+top-1 accuracy\s+(\d+\.\d\d)%\s+"
                    r"(\d+\.\d\d)% \(drop (\d+\.\d\d) pp\)\s+drop <= 1 pp", out)
    assert row, out[-5000:]
    assert float(row.group(1)) > 90 and abs(float(row.group(1)) - float(row.group(2)) - float(row.group(3))) < 0.02
    assert "within budget: mixed.fp32.tflite" in out
    assert re.search(r"test_budget\.py:\d+: QuantizedAccuracyError", out), out[-5000:]
    assert "assert_quantized_close(report, max_drop=1.0)" in out  # the user's line, not the plugin's internals
    assert "def assert_quantized_close" not in out


def test_filter_that_matches_nothing_fails(session):
    _, out, _, _ = session
    assert _outcome(out, "test_budget.py::test_filter_matches_nothing") == "FAILED", out[-3000:]
    assert re.search(r"edgeport: no row matched target='pte'; nothing was checked", out), out[-5000:]
    assert "The report has: mixed.fp32.tflite (tflite fp32), mixed.int8.tflite (tflite int8)" in out
    # pytest's short summary shows the first line of the table, not the exception's type
    assert re.search(r"^FAILED test_budget\.py::test_filter_matches_nothing - edgeport: no row matched", out, re.M)
    assert re.search(r"^FAILED test_budget\.py::test_int8_over_budget - edgeport: mixed\.int8\.tflite over budget",
                     out, re.M), out[-2000:]


def test_p_no_edgeport_disables_the_plugin(pytester):
    pytester.makepyfile(test_off="def test_uses_it(edgeport_convert):\n    pass\n")
    on = pytester.runpytest_inprocess("--fixtures", "-p", "no:cacheprovider")
    assert "edgeport_convert" in on.stdout.str() and "edgeport_evaluate" in on.stdout.str()
    off = pytester.runpytest_inprocess("-p", "no:edgeport", "-p", "no:cacheprovider")
    off.assert_outcomes(errors=1)
    assert "fixture 'edgeport_convert' not found" in off.stdout.str()
    assert "edgeport:" not in "\n".join(ln for ln in off.outlines if ln.startswith("edgeport"))
    bad = pytester.runpytest_inprocess("-p", "no:edgeport", "--edgeport-report", "x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_plugin_import_is_light():
    code = ("import sys, edgeport.testing, edgeport.app.pytest_plugin; heavy = [m for m in ('torch', 'tensorflow', 'keras', 'executorch')"
            " if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------------------------------ the assertion alone
def _row(artifact="m.int8.tflite", task="classification", **kw) -> Row:
    t, r = artifact.split(".")[2], artifact.split(".")[1]
    return Row(artifact=artifact, target=t, recipe=r, source="src", runtime="ai-edge-litert", backend="xnnpack",
               threads=1, device="local", task=task, **kw)


def _report(*rows) -> Report:
    return Report(rows=list(rows), float_baseline={"src": 0.9})


def test_classification_budget():
    rep = _report(_row("m.fp32.tflite", accuracy=0.9, float_accuracy=0.9, accuracy_drop_pp=0.0),
                  _row(accuracy=0.88, float_accuracy=0.9, accuracy_drop_pp=2.0))
    assert len(assert_quantized_close(rep, max_drop=2.0)) == 2
    with pytest.raises(QuantizedAccuracyError) as e:
        assert_quantized_close(rep, max_drop=1.5)
    msg = str(e.value)
    assert msg.splitlines()[0] == "edgeport: m.int8.tflite over budget: top-1 drop 2.00 pp > 1.5 pp"
    assert re.search(r"m\.int8\.tflite\s+ai-edge-litert/xnnpack 1t\s+top-1 accuracy\s+90\.00%\s+88\.00% \(drop 2\.00"
                     r" pp\)\s+drop <= 1\.5 pp", msg), msg
    assert "within budget: m.fp32.tflite" in msg
    assert_quantized_close(rep, max_drop=1.5, recipe="fp32")  # the filter narrows what is checked


def test_classification_without_labels_uses_agreement():
    rep = _report(_row(agreement=0.97))
    assert_quantized_close(rep, max_drop=3.5)
    with pytest.raises(QuantizedAccuracyError, match=r"top-1 disagreement with float 3\.00 pp > 1 pp"):
        assert_quantized_close(rep, max_drop=1)


def test_embedding_and_regression_budgets():
    emb = _report(_row("e.int8.pte", task="embedding", cosine_mean=0.985, cosine_min=0.9))
    assert_quantized_close(emb, min_cosine=0.98)
    with pytest.raises(QuantizedAccuracyError, match=r"e\.int8\.pte over budget: cosine 0\.98500 < 0\.99") as e:
        assert_quantized_close(emb, min_cosine=0.99)
    assert re.search(r"cosine vs float\s+1 \(itself\)\s+0\.98500 \(min 0\.9000\)\s+>= 0\.99", str(e.value))
    with pytest.raises(QuantizedAccuracyError, match=r"e\.int8\.pte is embedding; pass min_cosine= to check it"
                                                     r" \(max_drop= applies to classification rows only\)"):
        assert_quantized_close(emb, max_drop=1.0)
    reg = _report(_row("r.int8.tflite", task="regression", snr_db=24.0, max_abs_diff=0.1))
    assert_quantized_close(reg, min_snr_db=20)
    with pytest.raises(QuantizedAccuracyError, match=r"SNR 24\.0 dB < 30 dB"):
        assert_quantized_close(reg, min_snr_db=30)


def test_errors_unmeasured_and_empty_fail():
    with pytest.raises(QuantizedAccuracyError, match=r"m\.int8\.tflite failed on ai-edge-litert: runtime crashed"):
        assert_quantized_close(_report(_row(error="runtime crashed (SIGSEGV)")), max_drop=1)
    web = _row("w.uint8.tfjs", skipped="browser-only format; add --browser chromium to measure it")
    with pytest.raises(QuantizedAccuracyError, match=r"w\.uint8\.tfjs was not measured \(browser-only format\)(.|\n)*"
                                                     r"pass browser=\"chromium\" to edgeport_evaluate"):
        assert_quantized_close(_report(web), max_drop=1)
    with pytest.raises(QuantizedAccuracyError, match=r"no row matched the report; nothing was checked"):
        assert_quantized_close(_report(), max_drop=1)
    with pytest.raises(TypeError, match="needs a budget"):
        assert_quantized_close(_report(_row(accuracy_drop_pp=0.0)))
