"""executorch.runtime, with the XNNPACK delegate compiled into the pybindings."""

from __future__ import annotations

import numpy as np

from edgeport.errors import ArtifactError, one_line
from edgeport.runtime import Runner, quantize_input


class PteRunner(Runner):
    runtime = "executorch.runtime"
    backend = "xnnpack"

    @classmethod
    def import_runtime(cls) -> None:
        import torch  # noqa: F401
        import executorch.kernels.quantized  # noqa: F401  (registers quantized_decomposed kernels: embedding_byte ...)
        from executorch.extension.pybindings import portable_lib  # noqa: F401
        from executorch.runtime import Runtime

        Runtime.get()

    def load(self) -> None:
        from importlib.metadata import version

        import torch  # noqa: F401  (executorch tensors are torch tensors)
        import executorch.kernels.quantized  # noqa: F401  (quantized embedding kernels)
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime, Verification

        self.runtime_version = version("executorch")
        portable_lib._unsafe_reset_threadpool(self.threads)
        try:
            prog = Runtime.get().load_program(str(self.m.entry_path), verification=Verification.InternalConsistency)
            self.method = prog.load_method("forward")
        except Exception as e:
            raise ArtifactError(f"{self.m.name}: ExecuTorch could not load {self.m.entry} ({one_line(e, 200)}); re-convert it") from None
        if self.method is None:
            raise ArtifactError(f"{self.m.name}: program has no 'forward' method; re-export it")
        execute = self.method.execute

        def invoke_one(xs: list) -> list:
            return [o.numpy() for o in execute(xs)]

        self.invoke_one = invoke_one

    def prepare(self, feeds1):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(quantize_input(s, feeds1[s.name]))) for s in self.sig.inputs]
