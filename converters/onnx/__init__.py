"""Target plugin: ONNX (.onnx). PyTorch via torch.onnx.export (dynamo exporter), Keras / SavedModel via tf2onnx;
fp16 with onnxconverter-common, int8 with onnxruntime.quantization; runs natively on onnxruntime (CPU execution
provider) and in the browser on onnxruntime-web (the page's ``ort`` adapter)."""

from edgeport.registry import register_runtime, register_target

from .runner import OrtRunner

register_target("onnx", suffix=".onnx", browser="ort",
                versions=("onnx", "onnxruntime", "onnxconverter-common", "torch", "onnxscript", "tensorflow", "keras",
                          "tf2onnx"))
register_runtime("onnxruntime", formats=("onnx",), where="host", runner=OrtRunner, default=True, aliases=("ort",),
                 versions=("onnxruntime",), description="ONNX Runtime, CPU execution provider, this host's CPU")
register_runtime("onnxruntime-web", formats=("onnx",), where="browser", started="browser", aliases=("ort-web",),
                 description="onnxruntime-web (wasm, threaded SIMD) in headless Chromium")

from . import from_keras, from_torch, weights  # noqa: E402,F401  (attach the converters and the weights reader)
