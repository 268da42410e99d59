"""Converters: one module per target, registered by (source framework, target)."""

from .registry import DECLARED, Target, get_target, matrix, register, targets_for

# Importing a module registers its targets; adding a target means one new file and one line here.
from . import keras_tflite, keras_tfjs, torch_pte, torch_tflite  # noqa: E402,F401  (registers)

__all__ = ["DECLARED", "Target", "get_target", "matrix", "register", "targets_for"]
