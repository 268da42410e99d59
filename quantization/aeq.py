"""ai-edge-quantizer (AEQ) recipes applied to a float .tflite: one path for .tflite files from Keras and from PyTorch.

Its dynamic recipe quantizes EMBEDDING_LOOKUP tables in a form LiteRT loads (litert-torch's PT2E dynamic recipe
does not: ``embedding_lookup.cc ... zero_point == 0``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _quantize(float_tflite: bytes, recipe, calibration: dict | None = None) -> bytes:
    from ai_edge_quantizer import quantizer as aeq

    q = aeq.Quantizer(bytes(float_tflite))
    q.load_quantization_recipe(recipe)
    calib_result = q.calibrate(calibration, num_threads=1) if calibration is not None else None
    return bytes(q.quantize(calib_result, enable_progress_report=False).quantized_model)


def fp16(float_tflite: bytes) -> bytes:
    """float16 weights (float32 compute): AEQ's FLOAT_CASTING weight-only recipe."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    return _quantize(float_tflite, rm.get_quantization_recipe())


def dynamic_int8(float_tflite: bytes) -> bytes:
    """int8 channel-wise weights, activations quantized on the fly (AEQ dynamic_wi8_afp32), embeddings included."""
    from ai_edge_quantizer import recipe

    return _quantize(float_tflite, recipe.dynamic_wi8_afp32())


def static_int8(float_tflite: bytes, calibration: Sequence[dict[str, np.ndarray]], signature_key: str,
                activation_bits: int = 8, operation_name: str = "*") -> bytes:
    """int8 weights + int8 (or int16) activations, MinMax-calibrated on ``calibration`` ({signature input: array}
    rows in the .tflite's own names and dtypes)."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName(operation_name),
                         activation_num_bits=activation_bits, weight_num_bits=8,
                         algorithm_key=algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    return _quantize(float_tflite, rm.get_quantization_recipe(), {signature_key: list(calibration)})
