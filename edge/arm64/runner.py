"""The arm64 Runner: one qemu-user run per (artifact, emulated CPU), every sample at once, inputs and outputs
exchanged as .npz files in a private job folder (see rootfs.py for the mount namespace and guest.py for the side
that runs under emulation)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from edgeport.errors import ArtifactError, InputError
from edgeport.runtime import Runner, check_feeds, dequantize_output, quantize_input

from . import rootfs

DEFAULT_CPUS = ("cortex-a76",)  # a typical phone core with the dot-product instructions (Armv8.2)
GUEST_RUNTIME = {"onnx": "onnxruntime", "tflite": "ai-edge-litert", "pte": "executorch"}
# ExecuTorch ScalarType codes (runtime/core/portable_type/scalar_type.h) -> numpy, for pte_runner's outputs
SCALAR_TYPES = {0: np.uint8, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64, 5: np.float16, 6: np.float32,
                7: np.float64, 11: np.bool_}
SCALAR_CODES = {np.dtype(t): c for c, t in SCALAR_TYPES.items()}  # numpy -> the code pte_runner checks inputs by
GUEST_TIMEOUT_S = 900


def parse_cpus(text: str) -> list[str]:
    """``--arm-cpu cortex-a55,cortex-a76,max`` -> qemu CPU models; a property list stays with its model
    (``max,sme=off``: properties are the comma items holding '=')."""
    out: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if "=" in item and out:
            out[-1] += "," + item
        else:
            out.append(item)
    for c in out:
        model = c.split(",")[0]
        if model not in rootfs.CPUS:
            raise InputError(f"--arm-cpu: unknown CPU {model!r}; edgeport's arm64 runtime emulates {', '.join(rootfs.CPUS)}"
                             " (properties after the name: max,sme=off)")
    return out


def guest_run(m, cpu: str, feeds: dict[str, np.ndarray], outputs: list[str], *, mode: str = "run",
              model: Path | None = None, extra: dict | None = None,
              collect: dict[str, Path] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Run artifact ``m`` (or the file ``model``, an instrumented copy) in the rootfs on emulated ``cpu``:
    ``feeds`` by tensor name in the artifact's dtypes -> (arrays by tensor name, the guest's facts). ``extra``: more
    job keys; ``collect``: files the guest writes into its job folder, copied out to the paths given."""
    root = rootfs.ensure()
    native = m.target == "pte"  # .pte: ExecuTorch's C++ runtime (pte_runner), no Python in the guest
    with tempfile.TemporaryDirectory(prefix="edgeport-arm64-") as tmp:
        job = Path(tmp)
        inside = f"/work/job/{model.name}" if model is not None else f"/work/artifact/{m.entry_path.name}"
        if model is not None:
            (job / model.name).write_bytes(model.read_bytes())
        if native:
            names = list(feeds)
            unknown = [b for b in names if feeds[b].dtype not in SCALAR_CODES]
            if unknown:
                raise ArtifactError(f"{m.name}: input {unknown[0]} is {feeds[unknown[0]].dtype}, which ExecuTorch's"
                                    " runtime does not take here")
            for k, b in enumerate(names):
                np.ascontiguousarray(feeds[b]).tofile(job / f"in{k}.bin")
            n = len(feeds[names[0]]) if names else 0
            args = [inside, "/work/job", str(n),
                    *[f"/work/job/in{k}.bin:{SCALAR_CODES[feeds[b].dtype]}" for k, b in enumerate(names)]]
            cmd = rootfs.guest_command(root, cpu, m.entry_path.parent, job, args, program=rootfs.ensure_pte_runner())
        else:
            np.savez(job / "in.npz", **feeds)
            spec = {"format": m.target, "model": inside, "inputs": list(feeds), "outputs": outputs, "mode": mode,
                    **(extra or {})}
            (job / "job.json").write_text(json.dumps(spec))
            cmd = rootfs.guest_command(root, cpu, m.entry_path.parent, job, ["/work/job/job.json"])
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=GUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ArtifactError(f"{m.name}: the arm64 guest on {cpu} did not finish in {GUEST_TIMEOUT_S} s") from None
        done = job / ("meta.txt" if native else "meta.json")
        if p.returncode != 0 or not done.exists():
            from edgeport.procs import signal_name

            why = signal_name(p.returncode) if p.returncode < 0 else f"exit {p.returncode}"
            if p.returncode in (132, 139, 134):  # the shell reports a signal as 128+n
                why = signal_name(-(p.returncode - 128))
            lines = p.stderr.strip().splitlines()
            said = [ln for ln in lines if ln.startswith("pte_runner:")]  # its own one line, past the runtime's logs
            tail = " | ".join(said[-1:] or lines[-2:])[-300:]
            raise ArtifactError(f"{m.name}: {GUEST_RUNTIME.get(m.target, m.target)} (aarch64) on emulated {cpu}"
                                f" failed ({why}): {tail or 'no output'}")
        if native:
            arrays, meta = _read_pte_outputs(job, outputs, n, m.name)
            meta["wall_s"] = round(time.monotonic() - t0, 2)
            return arrays, meta
        meta = json.loads((job / "meta.json").read_text())
        meta["wall_s"] = round(time.monotonic() - t0, 2)
        with np.load(job / "out.npz") as z:
            arrays = {name: z[f"t{i}"] for i, name in enumerate(meta["names"])}
        for name, dst in (collect or {}).items():
            if not (job / name).is_file():
                raise ArtifactError(f"{m.name}: the arm64 guest on {cpu} wrote no {name}")
            dst.write_bytes((job / name).read_bytes())
    return arrays, meta


def _read_pte_outputs(job: Path, outputs: list, n: int, name: str = "the .pte") -> tuple[dict, dict]:
    """pte_runner's out<j>.bin and meta.txt -> (arrays by output binding, (n, ...) each; the guest's facts)."""
    from .guest import HWCAP

    arrays: dict = {}
    caps: list[str] = []
    seconds = {}
    for line in (job / "meta.txt").read_text().splitlines():
        f = line.split()
        if f[0] == "out" and int(f[1]) < len(outputs):  # outputs past the manifest's are not compared, as on the host
            j, code, dims = int(f[1]), int(f[2]), tuple(int(d) for d in f[3:])
            if code not in SCALAR_TYPES:
                raise ArtifactError(f"{name}: output {j} has ExecuTorch scalar type {code}, which edgeport cannot read")
            raw = np.fromfile(job / f"out{j}.bin", dtype=SCALAR_TYPES[code]) if (job / f"out{j}.bin").exists() else None
            if raw is None or raw.size != n * int(np.prod(dims)) or (dims and dims[0] != 1):
                got = "nothing" if raw is None else f"{raw.size} values"
                raise ArtifactError(f"{name}: output {j} of shape {list(dims)} over {n} samples came back as {got} on"
                                    " arm64; re-convert it with a batch-1 output")
            arrays[outputs[j]] = raw.reshape((n, *dims[1:]))
        elif f[0] == "hwcap":
            for which, bits in ((1, int(f[1])), (2, int(f[2]))):
                caps += [c for bit, c in HWCAP[which].items() if bits >> bit & 1]
        elif f[0] == "seconds":
            seconds = {"start": round(float(f[1]), 2), "run": round(float(f[2]), 2)}
    if len(arrays) < len(outputs):
        raise ArtifactError(f"{name}: the program returned {len(arrays)} outputs on arm64, the manifest names"
                            f" {len(outputs)}; re-convert it")
    return arrays, {"runtime_version": rootfs.pins().get("executorch", "?"), "hwcaps": caps, "seconds": seconds}


class Arm64Runner(Runner):
    """.onnx on ONNX Runtime, .tflite on LiteRT and .pte on ExecuTorch's C++ runtime, the aarch64 builds, under
    qemu-user (one CPU per row)."""

    runtime = "arm64"
    backend = "qemu"
    threaded = False
    measures_latency = False
    latency_note = "emulated: latency not measured"

    @classmethod
    def accepts(cls, manifest) -> str | None:
        if manifest.target == "pte":
            return rootfs.pte_runner_missing()
        return None

    @classmethod
    def variants(cls, options: dict) -> list[dict]:
        cpus = options.get("cpu") or list(DEFAULT_CPUS)
        if isinstance(cpus, str):
            cpus = parse_cpus(cpus)
        return [{"cpu": c} for c in cpus]

    def load(self) -> None:
        self.cpu = self.variant.get("cpu", DEFAULT_CPUS[0])
        self.meta: dict = {}
        if self.cpu.split(",")[0] not in rootfs.qemu_cpus():
            raise ArtifactError(f"qemu {rootfs.qemu_version()} in the arm64 rootfs does not emulate {self.cpu.split(',')[0]}"
                                f" (it has {', '.join(rootfs.qemu_cpus())}); rebuild the rootfs where Debian"
                                f" {rootfs.QEMU_SUITE} is reachable: rm -rf {rootfs.rootfs_path()}; ./run setup arm64")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self.sig, feeds, self.m.name)
        prepared = {s.binding: np.ascontiguousarray(quantize_input(s, feeds[s.name])) for s in self.sig.inputs}
        raw, self.meta = guest_run(self.m, self.cpu, prepared, [s.binding for s in self.sig.outputs])
        self.runtime_version = self.meta["runtime_version"]
        return {s.name: dequantize_output(s, raw[s.binding]).reshape((len(raw[s.binding]), *s.shape[1:]))
                for s in self.sig.outputs}

    @classmethod
    def compare_layers(cls, m, feeds: dict, options: dict) -> list[dict]:
        """``edgeport inspect --runtime arm64``: this artifact's tensors on the first --arm-cpu against the host's."""
        from .layers import compare_layers

        return compare_layers(m, feeds, cls.variants(options)[0]["cpu"])

    @staticmethod
    def format_layers(rows: list[dict], limit: int | None = None) -> str:
        from .layers import format_rows

        return format_rows(rows, limit)

    def extra_fields(self) -> dict:
        name = GUEST_RUNTIME.get(self.m.target, self.m.target)
        try:
            host = version(name)
        except PackageNotFoundError:
            host = "not installed"
        notes = [self.latency_note]
        if host != self.runtime_version:
            notes.append(f"aarch64 {name} {self.runtime_version} (host: {host})")
        feats = self.meta.get("hwcaps") or []
        notes.append(f"qemu {rootfs.qemu_version()} -cpu {self.cpu}" + (f" [{' '.join(feats)}]" if feats else "")
                     + (f", {self.meta['wall_s']:.1f} s under emulation" if self.meta.get("wall_s") else ""))
        return {"cpu": self.cpu, "note": "; ".join(notes), "backend": name, "runtime_version": self.runtime_version}


def available() -> str | None:
    return rootfs.missing_tools()


def setup(progress=None) -> None:
    """Build the rootfs in the parent (progress on the terminal) before any worker needs it."""
    from edgeport.console import log

    rootfs.ensure(progress or log)
