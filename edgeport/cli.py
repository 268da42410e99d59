"""The `edgeport` command line."""

from __future__ import annotations

import argparse
import os
import sys

# Quiet the frameworks' C++ start-up chatter before anything imports them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

from . import defaults  # noqa: E402
from pathlib import Path  # noqa: E402

from .errors import EdgeportError, InputError  # noqa: E402


def _csv(s: str) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()]


def cmd_targets(a) -> int:
    from .quantization.recipes import RECIPES
    from .registry import matrix_table

    print(matrix_table())
    print()
    for r in RECIPES.values():
        print(f"  {r.name:<13} {r.description}" + ("  [needs --calib, or the model's default data]" if r.needs_calibration else ""))
    return 0


def cmd_convert(a) -> int:
    from .config import ConvertOptions
    from .convert import convert
    from .report import artifact_table
    from .signature import parse_input_spec
    from .sources import parse_shape

    inputs = [parse_input_spec(t) for t in a.input or []]
    if a.input_shape:
        if inputs:
            raise InputError("give either --input (repeatable) or --input-shape, not both")
        inputs = [parse_shape(a.input_shape)]
    opts = ConvertOptions(calib=a.calib, data=a.data, int8_io=a.int8_io, strict_parity=a.strict_parity)
    ms = convert(a.model, _csv(a.to), _csv(a.quant), a.out, opts, weights=a.weights, inputs=inputs or None,
                 task=a.task, imports=a.imports, name=a.name)
    print(artifact_table(ms))
    return 0


def _budget(a):
    from .report import Budget

    return Budget(max_drop_pp=a.budget, min_cosine=a.min_cosine, min_snr_db=a.min_snr)


def cmd_evaluate(a) -> int:
    from .config import EvaluateOptions
    from .report import table

    opts = EvaluateOptions(threads=tuple(_csv(a.threads)), data=a.data, timeout_s=a.timeout, budget=_budget(a))
    if a.device != "local":
        from edgeport.edge.adb import evaluate_adb

        report = evaluate_adb(a.paths, opts, device=a.device, tflite_benchmark=a.tflite_benchmark, pte_runner=a.pte_runner)
        report.budget = opts.budget
        report.write(a.out)
    else:
        from edgeport.edge.evaluate import evaluate

        report = evaluate(a.paths, opts, out=a.out, browser=a.browser, quick=a.quick)
    print(table(report))
    print(f"\nreport: {Path(a.out) / 'report.json'} and {Path(a.out) / 'report.html'}")
    errors = [r for r in report.rows if r.error]
    if errors and a.strict:
        print(f"edgeport: error: {len(errors)} row(s) failed (--strict); first: {errors[0].artifact}: {errors[0].error}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(a) -> int:
    from edgeport.web.server import serve

    return serve(a.dir, host=a.host, port=a.port, data=a.data)


def cmd_demo(a) -> int:
    from edgeport.demo.main import run_demo

    return run_demo(out=a.out, serve=not a.no_serve, port=a.port, browser=not a.no_browser)


def _version() -> str:
    from importlib.metadata import version

    return version("edgeport")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeport", allow_abbrev=False,
                                description="Take a Keras or PyTorch model to TFLite, TF.js, ExecuTorch and more; measure what it costs.")
    p.add_argument("--version", action="version", version=f"edgeport {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("targets", help="print the supported (framework, target, recipe) matrix", allow_abbrev=False)
    s.set_defaults(fn=cmd_targets)

    s = sub.add_parser("convert", help="convert a model to artifacts with manifests", allow_abbrev=False)
    s.add_argument("--model", required=True, help="builtin:simplecnn-torch | builtin:simplecnn-keras | builtin:minilm | model.keras"
                   " | SavedModel dir | pkg.mod:factory | model.pt2")
    s.add_argument("--to", required=True, help="comma list of targets (see `edgeport targets`)")
    s.add_argument("--quant", default="fp32", help="comma list of recipes, or 'all' (default fp32)")
    s.add_argument("--out", default="artifacts", help="output folder (default artifacts/)")
    s.add_argument("--input", action="append", metavar="NAME:DTYPE[D0,D1,...]",
                   help="a model input (repeatable, in forward() order), e.g. --input input_ids:int64[1,128]")
    s.add_argument("--input-shape", default=None, help="short form for one float32 input named x, e.g. 1,3,96,96")
    s.add_argument("--weights", default=None, help="PyTorch weights: .safetensors, or a .pt state dict (weights_only);"
                   " optional when the factory loads its own")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import this module first (Keras custom layers, model code); repeatable")
    s.add_argument("--task", default=None, choices=["classification", "embedding", "regression"],
                   help="what the model does (chooses metrics and tolerances); inferred when omitted")
    s.add_argument("--calib", default=None, help="calibration data for int8: a named set or an .npz with one array per input")
    s.add_argument("--data", default=None, help="held-out rows for the parity probe (named set or .npz), kept apart from --calib")
    s.add_argument("--name", default=None, help="artifact base name (default: from the model)")
    s.add_argument("--int8-io", action="store_true", help="full-integer TFLite with int8 input and output")
    s.add_argument("--strict-parity", action="store_true", help="fail when parity is outside the recipe's tolerance")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser("evaluate", help="measure size, accuracy and speed of artifacts with their real runtimes", allow_abbrev=False)
    s.add_argument("paths", nargs="+", help="folders of manifests, or manifest files")
    s.add_argument("--data", default=None, help="a named set (builtin:digits, builtin:sentences) or an .npz with one array per"
                   " input and optional labels y (default: each model's own default set)")
    s.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core (default 1,all)")
    s.add_argument("--out", default="report", help="report folder (default report/)")
    s.add_argument("--budget", type=float, default=defaults.ACCURACY_BUDGET_PP, help="classification: accuracy drop budget, pp")
    s.add_argument("--min-cosine", type=float, default=defaults.MIN_COSINE, help="embedding: minimum mean cosine vs float")
    s.add_argument("--min-snr", type=float, default=defaults.MIN_SNR_DB, help="regression: minimum SNR vs float, dB")
    s.add_argument("--timeout", type=float, default=defaults.WORKER_TIMEOUT_S, help="per-artifact time limit, seconds")
    s.add_argument("--strict", action="store_true", help="exit non-zero if any row has an error")
    s.add_argument("--device", default="local", help="local (default) or adb[:serial]")
    s.add_argument("--tflite-benchmark", default=None, help="path to TFLite's benchmark_model binary (for --device adb)")
    s.add_argument("--pte-runner", default=None, help="path to ExecuTorch's executor_runner binary (for --device adb)")
    s.add_argument("--browser", default=None, choices=["chromium"], help="also run web artifacts in headless Chromium")
    s.add_argument("--quick", action="store_true", help="fewer timed runs (for smoke tests)")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("serve", help="serve the demo page and the artifacts", allow_abbrev=False)
    s.add_argument("dir", nargs="?", default="artifacts", help="artifacts folder (default artifacts/)")
    s.add_argument("--host", default=None, help="bind address (default 127.0.0.1); a non-loopback address must be given here")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--data", default=None, help="evaluation data for benchmark mode (default: each model's own)")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("demo", help="train, convert everything, evaluate natively and in Chromium, serve the page", allow_abbrev=False)
    s.add_argument("--out", default=".", help="where artifacts/ and report/ go (default .)")
    s.add_argument("--no-serve", action="store_true", help="exit after writing the report")
    s.add_argument("--no-browser", action="store_true", help="skip the browser evaluation")
    s.add_argument("--port", type=int, default=8765)
    s.set_defaults(fn=cmd_demo)
    return p


def _quiet_libraries() -> None:
    """The frameworks warn about their own internals (deprecations inside torch/executorch/keras); a CLI user
    cannot act on those, so they are hidden here and only here (tests and library use still see them)."""
    import warnings

    for cat in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=cat)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:
        _quiet_libraries()
    try:
        return args.fn(args)
    except EdgeportError as e:
        print(f"edgeport: error: {' '.join(str(e).split())}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgeport: interrupted", file=sys.stderr)
        return 130
