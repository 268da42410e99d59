"""The arm64 runtime (edgeport.edge.arm64): .onnx / .tflite / .pte on the aarch64 builds of ONNX Runtime, LiteRT and
ExecuTorch's C++ runtime in a Debian arm64 rootfs under qemu-user. Fast tests need nothing installed (CPU parsing, cpuinfo, the skipped row
without qemu); the slow ones run the real aarch64 runtimes under emulation and skip, saying the fix, on a machine
without qemu or root (`./run setup arm64`; `./run test` sets it up as root)."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from edgeport.config import EvaluateOptions
from edgeport.edge.arm64 import rootfs
from edgeport.edge.arm64.runner import parse_cpus
from edgeport.errors import InputError
from edgeport.registry import _AVAILABILITY, get_runtime

from .tiny import REF, X
from .tiny import artifact as _artifact

CPUS = ["cortex-a76", "neoverse-n1"]


def _needs_arm64():
    why = get_runtime("arm64").unavailable()
    if why:
        pytest.skip(f"arm64 runtime unavailable here: {why}")


def test_cpu_list_keeps_qemu_properties_with_their_model():
    assert parse_cpus("cortex-a76, max,sme=off,neoverse-n1") == ["cortex-a76", "max,sme=off", "neoverse-n1"]
    with pytest.raises(InputError, match="unknown CPU 'cortex-x9'.*cortex-a76"):
        parse_cpus("cortex-a76,cortex-x9")


def test_fake_cpuinfo_names_the_emulated_core():
    a76 = rootfs.cpuinfo_text("cortex-a76")
    assert "CPU implementer\t: 0x41" in a76 and "CPU part\t: 0xd0b" in a76 and "asimddp" in a76
    assert " sme" in rootfs.cpuinfo_text("max") and " sme" not in rootfs.cpuinfo_text("max,sme=off")
    assert rootfs.cpuinfo_text("cortex-a53", n=2).count("processor\t:") == 2


def test_every_cpu_edgeport_describes_is_one_qemu_emulates():
    """The rootfs's own qemu (Debian trixie's 10.x) emulates every core edgeport has a cpuinfo for, the issue's
    cortex-a55 and neoverse-v1 included."""
    if not rootfs.is_built():
        pytest.skip("no arm64 rootfs built here: ./run setup arm64")
    assert int(rootfs.qemu_version().split(".")[0]) >= 10, rootfs.qemu_version()
    assert rootfs.qemu_cpus() == list(rootfs.CPUS)


def test_without_qemu_each_artifact_is_a_skipped_row_with_the_fix(tmp_path, monkeypatch):
    from edgeport.evaluate import evaluate

    _artifact(tmp_path, "onnx")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delitem(_AVAILABILITY, "arm64", raising=False)
    try:
        report = evaluate([tmp_path], EvaluateOptions(threads=("1",), runtimes=("arm64",)), quick=True)
    finally:
        _AVAILABILITY.pop("arm64", None)  # the next test sees this machine's real tools
    (row,) = report.rows
    assert row.error is None and row.where == "emulated"
    assert "qemu-aarch64-static" in row.skipped and "apt-get install qemu-user-static mmdebstrap" in row.skipped


def test_rootfs_key_follows_the_lock(tmp_path, monkeypatch):
    k = rootfs.key()
    lock = tmp_path / "lock"
    lock.write_text(rootfs.LOCK.read_text().replace("numpy==2.1.3", "numpy==2.1.2"))
    monkeypatch.setattr(rootfs, "LOCK", lock)
    assert rootfs.key() != k and len(k) == 16


def test_a_built_rootfs_is_reused_not_rebuilt():
    if not rootfs.is_built():
        pytest.skip("no arm64 rootfs built here: ./run setup arm64")
    t0 = time.monotonic()
    assert rootfs.ensure() == rootfs.rootfs_path()
    assert time.monotonic() - t0 < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "tflite", "pte"])
def test_arm64_answers_like_numpy_and_like_x86(tmp_path, target):
    """Tiny Gemm artifacts made by each format's own toolchain: the aarch64 runtime on two emulated cores gives the
    numpy answer, and the host (x86) runtime's within 1e-4 of the output scale."""
    from edgeport.evaluate import evaluate

    _needs_arm64()
    _artifact(tmp_path, target)
    report = evaluate([tmp_path], EvaluateOptions(threads=("1",), runtimes=("arm64",),
                                                  runtime_options={"arm64": {"cpu": CPUS}}), quick=True)
    assert [r.cpu for r in report.rows] == CPUS
    scale = float(np.abs(REF).max())
    for row in report.rows:
        assert row.error is None and row.skipped is None, (row.error, row.skipped)
        assert row.runtime == "arm64" and row.where == "emulated" and row.threads == 1 and row.samples == len(X)
        assert row.latency_ms is None and "emulated: latency not measured" in row.note and row.cpu in row.note
        assert row.max_abs_diff < 1e-4 * scale and row.agreement == 1.0
        v = row.vs_host
        assert v["runtime"] == {"onnx": "onnxruntime", "tflite": "ai-edge-litert", "pte": "executorch.runtime"}[target]
        assert v["max_abs_diff"] <= 1e-4 * v["scale"] and v["agreement"] == 1.0
        if target == "tflite":  # LiteRT's aarch64 wheels stop at 1.4.0; the row says it is not the host's version
            assert row.runtime_version == "1.4.0" and "(host: " in row.note


TINY_BERT = '''
import torch, torch.nn as nn


def tiny_bert_cls():
    """A BERT encoder from transformers with a small random config (hidden 32, 2 layers, seq 16) and a 4-class head."""
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32)

    class Cls(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(cfg, add_pooling_layer=True)
            self.head = nn.Linear(32, 4)

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return self.head(out.pooler_output)
    return Cls().eval()
'''


@pytest.fixture(scope="module")
def arm64_matrix(tmp_path_factory, artifacts):
    """Both built-ins and a tiny BERT classifier, as .pte, .onnx and .tflite in fp32, dynamic-int8 and int8,
    evaluated on arm64 on two emulated cores (the issue's acceptance run). The built-ins' artifacts are the
    session's (tests/conftest.py converts every registered combination once)."""
    import sys

    from edgeport.convert import convert
    from edgeport.evaluate import evaluate
    from edgeport.signature import parse_input_spec

    _needs_arm64()
    root = tmp_path_factory.mktemp("arm64-matrix")
    (root / "armbert.py").write_text(TINY_BERT)
    rng = np.random.default_rng(0)
    n, seq = 96, 16
    np.savez(root / "bert.npz", input_ids=rng.integers(0, 120, (n, seq)),
             attention_mask=(np.arange(seq)[None] < rng.integers(4, seq, (n, 1))).astype(np.int64),
             token_type_ids=np.zeros((n, seq), np.int64), y=rng.integers(0, 4, n))
    sys.path.insert(0, str(root))
    t0 = time.monotonic()
    try:
        recipes, targets = ["fp32", "dynamic-int8", "int8"], ["pte", "onnx", "tflite"]
        builtin = {m: [artifacts / f"{m}.{q}.{t}.manifest.json" for t in targets for q in recipes
                       if (artifacts / f"{m}.{q}.{t}.manifest.json").is_file()]
                   for m in ("simplecnn-torch", "simplecnn-keras")}  # no Keras -> .pte
        assert len(builtin["simplecnn-torch"]) == 9 and len(builtin["simplecnn-keras"]) == 6, builtin
        ids = [parse_input_spec(f"{k}:int64[1,{seq}]") for k in ("input_ids", "attention_mask", "token_type_ids")]
        from edgeport.config import ConvertOptions

        convert("armbert:tiny_bert_cls", targets, recipes, root / "bert", ConvertOptions(calib=str(root / "bert.npz"),
                data=str(root / "bert.npz")), inputs=ids, task="classification")
        convert_s = time.monotonic() - t0
        opts = dict(threads=("1",), runtimes=("arm64",), runtime_options={"arm64": {"cpu": CPUS}})
        t1 = time.monotonic()
        rows = []
        for paths, data in ((builtin["simplecnn-torch"], None), (builtin["simplecnn-keras"], None),
                            ([root / "bert"], str(root / "bert.npz"))):
            rows += evaluate(paths, EvaluateOptions(data=data, **opts), quick=True).rows
        print(f"\narm64 matrix: converted in {convert_s:.0f} s, evaluated {len(rows)} rows in"
              f" {time.monotonic() - t1:.0f} s")
        for r in rows:  # the figures, for a person reading the log (-s)
            v = r.vs_host or {}
            print(f"  {r.artifact:40s} {r.cpu or '-':12s} acc {r.accuracy if r.accuracy is None else round(100 * r.accuracy, 2)}"
                  f" vs-x86 max|d| {v.get('max_abs_diff')} agree {v.get('agreement')} | {r.skipped or r.error or r.note}")
    finally:
        sys.path.remove(str(root))
    return rows


@pytest.mark.slow
def test_arm64_rows_for_every_artifact_recipe_and_cpu(arm64_matrix):
    rows = arm64_matrix
    got = {(r.source.split(":")[-1], r.target, r.recipe, r.cpu) for r in rows}
    want = {(s, t, q, c) for s in ("simplecnn-torch", "simplecnn-keras", "tiny_bert_cls")
            for t in ("onnx", "tflite", "pte") for q in ("fp32", "dynamic-int8", "int8") for c in CPUS
            if not (s == "simplecnn-keras" and t == "pte")}  # no Keras -> .pte
    assert got == want and len(rows) == len(want), sorted(want - got)
    for r in rows:
        assert r.error is None and r.skipped is None, (r.artifact, r.cpu, r.error, r.skipped)
        assert r.where == "emulated" and r.latency_ms is None and "latency not measured" in r.note
        assert r.accuracy is not None or r.cosine_mean is not None, r.artifact
        assert r.max_abs_diff is not None, r.artifact  # against the float model
        v = r.vs_host
        assert v and v.get("error") is None and v["max_abs_diff"] is not None, (r.artifact, v)  # against x86
        if r.recipe == "fp32":
            assert v["max_abs_diff"] <= 1e-4 * v["scale"], (r.artifact, r.cpu, v["max_abs_diff"], v["scale"])
    # .pte ran on ExecuTorch's own aarch64 C++ runtime (pte_runner reads the emulated core's hwcaps from its own
    # auxiliary vector: the dot-product bit both cores have), compared with executorch.runtime on x86
    pte = [r for r in arm64_matrix if r.target == "pte"]
    assert len(pte) == 2 * 3 * len(CPUS), len(pte)
    assert all(f"-cpu {r.cpu} [" in r.note and "asimddp" in r.note for r in pte), [r.note for r in pte]


def _pte_meta(folder, lines, outs):
    (folder / "meta.txt").write_text("\n".join(lines) + "\nhwcap 1155067 0\nseconds 0.1 0.2\n")
    for j, a in enumerate(outs):
        np.asarray(a).tofile(folder / f"out{j}.bin")


def test_pte_outputs_are_read_back_by_shape_and_dtype(tmp_path):
    from edgeport.edge.arm64.runner import _read_pte_outputs

    _pte_meta(tmp_path, ["out 0 6 1 3", "out 1 4 1 2"], [np.arange(6, dtype=np.float32), np.arange(4, dtype=np.int64)])
    arrays, meta = _read_pte_outputs(tmp_path, [0, 1], 2)
    assert arrays[0].shape == (2, 3) and arrays[0].dtype == np.float32 and arrays[0][1].tolist() == [3, 4, 5]
    assert arrays[1].shape == (2, 2) and arrays[1].dtype == np.int64
    assert meta["hwcaps"] == ["atomics", "asimddp"] and meta["seconds"] == {"start": 0.1, "run": 0.2}


@pytest.mark.parametrize("lines, outs, want", [
    (["out 0 6 1 3"], [np.arange(5, dtype=np.float32)], r"output 0 of shape \[1, 3\] over 2 samples came back as 5"),
    (["out 0 6 4 3"], [np.arange(24, dtype=np.float32)], r"re-convert it with a batch-1 output"),
    (["out 0 15 1 3"], [np.arange(6, dtype=np.float32)], r"scalar type 15, which edgeport cannot read"),
    (["out 0 6 1 3"], [np.arange(6, dtype=np.float32)], r"returned 1 outputs on arm64, the manifest names 2"),
])
def test_pte_outputs_that_do_not_fit_are_one_line_naming_the_artifact(tmp_path, lines, outs, want):
    from edgeport.edge.arm64.runner import _read_pte_outputs
    from edgeport.errors import ArtifactError

    _pte_meta(tmp_path, lines, outs)
    with pytest.raises(ArtifactError, match=want) as e:
        _read_pte_outputs(tmp_path, [0, 1] if "manifest names" in want else [0], 2, "m.fp32.pte")
    assert str(e.value).startswith("m.fp32.pte: ") and "\n" not in str(e.value)


def test_the_pte_runner_is_keyed_by_its_source_not_by_where_the_checkout_is(tmp_path, monkeypatch):
    name = rootfs.pte_runner_name()
    moved = tmp_path / "elsewhere" / rootfs.PTE_RUNNER.name
    moved.parent.mkdir()
    moved.write_bytes(rootfs.PTE_RUNNER.read_bytes())
    monkeypatch.setattr(rootfs, "PTE_RUNNER", moved)
    assert rootfs.pte_runner_name() == name
    moved.write_bytes(moved.read_bytes() + b"// edited\n")
    assert rootfs.pte_runner_name() != name


def test_without_the_cross_compiler_pte_rows_name_it_and_the_rest_still_run(monkeypatch):
    from edgeport.edge.arm64.runner import Arm64Runner

    real = shutil.which
    monkeypatch.setattr(rootfs, "pte_runner_name", lambda: "pte_runner-not-built")
    monkeypatch.setattr(rootfs.shutil, "which", lambda n: None if n == rootfs.CROSS_CXX else real(n))

    class M:
        target = "pte"

    why = Arm64Runner.accepts(M())
    assert why and "g++-aarch64-linux-gnu" in why and "\n" not in why
    M.target = "onnx"
    assert Arm64Runner.accepts(M()) is None


@pytest.mark.slow
def test_the_guest_sees_one_cpu_no_host_process_and_writes_only_its_job_folder(tmp_path):
    """The sandbox: a fresh /proc, a read-only rootfs and artifact folder, a minimal /dev, one CPU listed."""
    import subprocess

    _needs_arm64()
    root = rootfs.ensure()
    (tmp_path / "art").mkdir()
    (tmp_path / "job").mkdir()
    code = ("import json, os\nw = []\nfor p in ('/usr/x', '/opt/edgeport/x', '/work/artifact/x', '/work/job/x', '/tmp/x'):\n"
            "    try:\n        open(p, 'w').close(); w.append(p)\n    except OSError:\n        pass\n"
            "print(json.dumps({'pids': [d for d in os.listdir('/proc') if d.isdigit()], 'writable': w,"
            " 'dev': sorted(os.listdir('/dev')), 'cpus': open('/sys/devices/system/cpu/possible').read().strip(),"
            " 'cpuinfo': open('/proc/cpuinfo').read().count('processor')}))")
    cmd = rootfs.guest_command(root, "cortex-a76", tmp_path / "art", tmp_path / "job", ["-c", code],
                               program="/usr/bin/python3.11")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-500:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(got["pids"]) <= 2, got["pids"]  # itself (and its shell), none of the host's
    assert got["writable"] == ["/work/job/x", "/tmp/x"], got["writable"]
    assert got["dev"] == ["null", "random", "urandom", "zero"] and got["cpus"] == "0" and got["cpuinfo"] == 1
    assert not (root / "usr/x").exists() and (tmp_path / "job/x").exists()


def test_inspect_of_a_pte_on_arm64_is_one_line_naming_what_works(tmp_path):
    """A .pte runs on arm64 but is not captured tensor by tensor there: a one-line refusal, before any emulation."""
    from edgeport.edge.arm64.layers import compare_layers

    m = _artifact(tmp_path, "pte")
    with pytest.raises(InputError, match=r"compares \.onnx and \.tflite artifacts tensor by tensor, not \.pte"):
        compare_layers(m, {s.name: X[:1] for s in m.sig.inputs}, "cortex-a76")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_inspect_compares_arm_and_x86_tensor_by_tensor(tmp_path, capsys, target):
    from edgeport.app.cli import main

    _needs_arm64()
    _artifact(tmp_path, target)
    assert main(["inspect", str(next(tmp_path.glob(f"*.{target}.manifest.json"))), "--runtime", "arm64",
                 "--arm-cpu", "neoverse-n1", "--max-samples", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["cpu"] == "neoverse-n1" and "aarch64" in r["runtime"] for r in rows)
    assert not any(r["diverges"] for r in rows), rows  # a float Gemm: ARM and x86 agree on every tensor
    assert rows[-1]["max_abs_diff"] <= 1e-4 * rows[-1]["scale"]
    if target == "onnx":
        assert rows[-1]["op"] == "Gemm"


def _row(runtime, where, cpu, acc, vs=None):
    from edgeport.report import Row

    return Row(artifact="m.dynamic-int8.onnx", target="onnx", recipe="dynamic-int8", source="builtin:m",
               runtime=runtime, backend="onnxruntime", threads=1, device="local", accuracy=acc, float_accuracy=0.98,
               accuracy_drop_pp=round((0.98 - acc) * 100, 2), agreement=acc / 0.98, where=where, cpu=cpu, vs_host=vs)


def test_pytest_assertion_and_report_single_out_arm_rows():
    """The SME case's shape: the x86 row within budget, the emulated ARM row not; runtime="arm64" checks the ARM rows
    and says which core; the report's note says how far ARM is from x86 and that it diverges."""
    from edgeport.report import Report, emulated_note
    from edgeport.testing import QuantizedAccuracyError, assert_quantized_close

    vs = {"runtime": "onnxruntime", "output": "logits", "max_abs_diff": 86.0, "agreement": 0.478, "cosine_mean": 0.41,
          "snr_db": -12.0, "scale": 21.4}
    rep = Report(data="builtin:digits")
    rep.rows = [_row("onnxruntime", "host", None, 0.98), _row("arm64", "emulated", "max", 0.49, vs)]
    assert assert_quantized_close(rep, max_drop=0.5, runtime="onnxruntime")
    with pytest.raises(QuantizedAccuracyError, match="on emulated max"):
        assert_quantized_close(rep, max_drop=0.5, runtime="arm64")
    note = emulated_note(rep.rows[1])
    assert "ARM max (emulated)" in note and "vs onnxruntime (x86) max|d| 86" in note
    assert "DIVERGES from onnxruntime: logits max|d| 86, agreement 47.8% < 98%" in note
    assert "DIVERGES" not in emulated_note(_row("arm64", "emulated", "cortex-a76", 0.98, {**vs, "max_abs_diff": 2e-6,
                                                                                         "agreement": 1.0,
                                                                                         "cosine_mean": 1.0,
                                                                                         "snr_db": 140.0}))
