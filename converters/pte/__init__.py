"""Target plugin: ExecuTorch (.pte), PyTorch's mobile format. torch.export + exir with the XNNPACK partitioner and
PT2E quantization; runs natively on executorch.runtime (no browser runtime)."""

from edgeport.registry import register_runtime, register_target

from .inspect import layer_rows
from .runner import PteRunner

register_target("pte", inspect=layer_rows, suffix=".pte", browser=None, versions=("executorch", "torch", "torchao"))
register_runtime("executorch.runtime", formats=("pte",), where="host", runner=PteRunner, default=True,
                 aliases=("executorch",), versions=("executorch",),
                 description="executorch.runtime with the XNNPACK backend, this host's CPU")

from . import from_torch, weights  # noqa: E402,F401  (attach the converter and the weights reader)
