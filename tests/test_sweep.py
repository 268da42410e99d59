"""edgeport sweep: the matrix, content keys, the coverage table (fast); a real sweep on the local pool, a rerun that
does nothing, a sweep killed with SIGKILL and resumed, and the same sweep on a real Dask cluster that loses a
worker (slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeport.app.cli import main
from edgeport.edge.sweep import jobs as J
from edgeport.edge.sweep.limits import classify
from edgeport.edge.sweep.matrix import load_matrix
from edgeport.edge.sweep.report import coverage, markdown
from edgeport.edge.sweep.run import make_plan
from edgeport.errors import InputError

ROOT = Path(__file__).resolve().parent.parent

SMALL = """
[defaults]
threads = ["1"]
quick = true

[[model]]
model = "builtin:simplecnn-torch"
to = ["onnx"]
quant = ["fp32", "int8"]

[[model]]
model = "builtin:simplecnn-keras"
to = ["tflite"]
quant = ["fp32"]
"""


def _write(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------------------ fast
def test_unknown_key_is_one_line_with_the_known_keys(tmp_path, capsys):
    p = _write(tmp_path, '[[model]]\nmodel = "builtin:simplecnn-torch"\nquantize = "int8"\n')
    assert main(["sweep", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown key 'quantize'" in err and "quant" in err and "max-drop" in err
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.parametrize("text, words", [
    ('[defaults]\nto = 3\n[[model]]\nmodel = "builtin:simplecnn-torch"\n', ["to = 3", "list or str"]),
    ('[[model]]\nmodel = "nets/missing.keras"\n', ["not found", "relative to"]),
    ('[[model]]\nmodel = "builtin:simplecnn-torch"\n[[model]]\nmodel = "builtin:simplecnn-torch"\n', ["second model"]),
    ('[[model]]\nmodel = "builtin:simplecnn-torch"\nruntime = ["gpu"]\n', ["runtime 'gpu'", "native, chromium"]),
    ('[[model]]\nmodel = "builtin:simplecnn-torch"\nto = ["tfl"]\n', ["unknown target 'tfl'"]),
    ('[extra]\n[[model]]\nmodel = "builtin:simplecnn-torch"\n', ["unknown table 'extra'"]),
    ('[[model]\n', ["not valid TOML"]),
])
def test_bad_matrices_name_the_problem(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        make_plan(load_matrix(p))
    for w in words:
        assert w in str(e.value)


def test_paths_are_relative_to_the_matrix_and_defaults_merge(tmp_path):
    (tmp_path / "sub" / "data").mkdir(parents=True)
    (tmp_path / "sub" / "data" / "c.npz").write_bytes(b"x")
    p = _write(tmp_path / "sub", '[defaults]\nquant = "fp32,int8"\ncalib = "data/c.npz"\n'
               '[[model]]\nmodel = "builtin:simplecnn-torch"\nto = ["onnx", "pte", "tfjs"]\n')
    mx = load_matrix(p)
    e = mx.entries[0]
    assert e.get("calib") == str((tmp_path / "sub" / "data" / "c.npz").resolve())
    assert e.get("quant") == ["fp32", "int8"] and e.framework == "torch"
    plan = make_plan(mx)
    assert {(j.target, j.recipe) for j in plan.converts} == {("onnx", "fp32"), ("onnx", "int8"), ("pte", "fp32"), ("pte", "int8")}
    assert {(t, r) for _, t, r, _ in plan.not_applicable} == {("tfjs", "fp32"), ("tfjs", "int8")}  # tfjs takes keras only


def test_cache_key_follows_content_not_paths(tmp_path):
    """Same weights under another path: same key. One byte of weights changed: that model's keys change, the
    other model's do not."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "w.safetensors").write_bytes(b"weights-1")
    (tmp_path / "nets.py").write_text("def build():\n    pass\n")
    text = ('[[model]]\nmodel = "nets:build"\ninput = ["x:float32[1,4]"]\nweights = "{w}"\nto = ["onnx"]\n'
            '[[model]]\nmodel = "builtin:simplecnn-torch"\nto = ["onnx"]\n')

    def keys(w):
        plan = make_plan(load_matrix(_write(tmp_path, text.format(w=w))))
        return [j.key for j in plan.converts], [m.key for ms in plan.measures.values() for m in ms]

    a = keys("a/w.safetensors")
    assert keys("b/w.safetensors") == a
    (tmp_path / "b" / "w.safetensors").write_bytes(b"weights-2")
    b = keys("b/w.safetensors")
    assert b[0][0] != a[0][0] and b[1][0] != a[1][0]  # the changed model: conversion and measurement
    assert b[0][1] == a[0][1] and b[1][1] == a[1][1]  # the other model: untouched
    (tmp_path / "nets.py").write_text("def build():\n    return None\n")  # the factory's code is content too
    assert keys("b/w.safetensors")[0][0] != b[0][0]


def test_factory_code_is_carried_for_remote_workers(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "nets.py").write_text("from .blocks import B\n")
    (tmp_path / "pkg" / "blocks.py").write_text("B = 1\n")
    e = load_matrix(_write(tmp_path, '[[model]]\nmodel = "pkg.nets:build"\ninput = ["x:float32[1,4]"]\n')).entries[0]
    files = J.source_files(e, tmp_path.resolve())
    assert set(files) == {"py/pkg/__init__.py", "py/pkg/nets.py", "py/pkg/blocks.py"}


def test_failures_are_grouped():
    assert classify({"type": "ConversionFailed", "message": "converter crashed (SIGSEGV) while making this artifact"},
                    "tflite")["group"] == "limitation"
    lim = classify({"type": "ConversionError", "message": "onnx.checker: Loop subgraph not topologically sorted"}, "onnx")
    assert lim["group"] == "limitation" and "Loop" in lim["what"] and lim["workaround"]
    assert classify({"type": "UnsupportedError", "message": "op foo"})["group"] == "limitation"
    assert classify({"type": "InputError", "message": "bad --input"})["group"] == "input"
    assert classify({"type": "ConversionFailed", "message": "TypeError: 'module' object is not callable"})["group"] == "edgeport"
    assert classify({"type": "KeyError", "message": "'x'"})["group"] == "edgeport"
    # as the zoo printed them: onnx.checker's own words for the Keras RNNs, and where a converter error was raised
    rnn = classify({"type": "ConversionError", "message": "keras-lstm.int8: onnx.checker failed: Nodes in a graph must"
                    " be topologically sorted, however input 'x' of node: name: rnn/while/TensorListGetItem"}, "onnx")
    assert rnn["group"] == "limitation" and "Loop" in rnn["what"]
    up = "m -> m.int8: litert-torch PT2E failed: boom (raised in {}:609)"
    assert classify({"type": "ConversionError", "message": up.format("litert_torch.quantize.x")})["group"] == "limitation"
    assert classify({"type": "ConversionError", "message": up.format("edgeport.converters.tflite.x")})["group"] == "edgeport"


def test_a_converter_error_names_the_module_it_was_raised_in():
    from edgeport.converters.common import raised_in

    def inner():
        [][1]

    try:
        inner()
    except IndexError as e:
        assert raised_in(e) == f"{__name__}:{inner.__code__.co_firstlineno + 1}"


def test_coverage_summary_and_markdown(tmp_path):
    plan = make_plan(load_matrix(_write(tmp_path, SMALL)))
    cells = [
        {"model": "simplecnn-torch", "framework": "torch", "target": "onnx", "recipe": "fp32", "status": "ok",
         "task": "classification", "parity": {"agreement": 1.0}},
        {"model": "simplecnn-torch", "framework": "torch", "target": "onnx", "recipe": "int8", "status": "failed",
         **classify({"type": "ConversionFailed", "message": "converter crashed (SIGSEGV) while making this artifact"}, "tflite")},
        {"model": "simplecnn-keras", "framework": "keras", "target": "onnx", "recipe": "fp32", "status": "drift",
         "task": "classification", "parity": {"agreement": 0.9}, "group": "parity", "reason": "agreement 90%"},
        {"model": "simplecnn-keras", "framework": "keras", "target": "pte", "recipe": "fp32", "status": "n/a"},
    ]
    cov = coverage(cells, plan)
    assert cov["summary_lines"] == ["onnx fp32: 1/2", "onnx int8: 0/1"]  # n/a counts nowhere
    assert set(cov["failures"]) == {"limitation", "parity"}
    md = markdown(cov)
    # the grid's rule in numbers, from the task registry (not the evaluate budget)
    assert "quantized: top-1 agreement >= 0.98" in md and "quantized: SNR >= 20.0 dB" in md
    assert "| simplecnn-torch | torch | ✓ agree 100.0% | ✗ limitation |" in md
    assert "| onnx fp32 | 1 | 1 | 0 | 0 | 2 |" in md


# ------------------------------------------------------------------------------------------------------ slow
def _comparable(report_dir: Path) -> list[tuple]:
    """The rows of a sweep report that must not depend on where or how it ran (latency and load time aside)."""
    d = json.loads((report_dir / "report.json").read_text())
    out = []
    for r in d["rows"]:
        out.append((r["artifact"], r["target"], r["recipe"], r["source"], r["runtime"], r["threads"], r["bytes"],
                    r["error"], None if r["agreement"] is None else round(r["agreement"], 6),
                    None if r["accuracy"] is None else round(r["accuracy"], 6),
                    None if r["max_abs_diff"] is None else round(r["max_abs_diff"], 4)))
    return sorted(out, key=str)


def _cells(report_dir: Path) -> list[tuple]:
    cov = json.loads((report_dir / "coverage.json").read_text())
    return sorted((c["model"], c["target"], c["recipe"], c["status"], c.get("bytes")) for c in cov["cells"])


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    m = _write(d, SMALL)
    t0 = time.monotonic()
    assert main(["sweep", str(m), "--out", str(d / "out")]) == 0
    return m, d / "out", time.monotonic() - t0


@pytest.mark.slow
def test_local_sweep_report_and_rerun_does_nothing(local_sweep, capsys):
    m, out, first = local_sweep
    cov = json.loads((out / "coverage.json").read_text())
    assert cov["summary_lines"] == ["tflite fp32: 1/1", "onnx fp32: 1/1", "onnx int8: 1/1"]
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert len(rows) == 3 and all(r["error"] is None and r["accuracy"] > 0.9 for r in rows)
    assert (out / "artifacts" / "simplecnn-torch" / "simplecnn-torch.int8.onnx.manifest.json").is_file()
    html = (out / "report.html").read_text()
    assert "id='filter'" in html and "class='grid'" in html and "<svg" in html
    t0 = time.monotonic()
    assert main(["sweep", str(m), "--out", str(out)]) == 0
    again = time.monotonic() - t0
    assert "6 jobs, 0 ran, 6 cached" in capsys.readouterr().out
    assert again < 15, f"a rerun with nothing changed took {again:.1f}s (first run {first:.1f}s)"


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_does_only_the_rest(local_sweep, tmp_path):
    m, ref, _ = local_sweep
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgeport", "sweep", str(m), "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    done = out / ".cache" / "convert"
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if done.is_dir() and sum(1 for p in done.iterdir() if ".part" not in p.name) >= 1:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    finished = {p.name for p in done.iterdir() if ".part" not in p.name}
    assert all((done / k / "result.json").is_file() for k in finished)  # a result folder is complete or absent
    from edgeport.edge.sweep.run import sweep

    before = len(finished) + len(list((out / ".cache" / "measure").glob("*.json")))
    _, _, stats = sweep(m, out, workers=1)
    assert stats.cached == before and stats.ran == stats.planned - before > 0
    assert _cells(out) == _cells(ref)
    assert _comparable(out) == _comparable(ref)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dask_cluster_that_loses_a_worker_gives_the_local_report(local_sweep, tmp_path):
    pytest.importorskip("distributed", reason="dask[distributed] is pinned in requirements.lock; install it to run this")
    m, ref, _ = local_sweep
    bindir = Path(sys.executable).parent
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = []
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3"}

    def start(*args):
        p = subprocess.Popen([str(bindir / "dask"), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, cwd=tmp_path, env=env)
        procs.append(p)
        return p

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        workers = [start("worker", addr, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                         "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}")) for i in range(2)]
        from distributed import Client

        with Client(addr, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)
        out = tmp_path / "out"
        import threading

        from edgeport.edge.sweep.run import sweep

        killed = threading.Event()

        def kill_one():  # a worker dies mid-sweep, after the first result has come back
            conv = out / ".cache" / "convert"
            t_end = time.monotonic() + 400
            while time.monotonic() < t_end:
                if conv.is_dir() and any(".part" not in p.name for p in conv.iterdir()):
                    os.killpg(workers[0].pid, signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.3)

        t = threading.Thread(target=kill_one, daemon=True)
        t.start()
        _, _, stats = sweep(m, out, scheduler=addr)
        t.join(5)
        assert killed.is_set(), "no worker was killed"
        assert stats.failed == 0 and stats.ran == stats.planned
        assert _cells(out) == _cells(ref)
        assert _comparable(out) == _comparable(ref)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(30)


def test_one_sweep_writes_a_folder_at_a_time(tmp_path):
    from edgeport.edge.sweep.run import Cache

    first = Cache(tmp_path)
    first.lock()
    with pytest.raises(InputError, match="another edgeport sweep is writing"):
        Cache(tmp_path).lock()
    first._lock.close()
    Cache(tmp_path).lock()  # released with its holder


def test_a_carried_job_runs_from_its_own_copy(tmp_path):
    """What a remote worker does with a carried job: the files land in its folder, the options point there, the
    factory imports from there, and nothing of it stays importable after the job."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "zoo_nets_x.py").write_text("VALUE = 7\n")
    (tmp_path / "src" / "c.npz").write_bytes(b"calib")
    m = _write(tmp_path / "src", '[[model]]\nmodel = "zoo_nets_x:build"\ninput = ["x:float32[1,4]"]\ncalib = "c.npz"\n')
    plan = make_plan(load_matrix(m))
    e = plan.matrix.entries[0]
    job = {"spec": e.spec, "opts": dict(e.opts), "root": str(tmp_path / "elsewhere"),
           "carried": {k: f.read_bytes() for k, f in plan.files[e.label].items()}}
    work = tmp_path / "worker"
    got = J._materialize(job, work)
    assert got["spec"] == "zoo_nets_x:build"
    assert Path(got["opts"]["calib"]).read_bytes() == b"calib" and str(work) in got["opts"]["calib"]
    import importlib

    assert importlib.import_module("zoo_nets_x").VALUE == 7
    assert importlib.import_module("zoo_nets_x").__file__.startswith(str(work))
    J._forget(work)
    assert "zoo_nets_x" not in sys.modules and not any(p.startswith(str(work)) for p in sys.path)
