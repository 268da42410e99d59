"""Target plugin: TFLite (.tflite) for Android. Keras via tf.lite.TFLiteConverter, PyTorch via litert-torch;
runs natively on the LiteRT interpreter and in the browser on LiteRT.js."""

from edgeport.registry import register_target

from .runner import TFLiteRunner

register_target("tflite", suffix=".tflite", runner=TFLiteRunner, runtime="ai-edge-litert", browser="litertjs",
                versions=("tensorflow", "keras", "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "torch"))

from . import from_keras, from_torch  # noqa: E402,F401  (attach the converters)
