"""The native evaluator: real runtimes, one row per artifact x threads, crash isolation, the HTML report."""

import json
import re
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeport.config import EvaluateOptions
from edgeport.evaluate import evaluate
from edgeport.manifest import Manifest
from edgeport.report import Report


# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


def test_fp32_accuracy_equals_float(native_report, float_accuracy):
    report, _ = native_report
    from edgeport.registry import targets

    fp32 = [r for r in report.rows if r.recipe == "fp32" and r.error is None and not r.skipped]
    assert {r.target for r in fp32} == {n for n, t in targets().items() if t.native}
    for r in fp32:
        assert abs(100 * (r.accuracy - float_accuracy[r.source])) <= 0.1, r.artifact
        assert r.agreement == 1.0 and r.max_abs_diff <= 1e-4
    assert report.float_baseline == pytest.approx(float_accuracy)


def test_rows_cover_every_native_artifact_at_both_thread_counts(native_report, manifests):
    report, _ = native_report
    from edgeport.registry import get_target

    native = [m for m in manifests.values() if get_target(m.target).native]
    threads = {1, os.cpu_count()}
    for m in native:
        got = {r.threads for r in report.rows if r.artifact == m.name}
        assert got == threads, m.name
    assert not [r for r in report.rows if r.error]
    skipped = {r.artifact for r in report.rows if r.skipped}
    assert skipped == {m.name for m in manifests.values() if not get_target(m.target).native}


def test_latency_and_sizes(native_report):
    report, _ = native_report
    for r in report.rows:
        if r.skipped:
            continue
        lat = r.latency_ms
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], r.artifact
        assert lat["mean"] > 0 and lat["std"] >= 0 and r.runs >= 20
        assert r.load_ms > 0 and r.peak_rss_delta_bytes >= 0
        m = Manifest.read(r.manifest)
        assert r.bytes == sum((m.folder / f["path"]).stat().st_size for f in m.files)
        assert 0 < r.gzip_bytes < r.bytes * 1.01
        assert r.ops_total and 0 < r.delegated <= r.ops_total


def test_html_report_holds_every_row(native_report):
    report, out = native_report
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Pareto" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # self-contained: nothing loaded from a network
    for r in report.rows:
        assert r.artifact in html
    again = Report.read(out)
    assert len(again.rows) == len(report.rows) and again.rows[0].latency_ms == report.rows[0].latency_ms


def test_budget_picks(native_report):
    report, _ = native_report
    from edgeport.report import Budget

    picks = report.picks(Budget(max_drop_pp=0.5))
    assert set(picks) == {"builtin:simplecnn-torch", "builtin:simplecnn-keras"}
    for src, p in picks.items():
        ok = [r for r in report.rows if r.source == src and r.accuracy_drop_pp is not None and r.accuracy_drop_pp <= 0.5]
        assert p["smallest"].bytes == min(r.bytes for r in ok)
        assert p["fastest"].latency_ms["p50"] == min(r.latency_ms["p50"] for r in ok)


# ------------------------------------------------------------------------------------ corrupted artifacts
def _copy(manifests, names, dest: Path) -> dict[str, Manifest]:
    out = {}
    for n in names:
        m = manifests[n]
        for f in m.files:
            (dest / f["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(m.folder / f["path"], dest / f["path"])
        shutil.copy(m.path, dest / m.path.name)
        out[n] = Manifest.read(dest / m.path.name)
    return out


def _damage(m: Manifest, new: bytes, *, rehash: bool) -> None:
    """Write damaged bytes; with rehash, update the manifest so that the runtime itself meets the bytes."""
    from edgeport.manifest import file_entries

    m.entry_path.write_bytes(new)
    if rehash:
        m.files = file_entries(m.folder, [f["path"] for f in m.files])
        m.write(m.folder)


def test_corrupted_artifacts_become_error_rows(tmp_path, manifests):
    good = ["simplecnn-keras.fp32.tflite", "simplecnn-torch.int8.pte"]
    rng = np.random.default_rng(0)
    cases = {}
    for i, (src, how) in enumerate([
        ("simplecnn-torch.fp32.tflite", "trunc:0.5"), ("simplecnn-torch.fp32.tflite", "trunc:0.02"),
        ("simplecnn-torch.fp32.tflite", "random-body"), ("simplecnn-torch.fp32.tflite", "random-weights"),
        ("simplecnn-torch.fp32.pte", "header"),
        ("simplecnn-torch.fp32.pte", "trunc:0.3"),
    ]):
        d = tmp_path / f"case{i}"
        d.mkdir()
        (m,) = _copy(manifests, [src], d).values()
        data = bytearray(m.entry_path.read_bytes())
        if how.startswith("trunc"):
            data = data[: int(len(data) * float(how.split(":")[1]))]
        elif how == "random-body":  # the flatbuffer's tables, just after the 8-byte header
            data[8:1032] = rng.integers(0, 256, 1024, dtype=np.uint8).tobytes()
        elif how == "random-weights":  # weights: loads fine, computes garbage (NaN here) -> caught by the NaN check
            lo = len(data) // 4
            data[lo: lo + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        elif how == "header":
            data[4:8] = b"XXXX"  # the .pte file identifier
        _damage(m, bytes(data), rehash=True)
        cases[str(d / m.path.name)] = how
    keep = tmp_path / "good"
    keep.mkdir()
    _copy(manifests, good, keep)
    paths = list(cases) + [str(keep)]
    report = evaluate(paths, EvaluateOptions(threads=("1",), timeout_s=120), quick=True)
    by_manifest = {r.manifest: r for r in report.rows}
    for path, how in cases.items():
        assert by_manifest[path].error, f"{how}: no error row"
    ok = [r for r in report.rows if r.artifact in good]
    assert len(ok) == 2 and all(r.error is None and r.accuracy > 0.97 for r in ok)


def test_manifest_problems_become_error_rows(tmp_path, manifests, native_report, capsys):
    from edgeport.app.cli import main

    ms = _copy(manifests, ["simplecnn-keras.fp32.tflite", "simplecnn-keras.int8.tflite", "simplecnn-torch.dynamic-int8.pte"], tmp_path)
    # 1. a manifest naming a missing file
    ms["simplecnn-keras.fp32.tflite"].entry_path.unlink()
    # 2. a manifest from a newer schema
    p = ms["simplecnn-keras.int8.tflite"].path
    d = json.loads(p.read_text())
    d["schema"] = 99
    p.write_text(json.dumps(d))
    # 3. a hash mismatch (bytes changed after conversion) is caught before any runtime sees the file
    pte = ms["simplecnn-torch.dynamic-int8.pte"]
    pte.entry_path.write_bytes(pte.entry_path.read_bytes()[:-10] + b"0123456789")
    code = main(["evaluate", str(tmp_path), "--threads", "1", "--quick", "--out", str(tmp_path / "rep"), "--strict"])
    out = capsys.readouterr()
    assert code == 1 and "--strict" in out.err
    rep = Report.read(tmp_path / "rep")
    errs = {r.artifact: r.error for r in rep.rows}
    assert "missing simplecnn-keras.fp32.tflite" in errs["simplecnn-keras.fp32.tflite"]
    assert "newer than this edgeport" in errs["simplecnn-keras.int8.tflite"]
    assert "sha256 differs" in errs["simplecnn-torch.dynamic-int8.pte"]
    assert "ERROR" in out.out  # the table shows the rows


def test_data_of_the_wrong_shape_is_an_error_row(tmp_path, manifests):
    _copy(manifests, ["simplecnn-keras.fp32.tflite"], tmp_path)
    np.savez(tmp_path / "eval.npz", x=np.zeros((10, 32, 32, 1), np.float32), y=np.zeros(10, np.int64))
    report = evaluate([tmp_path], EvaluateOptions(threads=("1",), data=str(tmp_path / "eval.npz")), quick=True)
    (row,) = report.rows
    assert "array 'image' has sample shape (32, 32, 1), but the model takes (28, 28, 1)" in row.error


# ------------------------------------------------------------------------------------ one worker per runtime
FAULT = """
import os
mode = os.environ.get("EDGEPORT_EVAL_FAULT")
if mode:
    import dataclasses
    import time

    import edgeport.registry as reg

    orig = reg.get_runtime

    def get_runtime(name):
        rt = orig(name)
        cls = rt.runner

        class Faulty(cls):
            def load(self):
                what = dict(x.split("=") for x in mode.split(",")).get(self.m.name)
                if what == "crash":
                    import ctypes

                    ctypes.string_at(0)  # SIGSEGV, as a broken runtime would
                if what == "hang":
                    time.sleep(3600)
                return super().load()

        return dataclasses.replace(rt, runner=Faulty)

    reg.get_runtime = get_runtime
"""


def test_one_crash_or_hang_costs_one_artifact_of_a_shared_worker(tmp_path, manifests, monkeypatch):
    """The artifacts of one runtime share a worker process; a segfault or a hang on one of them is that artifact's
    error row, and the artifacts after it are measured by a fresh worker."""
    names = ["simplecnn-keras.fp32.tflite", "simplecnn-keras.fp16.tflite", "simplecnn-keras.int8.tflite",
             "simplecnn-torch.fp32.tflite", "simplecnn-torch.int8.tflite"]
    _copy(manifests, names, tmp_path)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("EDGEPORT_EVAL_FAULT", f"{names[1]}=crash,{names[3]}=hang")
    report = evaluate([tmp_path], EvaluateOptions(threads=("1",), timeout_s=15), quick=True)
    by = {r.artifact: r for r in report.rows}
    assert [r.artifact for r in report.rows] == sorted(names)  # the manifests' order, whatever order results land in
    assert by[names[1]].error.startswith("runtime crashed (SIGSEGV)"), by[names[1]].error
    assert by[names[3]].error.startswith("timed out after 15s"), by[names[3]].error
    for n in (names[0], names[2], names[4]):
        assert by[n].error is None and by[n].accuracy > 0.97, (n, by[n].error)
