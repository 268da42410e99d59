"""LiteRT interpreter from ai-edge-litert, with its default XNNPACK delegate (Android's CPU path)."""

from __future__ import annotations

from edgeport.errors import ArtifactError, one_line
from edgeport.runtime import Runner, run_artifact, serving_signature


class TFLiteRunner(Runner):
    runtime = "ai-edge-litert"
    backend = "xnnpack"

    @classmethod
    def import_runtime(cls) -> None:
        from ai_edge_litert import interpreter  # noqa: F401

    def load(self) -> None:
        from importlib.metadata import version

        from ai_edge_litert import interpreter as lit

        self.runtime_version = version("ai-edge-litert")
        try:
            self.it = lit.Interpreter(model_path=str(self.m.entry_path), num_threads=self.threads)
            self.it.allocate_tensors()
            _, sr = serving_signature(self.it)
            ind, outd = sr.get_input_details(), sr.get_output_details()
            in_idx = [ind[s.binding]["index"] for s in self.sig.inputs]
            out_idx = [outd[s.binding]["index"] for s in self.sig.outputs]
        except (ValueError, RuntimeError, KeyError, StopIteration) as e:
            raise ArtifactError(f"{self.m.name}: LiteRT could not load {self.m.entry} ({one_line(e, 200)}); re-convert it") from None
        set_tensor, invoke, get_tensor = self.it.set_tensor, self.it.invoke, self.it.get_tensor
        pairs = list(enumerate(in_idx))

        def invoke_one(xs: list) -> list:
            for j, i in pairs:
                set_tensor(i, xs[j])
            invoke()
            return [get_tensor(o) for o in out_idx]

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


def run_tflite(data: bytes, sig, feeds: dict, workdir=None) -> dict:
    """Run .tflite bytes (a budget search's candidate) with the evaluator's runner: ``sig``, the source's signature,
    is bound to the model's own serving keys, dtypes and int8 scales first."""
    import tempfile
    from pathlib import Path

    from ..common import bind_tflite_signature

    with tempfile.TemporaryDirectory(prefix="edgeport-candidate-", dir=workdir) as d:
        path = Path(d) / "candidate.tflite"
        path.write_bytes(bytes(data))
        return run_artifact(TFLiteRunner, path, bind_tflite_signature(path, sig), feeds)
