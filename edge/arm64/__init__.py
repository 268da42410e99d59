"""Runtime plugin ``arm64``: .onnx, .tflite and .pte artifacts on the aarch64 builds of ONNX Runtime, LiteRT and
ExecuTorch's C++ runtime, in a Debian arm64 root filesystem under qemu-user, one row per emulated CPU (``--arm-cpu cortex-a76,neoverse-n1,max``).
Answers what a phone's ARM kernels give, and how far they are from this host's x86 kernels (the row's vs_host).
No latency: emulated time says nothing about a phone. Not in the default set: the first use builds a rootfs (a
minute or two, cached) and each run under emulation takes seconds."""

from edgeport.registry import RuntimeFlag, register_runtime

from .runner import Arm64Runner, available, parse_cpus, setup

register_runtime("arm64", formats=("onnx", "tflite", "pte"), where="emulated", runner=Arm64Runner,
                 measures=("accuracy",), available=available, setup=setup, compare_to="host",
                 flags=(RuntimeFlag("--arm-cpu", "cpu", "emulated ARM cores for --runtime arm64, comma-separated"
                                    " qemu names (default cortex-a76; cortex-a53, neoverse-n1, max, max,sme=off ...)",
                                    metavar="CPUS", parse=parse_cpus),),
                 aliases=("aarch64", "qemu-arm64"), versions=("onnxruntime", "ai-edge-litert", "executorch"),
                 description="aarch64 ONNX Runtime / LiteRT / ExecuTorch in an arm64 rootfs under qemu-user (emulated ARM cores)")
