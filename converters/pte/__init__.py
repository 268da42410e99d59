"""Target plugin: ExecuTorch (.pte), PyTorch's mobile format. torch.export + exir with the XNNPACK partitioner and
PT2E quantization; runs natively on executorch.runtime (no browser runtime)."""

from edgeport.registry import register_target

from .runner import PteRunner

register_target("pte", suffix=".pte", runner=PteRunner, runtime="executorch.runtime", browser=None,
                versions=("executorch", "torch", "torchao"))

from . import from_torch  # noqa: E402,F401  (attach the converter)
