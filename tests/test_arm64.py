"""The arm64 runtime (edgeport.edge.arm64): .onnx / .tflite on the aarch64 builds of ONNX Runtime and LiteRT in a
Debian arm64 rootfs under qemu-user. Fast tests need nothing installed (CPU parsing, cpuinfo, the skipped row
without qemu); the slow ones run the real aarch64 runtimes under emulation and skip, saying the fix, on a machine
without qemu or root (`./run setup arm64`; `./run test` sets it up as root)."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from edgeport.config import EvaluateOptions
from edgeport.edge.arm64 import rootfs
from edgeport.edge.arm64.runner import parse_cpus
from edgeport.errors import InputError
from edgeport.registry import _AVAILABILITY, get_runtime

from .test_runtimes import REF, X, _artifact

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
    if shutil.which(rootfs.QEMU) is None:
        pytest.skip(f"{rootfs.QEMU} not installed: {rootfs.FIX_TOOLS}")
    assert rootfs.qemu_cpus() == list(rootfs.CPUS)


def test_without_qemu_each_artifact_is_a_skipped_row_with_the_fix(tmp_path, monkeypatch):
    from edgeport.edge.evaluate import evaluate

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
@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_arm64_answers_like_numpy_and_like_x86(tmp_path, target):
    """Tiny Gemm artifacts made by each format's own toolchain: the aarch64 runtime on two emulated cores gives the
    numpy answer, and the host (x86) runtime's within 1e-4 of the output scale."""
    from edgeport.edge.evaluate import evaluate

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
        assert v["runtime"] == {"onnx": "onnxruntime", "tflite": "ai-edge-litert"}[target]
        assert v["max_abs_diff"] <= 1e-4 * v["scale"] and v["agreement"] == 1.0
        if target == "tflite":  # LiteRT's aarch64 wheels stop at 1.4.0; the row says it is not the host's version
            assert row.runtime_version == "1.4.0" and "(host: " in row.note
