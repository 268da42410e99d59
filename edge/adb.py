"""`--device adb[:serial]`: push artifacts to an Android device and run the official benchmark binaries.

TFLite: `benchmark_model` (tensorflow/lite/tools/benchmark). ExecuTorch: `executor_runner`
(examples/portable/executor_runner, built with XNNPACK). Their outputs are parsed into report rows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgeport.config import EvaluateOptions
from edgeport.errors import InputError
from edgeport.manifest import Manifest
from edgeport.registry import RuntimeFlag, register_runtime
from edgeport.report import Row

REMOTE = "/data/local/tmp/edgeport"


# ------------------------------------------------------------------------------------------- parsing
_STAT = re.compile(r"count=(\d+)(?P<rest>.*)")


def parse_benchmark_model(text: str) -> dict:
    """Parse TFLite benchmark_model output.

    Uses the documented lines::

        Initialized session in 4.312ms.
        count=120 first=540 curr=410 min=395 max=780 avg=421.6 std=38 p5=398 median=412 p95=470
        Inference timings in us: Init: 4312, First inference: 540, Warmup (avg): 500.2, Inference (avg): 421.6
        Memory footprint delta from the start of the tool (MB): init=2.1 overall=5.3
    """
    out: dict = {}
    m = re.search(r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), Warmup \(avg\): ([\d.e+]+), Inference \(avg\): ([\d.e+]+)", text)
    if not m:
        raise InputError("benchmark_model output has no 'Inference timings in us' line; is the binary TFLite's benchmark_model?")
    out["load_ms"] = float(m.group(1)) / 1e3
    lat = {"mean": float(m.group(4)) / 1e3}
    stats = [s for s in _STAT.finditer(text)]
    if stats:  # the last count= line is the timed run
        last = stats[-1]
        kv = dict(re.findall(r"(\w+)=([\d.e+-]+)", last.group(0)))
        out["runs"] = int(kv["count"])
        if "std" in kv:
            lat["std"] = float(kv["std"]) / 1e3
        for src, dst in (("median", "p50"), ("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99")):
            if src in kv:
                lat[dst] = float(kv[src]) / 1e3
    out["latency_ms"] = lat
    mm = re.search(r"Memory footprint delta from the start of the tool \(MB\): init=([\d.]+) overall=([\d.]+)", text)
    if mm:
        out["peak_rss_delta_bytes"] = int(float(mm.group(2)) * 1024 * 1024)
    return out


def parse_executor_runner(text: str) -> dict:
    """Parse ExecuTorch executor_runner output: ``Model executed successfully N time(s) in T ms.``"""
    m = re.search(r"Model executed successfully (\d+) time\(s\) in ([\d.]+) ms", text)
    if not m:
        raise InputError("executor_runner output has no 'Model executed successfully N time(s) in T ms' line;"
                         " pass ExecuTorch's executor_runner built with XNNPACK")
    n, total = int(m.group(1)), float(m.group(2))
    return {"runs": n, "latency_ms": {"mean": total / n}}


# ------------------------------------------------------------------------------------------- device
def _adb(serial: str | None, *args: str, timeout: float = 600) -> str:
    cmd = ["adb", *(["-s", serial] if serial else []), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise InputError(f"`{' '.join(cmd)}` failed: {(p.stderr or p.stdout).strip()[:200]}")
    return p.stdout


def require_adb() -> None:
    if not shutil.which("adb"):
        raise InputError("adb not found on PATH; install Android platform-tools (Debian: apt-get install adb) and connect a device")


def check_setup(device: str, manifests: list[Manifest], tflite_benchmark: str | None, pte_runner: str | None) -> str | None:
    """Everything a user must have before an adb run, each with the fix. Returns the serial."""
    require_adb()
    serial = device.split(":", 1)[1] if ":" in device else None
    listed = [ln.split()[0] for ln in _adb(None, "devices").splitlines()[1:] if ln.strip().endswith("device")]
    if not listed:
        raise InputError("no Android device attached (adb devices lists none); connect one with USB debugging enabled")
    if serial and serial not in listed:
        raise InputError(f"device {serial} not attached; attached: {', '.join(listed)}")
    targets = {m.target for m in manifests}
    if "tflite" in targets and not tflite_benchmark:
        raise InputError("pass --tflite-benchmark PATH to TFLite's benchmark_model built for the device (e.g. android_arm64)")
    if "pte" in targets and not pte_runner:
        raise InputError("pass --pte-runner PATH to ExecuTorch's executor_runner built for the device with XNNPACK")
    for b in (tflite_benchmark, pte_runner):
        if b and not Path(b).is_file():
            raise InputError(f"benchmark binary not found: {b}; pass the path of the Android build")
    return serial or listed[0]


def evaluate_on_device(manifests: list[Manifest], ctx, options: EvaluateOptions) -> list[Row]:
    """The adb runtime's rows (latency and memory from the device's own benchmark binaries; no accuracy): the
    evaluator calls this for the ``.tflite`` and ``.pte`` artifacts it selected."""
    opts = options.runtime_options.get("adb", {})
    tflite_benchmark, pte_runner = opts.get("tflite_benchmark"), opts.get("pte_runner")
    serial = check_setup("adb:" + opts["serial"] if opts.get("serial") else "adb", manifests, tflite_benchmark, pte_runner)
    _adb(serial, "shell", "mkdir", "-p", REMOTE)
    bins = {}
    for name, b in (("benchmark_model", tflite_benchmark), ("executor_runner", pte_runner)):
        if b:
            _adb(serial, "push", b, f"{REMOTE}/{name}")
            _adb(serial, "shell", "chmod", "755", f"{REMOTE}/{name}")
            bins[name] = f"{REMOTE}/{name}"
    rows = []
    for m in manifests:
        _adb(serial, "push", str(m.entry_path), f"{REMOTE}/{Path(m.entry).name}")
        remote = f"{REMOTE}/{Path(m.entry).name}"
        for t in options.threads:
            threads = 4 if t == "all" else int(t)  # phones: the big cores
            row = Row(artifact=m.name, target=m.target, recipe=m.recipe, source=m.source["model"],
                      runtime="benchmark_model" if m.target == "tflite" else "executor_runner", backend="xnnpack",
                      threads=threads if m.target == "tflite" else None, device=f"adb:{serial}", manifest=str(m.path),
                      bytes=m.total_bytes, task=m.task, where="device",
                      note="device benchmark binaries: latency and memory, no accuracy")
            try:
                if m.target == "tflite":
                    text = _adb(serial, "shell", bins["benchmark_model"], f"--graph={remote}", f"--num_threads={threads}",
                                f"--warmup_runs={options.warmup}", f"--num_runs={options.min_runs}",
                                f"--min_secs={options.min_seconds}", "--use_xnnpack=true")
                    res = parse_benchmark_model(text)
                else:
                    text = _adb(serial, "shell", bins["executor_runner"], f"--model_path={remote}",
                                f"--num_executions={options.min_runs}")
                    res = parse_executor_runner(text)
                for k, v in res.items():
                    setattr(row, k, v)
            except (InputError, subprocess.TimeoutExpired) as e:
                row.error = str(e)
            rows.append(row)
            if m.target == "pte":
                break  # executor_runner has no thread flag; XNNPACK picks its own pool
    return rows


def _available() -> str | None:
    if not shutil.which("adb"):
        return "adb not found on PATH; install Android platform-tools (Debian: apt-get install adb) and connect a device"
    return None


register_runtime(
    "adb", formats=("tflite", "pte"), where="device", started="remote", evaluate=evaluate_on_device,
    available=_available, measures=("latency", "memory"),
    flags=(RuntimeFlag("--tflite-benchmark", "tflite_benchmark", "path to TFLite's benchmark_model built for the"
                       " device (runtime adb)", metavar="PATH"),
           RuntimeFlag("--pte-runner", "pte_runner", "path to ExecuTorch's executor_runner built for the device with"
                       " XNNPACK (runtime adb)", metavar="PATH"),
           RuntimeFlag("--adb-serial", "serial", "the device's serial when several are attached (runtime adb)",
                       metavar="SERIAL")),
    description="an Android phone over adb: TFLite benchmark_model and ExecuTorch executor_runner")
