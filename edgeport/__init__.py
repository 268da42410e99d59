"""edgeport: take a trained Keras or PyTorch model to TFLite, TF.js and ExecuTorch, and prove what it costs.

Example::

    import edgeport
    manifests = edgeport.convert("builtin:simplecnn-torch", ["pte", "tflite"], ["fp32", "int8"], "artifacts/")
    report = edgeport.evaluate(["artifacts/"])
"""

import os as _os

# tensorflowjs imports tensorflow_decision_forests, whose welcome banner imports IPython when stdout is not a
# terminal (pytest, pipes) and fails without it.
_os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")

from .errors import EdgeportError  # noqa: E402

__all__ = ["convert", "evaluate", "load_source", "parse_input_spec", "Manifest", "Report", "Budget", "EdgeportError"]


def __getattr__(name):  # keep `import edgeport` light: TF and torch load only when used
    if name == "convert":
        from .convert import convert

        return convert
    if name == "evaluate":
        from edgeport.evaluate import evaluate

        return evaluate
    if name == "load_source":
        from .sources import load_source

        return load_source
    if name == "parse_input_spec":
        from .signature import parse_input_spec

        return parse_input_spec
    if name == "Budget":
        from .report import Budget

        return Budget
    if name == "Manifest":
        from .manifest import Manifest

        return Manifest
    if name == "Report":
        from .report import Report

        return Report
    raise AttributeError(name)
