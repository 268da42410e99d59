"""onnxruntime's InferenceSession with the CPU execution provider (the same kernels onnxruntime-web's wasm runs)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from edgeport.errors import ArtifactError, one_line
from edgeport.runtime import Runner, quantize_input
from edgeport.signature import numpy_dtype

PROVIDER = "CPUExecutionProvider"


class OrtRunner(Runner):
    runtime = "onnxruntime"
    backend = "cpu"

    @classmethod
    def import_runtime(cls) -> None:
        import onnxruntime  # noqa: F401

    def _options(self, profile_prefix: str | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        return so

    def load(self) -> None:
        import onnxruntime as ort

        self.runtime_version = ort.__version__
        try:
            self.sess = ort.InferenceSession(str(self.m.entry_path), self._options(), providers=[PROVIDER])
        except Exception as e:  # InvalidProtobuf, NoSuchFile, Fail, InvalidGraph ...
            raise ArtifactError(f"{self.m.name}: onnxruntime could not load {self.m.entry} ({one_line(e, 200)});"
                                " re-convert it") from None
        have_in = {i.name for i in self.sess.get_inputs()}
        have_out = {o.name for o in self.sess.get_outputs()}
        missing = [s.binding for s in self.sig.inputs if s.binding not in have_in]
        missing += [s.binding for s in self.sig.outputs if s.binding not in have_out]
        if missing:
            raise ArtifactError(f"{self.m.name}: {self.m.entry} has no tensor(s) {', '.join(map(repr, missing))} named in"
                                " the manifest; re-convert it")
        run, names = self.sess.run, [s.binding for s in self.sig.outputs]

        def invoke_one(feed: dict) -> list:
            return run(names, feed)

        self.invoke_one = invoke_one  # bound once: the timed loop pays no attribute lookups

    def prepare(self, feeds1: dict[str, np.ndarray]) -> dict:
        """One sample -> the session's feed dict, keyed by the graph's input names, in the artifact's dtypes."""
        return {s.binding: np.ascontiguousarray(quantize_input(s, feeds1[s.name])) for s in self.sig.inputs}

    def delegation(self) -> dict | None:
        """Which execution provider ran each node: one profiled run in a separate session (never the timed one)
        with the same options, counting the nodes of the optimized graph per provider in onnxruntime's profile."""
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="edgeport-ort-profile-") as tmp:
            sess = ort.InferenceSession(str(self.m.entry_path), self._options(str(Path(tmp) / "profile")),
                                        providers=[PROVIDER])
            feed = {s.binding: np.zeros(s.shape, numpy_dtype(s.dtype)) for s in self.sig.inputs}
            for s in self.sig.inputs:
                if s.role == "attention_mask":
                    feed[s.binding][:] = 1
            sess.run(None, feed)
            events = json.loads(Path(sess.end_profiling()).read_text())
        by_node: dict[str, str] = {}
        for ev in events:
            args = ev.get("args") or {}
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time") and "provider" in args:
                by_node[ev["name"][: -len("_kernel_time")]] = args["provider"]
        total = len(by_node)
        on_cpu = sum(1 for p in by_node.values() if p == PROVIDER)
        return {"delegated": on_cpu, "total": total, "unit": "nodes", "delegate": PROVIDER,
                "providers": sorted(set(by_node.values())), "graph": "after onnxruntime graph optimization"}
