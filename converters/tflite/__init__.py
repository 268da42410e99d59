"""Target plugin: TFLite (.tflite) for Android. Keras via tf.lite.TFLiteConverter, PyTorch via litert-torch;
runs natively on the LiteRT interpreter and in the browser on LiteRT.js."""

from edgeport.registry import register_runtime, register_target

from .inspect import layer_rows
from .runner import TFLiteRunner

register_target("tflite", inspect=layer_rows, suffix=".tflite", browser="litertjs",
                versions=("tensorflow", "keras", "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "torch"))
register_runtime("ai-edge-litert", formats=("tflite",), where="host", runner=TFLiteRunner, default=True,
                 aliases=("litert",), versions=("ai-edge-litert",),
                 description="LiteRT interpreter with XNNPACK, this host's CPU")
register_runtime("litert.js", formats=("tflite",), where="browser", started="browser", aliases=("litertjs",),
                 description="LiteRT.js (wasm, threaded SIMD) in headless Chromium")

from . import from_keras, from_torch, weights  # noqa: E402,F401  (attach the converters and the weights reader)
