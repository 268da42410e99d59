"""Target plugin: TF.js graph model (model.json + weight shards) for browsers, from Keras / SavedModel with the
official tensorflowjs converter. No native runner: it runs in Chromium through the page's tfjs adapter."""

from edgeport.registry import register_runtime, register_target

register_target("tfjs", suffix="/model.json", browser="tfjs", versions=("tensorflow", "tensorflowjs", "keras"))
register_runtime("tfjs", formats=("tfjs",), where="browser", started="browser",
                 description="TF.js (wasm, webgl, webgpu, cpu backends) in headless Chromium")

from . import from_keras, weights  # noqa: E402,F401  (attach the converter and the weights reader)
