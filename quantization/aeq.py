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


def float_embedding_tables(tflite: bytes) -> int:
    """How many EMBEDDING_LOOKUP ops of a .tflite read a float32 table."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(tflite, 0)
    n = 0
    for si in range(m.SubgraphsLength()):
        g = m.Subgraphs(si)
        for oi in range(g.OperatorsLength()):
            op = g.Operators(oi)
            if (m.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == fb.BuiltinOperator.EMBEDDING_LOOKUP
                    and op.InputsLength() > 1 and g.Tensors(op.Inputs(1)).Type() == fb.TensorType.FLOAT32):
                n += 1
    return n


def embedding_tables_int8(tflite: bytes) -> bytes:
    """int8 (per row) EMBEDDING_LOOKUP tables in a .tflite that may already be quantized elsewhere: a PT2E static
    int8 model keeps its tables float (XNNPACKQuantizer annotates no embedding), which left a transformer's static
    int8 .tflite larger than its dynamic-int8 one; AEQ's dynamic recipe on that op alone gives the lookup the int8
    table LiteRT loads (the form its dynamic-int8 recipe writes) and leaves the quantized ops as they are."""
    from ai_edge_quantizer import qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP, num_bits=8)
    return _quantize(tflite, rm.get_quantization_recipe())


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
