"""One runner per artifact format, each using the real runtime. Runners read only the manifest."""

from __future__ import annotations

import os

import numpy as np

from edgeport.errors import ArtifactError, UnsupportedError, one_line
from edgeport.manifest import Manifest

_RUNNERS: dict[str, type["Runner"]] = {}


def runner(target: str):
    def deco(cls):
        _RUNNERS[target] = cls
        cls.target = target
        return cls

    return deco


def resolve_threads(t: str | int) -> int:
    return os.cpu_count() or 1 if str(t) == "all" else int(t)


class Runner:
    """load() once, then run(x) on a batch in the model's float input layout -> float32 logits."""

    target = ""
    runtime = ""
    runtime_version = ""

    def __init__(self, manifest: Manifest, threads: int = 1):
        self.m = manifest
        self.threads = threads
        self.inp = manifest.signature["inputs"][0]
        self.out = manifest.signature["outputs"][0]

    # int8 I/O: quantize with the manifest's scale/zero point, dequantize the output likewise.
    def _quantize_in(self, x: np.ndarray) -> np.ndarray:
        q = self.inp.get("quantization")
        dt = np.dtype(self.inp["dtype"])
        if q and dt.kind in "iu":
            info = np.iinfo(dt)
            return np.clip(np.round(x / q["scale"] + q["zero_point"]), info.min, info.max).astype(dt)
        return x.astype(dt)

    def _dequantize_out(self, y: np.ndarray) -> np.ndarray:
        q = self.out.get("quantization")
        if q and np.dtype(y.dtype).kind in "iu":
            return ((y.astype(np.float32) - q["zero_point"]) * q["scale"]).astype(np.float32)
        return y.astype(np.float32)

    @classmethod
    def import_runtime(cls) -> None:
        """Import the runtime's modules, so that load() timings measure loading the artifact, not Python imports."""

    def load(self) -> None:
        raise NotImplementedError

    def invoke_one(self, x1: np.ndarray) -> np.ndarray:
        """One batch-1 inference on an already-prepared input; load() installs the runtime's bound version."""
        raise RuntimeError(f"{type(self).__name__}: call load() first")

    def prepare(self, x1: np.ndarray) -> np.ndarray:
        return self._quantize_in(x1)

    def run(self, x: np.ndarray) -> np.ndarray:
        want = tuple(self.inp["shape"][1:])
        if tuple(x.shape[1:]) != want:
            raise ArtifactError(
                f"{self.m.name}: data sample shape {tuple(x.shape[1:])} does not match the input signature {want}"
                f" ({self.inp['layout']}); give data in the model's own input layout"
            )
        return np.concatenate([self._dequantize_out(self.invoke_one(self.prepare(x[i : i + 1]))) for i in range(len(x))])

    def delegation(self) -> dict | None:
        return self.m.delegation


def get_runner(manifest: Manifest, threads: int = 1) -> Runner:
    try:
        cls = _RUNNERS[manifest.target]
    except KeyError:
        raise UnsupportedError(
            f"{manifest.name}: no native runtime for target {manifest.target!r} (native: {', '.join(sorted(_RUNNERS))});"
            " evaluate it with --browser chromium"
        ) from None
    return cls(manifest, threads)


def native_targets() -> list[str]:
    return sorted(_RUNNERS)


@runner("tflite")
class TFLiteRunner(Runner):
    """LiteRT interpreter from ai-edge-litert, with its default XNNPACK delegate (Android's CPU path)."""

    runtime = "ai-edge-litert"

    @classmethod
    def import_runtime(cls) -> None:
        from ai_edge_litert import interpreter  # noqa: F401

    def load(self) -> None:
        from ai_edge_litert import interpreter as lit

        try:
            from importlib.metadata import version

            self.runtime_version = version("ai-edge-litert")
        except Exception:
            self.runtime_version = "?"
        try:
            self.it = lit.Interpreter(model_path=str(self.m.entry_path), num_threads=self.threads)
            self.it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ArtifactError(f"{self.m.name}: LiteRT could not load {self.m.entry} ({one_line(e, 200)}); re-convert it") from None
        self.in_idx = self.it.get_input_details()[0]["index"]
        self.out_idx = self.it.get_output_details()[0]["index"]
        set_tensor, invoke, get_tensor, i, o = self.it.set_tensor, self.it.invoke, self.it.get_tensor, self.in_idx, self.out_idx

        def invoke_one(x1: np.ndarray) -> np.ndarray:
            set_tensor(i, x1)
            invoke()
            return get_tensor(o)

        self.invoke_one = invoke_one  # bound once: the timed loop pays no attribute lookups

    def delegation(self) -> dict | None:
        """Ops delegated to XNNPACK. The interpreter keeps the replaced nodes in its node list and adds one
        DELEGATE node per partition, so we walk back from each DELEGATE node's outputs to its inputs."""
        ops = {op["index"]: op for op in self.it._get_ops_details()}
        producer = {t: i for i, op in ops.items() if op["op_name"] != "DELEGATE" for t in op["outputs"]}
        delegated: set[int] = set()
        for d in (op for op in ops.values() if op["op_name"] == "DELEGATE"):
            stop = set(int(t) for t in d["inputs"])
            stack = [int(t) for t in d["outputs"]]
            while stack:
                p = producer.get(stack.pop())
                if p is None or p in delegated:
                    continue
                delegated.add(p)
                stack += [int(t) for t in ops[p]["inputs"] if t >= 0 and int(t) not in stop]
        total = sum(1 for op in ops.values() if op["op_name"] != "DELEGATE")
        return {"delegated": len(delegated), "total": total, "unit": "ops", "delegate": "XNNPACK"}


@runner("pte")
class PteRunner(Runner):
    """executorch.runtime, with the XNNPACK delegate compiled into the pybindings."""

    runtime = "executorch.runtime"

    @classmethod
    def import_runtime(cls) -> None:
        import torch  # noqa: F401
        from executorch.extension.pybindings import portable_lib  # noqa: F401
        from executorch.runtime import Runtime

        Runtime.get()

    def load(self) -> None:
        import torch  # noqa: F401  (executorch tensors are torch tensors)
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime, Verification

        try:
            from importlib.metadata import version

            self.runtime_version = version("executorch")
        except Exception:
            self.runtime_version = "?"
        portable_lib._unsafe_reset_threadpool(self.threads)
        rt = Runtime.get()
        try:
            prog = rt.load_program(str(self.m.entry_path), verification=Verification.InternalConsistency)
            self.method = prog.load_method("forward")
        except Exception as e:
            raise ArtifactError(f"{self.m.name}: ExecuTorch could not load {self.m.entry} ({one_line(e, 200)}); re-convert it") from None
        if self.method is None:
            raise ArtifactError(f"{self.m.name}: program has no 'forward' method; re-export it")
        self._bind()

    def prepare(self, x1: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(self._quantize_in(x1)))

    def _bind(self) -> None:
        execute = self.method.execute

        def invoke_one(x1) -> np.ndarray:
            return execute([x1])[0].numpy()

        self.invoke_one = invoke_one
