"""The `edgeport` command line."""

from __future__ import annotations

import argparse
import os
import sys

# Quiet the frameworks' C++ start-up chatter before anything imports them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

from edgeport import defaults  # noqa: E402
from pathlib import Path  # noqa: E402

from edgeport.errors import ConversionFailed, EdgeportError, InputError, Terminated, describe_os_error  # noqa: E402


def _csv(s: str) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()]


def cmd_targets(a) -> int:
    from edgeport.recipes import RECIPES
    from edgeport.registry import matrix_table, runtimes_table
    from edgeport.tasks import TASKS

    print(matrix_table())
    print()
    print(runtimes_table())
    print()
    held = _budget_targets()
    for r in RECIPES.values():
        print(f"  {r.name:<13} {r.description}" + ("  [needs --calib, or the model's default data]" if r.needs_calibration else "")
              + (f"  [holds {' / '.join(t.flag for t in TASKS.values())} on {', '.join(held[r.name])}]" if r.name in held else ""))
    return 0


def _budget_targets() -> dict[str, list[str]]:
    """recipe -> the targets whose converter runs a budget search for it."""
    from edgeport.registry import matrix

    out: dict[str, list[str]] = {}
    for t, c in matrix():
        for r in c.budget:
            names = out.setdefault(r, [])
            if t.name not in names:
                names.append(t.name)
    return out


def cmd_convert(a) -> int:
    from edgeport.config import ConvertOptions
    from edgeport.convert import CONVERT_TIMEOUT_S, convert
    from edgeport.report import artifact_table
    from edgeport.signature import parse_input_spec
    from edgeport.sources import parse_shape

    inputs = [parse_input_spec(t) for t in a.input or []]
    if a.input_shape:
        if inputs:
            raise InputError("give either --input (repeatable) or --input-shape, not both")
        inputs = [parse_shape(a.input_shape)]
    budget = _budget(a)
    from edgeport.fronts import parse_norm

    opts = ConvertOptions(calib=a.calib, data=a.data, int8_io=a.int8_io, strict_parity=a.strict_parity, budget=budget,
                          input_format=a.input_format, mean=parse_norm(a.mean, "--mean"), std=parse_norm(a.std, "--std"),
                          profile=a.profile)
    timeout = CONVERT_TIMEOUT_S if a.timeout is None else a.timeout
    if timeout <= 0:
        raise InputError(f"--timeout must be positive, got {timeout:g}")
    try:
        ms = convert(a.model, _csv(a.to), _csv(a.quant), a.out, opts, weights=a.weights, inputs=inputs or None,
                     task=a.task, imports=a.imports, name=a.name, isolate=True, timeout_s=timeout,
                     quiet=not a.verbose)
    except ConversionFailed as e:
        if e.manifests:
            print(artifact_table(e.manifests))
        for name, reason in e.failures:
            print(f"edgeport: error: {name}: {reason}", file=sys.stderr)
        return e.exit_code
    print(artifact_table(ms))
    return 0


def _budget(a):
    """The budget flags given (--max-drop / --min-cosine / --min-snr, one per task), or None when none was."""
    from edgeport.tasks import TASKS, Budget

    kw = {t.budget_field: getattr(a, t.keyword) for t in TASKS.values() if getattr(a, t.keyword) is not None}
    return Budget(**kw) if kw else None


def _budget_fits(paths: list[str], budget) -> None:
    """A budget flag for a task none of the artifacts has would judge nothing: one line naming the right flag."""
    from edgeport.errors import EdgeportError
    from edgeport.manifest import Manifest, find_manifests
    from edgeport.tasks import get_task

    if budget is None:
        return
    tasks = set()
    for p in find_manifests(paths):
        try:
            tasks.add(Manifest.read(p).task)
        except (EdgeportError, OSError):
            continue  # an unreadable manifest is the evaluator's row to report
    given = budget.given()
    if tasks and not any(t.name in tasks for t in given):
        have = sorted(tasks)
        where = " ".join(paths) if len(paths) == 1 else "the artifacts"
        raise InputError(f"{given[0].flag} is for {given[0].name} models; {where} hold{'s' if len(paths) == 1 else ''}"
                         f" {' and '.join(have)} models: use " + " / ".join(f"{get_task(t).flag} {get_task(t).metavar}" for t in have))


def _budget_flags(s: argparse.ArgumentParser, help: str) -> None:
    """One flag per task (edgeport.tasks), the same names in convert and evaluate."""
    from edgeport.tasks import TASKS

    for t in TASKS.values():
        s.add_argument(t.flag, dest=t.keyword, type=float, default=None, metavar=t.metavar,
                       help=help.format(what=t.help, task=t.name, default=t.default))


def cmd_evaluate(a) -> int:
    from edgeport.config import EvaluateOptions
    from edgeport.console import quiet
    from edgeport.fileio import RunFolder
    from edgeport.report import table
    from edgeport.tasks import Budget

    runtimes, runtime_options = _runtime_choice(a)
    opts = EvaluateOptions(threads=tuple(_csv(a.threads)), data=a.data, timeout_s=a.timeout, budget=_budget(a) or Budget(),
                           runtimes=runtimes, runtime_options=runtime_options)
    for p in a.paths:
        if not Path(p).exists():
            raise InputError(f"{p} does not exist; pass a folder of artifacts or a manifest written by `edgeport convert`")
    _budget_fits(a.paths, opts.budget if _budget(a) else None)
    if a.data:  # a missing, unreadable or unknown data set fails here, before a report folder exists
        from edgeport.data import load_dataset

        load_dataset(a.data, "heldout")
    # The report folder must be writable before minutes of measuring, not after.
    with RunFolder(a.out) as run, quiet(run.log, enabled=not a.verbose, shown=run.kept_log):
        run.keep_log = True
        from edgeport.evaluate import evaluate

        report = evaluate(a.paths, opts, out=a.out, browser=a.browser, quick=a.quick)
        print(table(report))
        print(f"\nreport: {Path(a.out) / 'report.json'} and {Path(a.out) / 'report.html'}")
    errors = [r for r in report.rows if r.error and not r.skipped]  # a skipped row (no WebGPU adapter) is no failure
    if errors and a.strict:
        print(f"edgeport: error: {len(errors)} row(s) failed (--strict); first: {errors[0].artifact}: {errors[0].error}", file=sys.stderr)
        return 1
    if errors and len(errors) == len([r for r in report.rows if not r.skipped]):
        print(f"edgeport: error: every row failed; first: {errors[0].artifact}: {errors[0].error}", file=sys.stderr)
        return 1
    return 0


def _runtime_choice(a) -> tuple[tuple[str, ...] | None, dict]:
    """--runtime (and the legacy --device adb[:serial]) -> runtime names; each runtime's own flags -> its options.
    Asking only for runtimes that cannot run here is one line naming why and the fix (nothing could be measured)."""
    from edgeport.registry import get_runtime, runtimes

    names = _csv(a.runtime) if a.runtime else None
    options: dict = {}
    if a.device != "local":
        if not a.device.startswith("adb"):
            raise InputError(f"--device {a.device!r} is not local or adb[:SERIAL]; use --runtime NAME for other places")
        names = [*(names or []), "adb"]
        if ":" in a.device:
            options.setdefault("adb", {})["serial"] = a.device.split(":", 1)[1]
    for r in runtimes().values():
        for f in r.flags:
            v = getattr(a, "rt_" + f.flag.lstrip("-").replace("-", "_"), None)
            if v is not None:
                try:
                    options.setdefault(r.name, {})[f.key] = f.parse(v) if f.parse else v
                except (ValueError, TypeError) as e:
                    raise InputError(f"{f.flag} {v!r}: {e}") from None
    if names:
        chosen = [get_runtime(n) for n in names]  # an unknown name: one line listing the known ones
        why = [(r.name, r.unavailable()) for r in chosen]
        if all(w for _, w in why):
            raise InputError("; ".join(f"runtime {n} is not available here: {w}" for n, w in why))
    chosen_names = {get_runtime(n).name for n in names or []}
    stray = [n for n in options if n not in chosen_names and not get_runtime(n).default]
    if stray:
        raise InputError(f"flags of runtime {', '.join(stray)} were given, but that runtime is not selected; add"
                         f" --runtime {','.join(stray)}")
    return (tuple(names) if names else None), options


def cmd_bundle(a) -> int:
    from edgeport.edge.bundle import BundleOptions, bundle

    from edgeport.console import quiet
    from edgeport.fronts import parse_norm

    opts = BundleOptions(labels=a.labels, mean=parse_norm(a.mean, "--mean"), std=parse_norm(a.std, "--std"),
                         mediapipe=a.mediapipe, verify=not a.no_verify, report=a.report)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgeport-bundle-") as d, quiet(Path(d) / "edgeport.log", enabled=not a.verbose):
        summary = bundle(a.artifacts, getattr(a, "for"), a.out, opts)
    print("\n".join(f"  {f}" for f in summary["files"]))
    for art in summary["artifacts"]:
        if art.get("mediapipe_why_not"):
            print(f"note: {art['name']}: not for MediaPipe: {art['mediapipe_why_not']}")
    print(f"bundle: {a.out} (README.md says what goes in, what comes out, and what was checked)")
    return 0


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is out of range; pass 1-65535 (0 picks a free port)")


def cmd_inspect(a) -> int:
    import tempfile

    from edgeport.edge.inspect import cmd_inspect as run

    from edgeport.console import quiet

    # Library output (TF's C++ lines, absl warnings) would bury the table; -v shows it. inspect writes no folder,
    # so the log lives only as long as the command.
    with tempfile.TemporaryDirectory(prefix="edgeport-inspect-") as d, quiet(Path(d) / "edgeport.log", enabled=not a.verbose):
        return run(a)


def cmd_serve(a) -> int:
    from edgeport.web.server import serve

    _check_port(a.port)
    return serve(a.dir, host=a.host, port=a.port, data=a.data)


def cmd_demo(a) -> int:
    from edgeport.app.demo import run_demo

    from edgeport.console import quiet
    from edgeport.fileio import RunFolder

    _check_port(a.port)
    with RunFolder(a.out) as run, quiet(run.log, enabled=not a.verbose, shown=run.kept_log):
        run.keep_log = True
        return run_demo(out=a.out, serve=not a.no_serve, port=a.port, browser=not a.no_browser)


def _version() -> str:
    from importlib.metadata import version

    return version("edgeport")


def _runtime_flags(s: argparse.ArgumentParser) -> None:
    """Each runtime plugin's own flags (--arm-cpu, --mcu-ram, --tflite-benchmark ...), from the registry."""
    from edgeport.registry import runtimes

    g = s.add_argument_group("runtime options")
    for r in runtimes().values():
        for f in r.flags:
            g.add_argument(f.flag, dest="rt_" + f.flag.lstrip("-").replace("-", "_"), default=None, metavar=f.metavar,
                           help=f"{f.help}")


def build_parser() -> argparse.ArgumentParser:
    from edgeport.tasks import TASKS

    p = argparse.ArgumentParser(prog="edgeport", allow_abbrev=False,
                                description="Take a Keras or PyTorch model to TFLite, TF.js, ExecuTorch and more; measure what it costs.")
    p.add_argument("--version", action="version", version=f"edgeport {_version()}")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show every library's output (by default it goes to the run's own edgeport-<time>-<pid>.log"
                   " in the --out folder)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show every library's output (by default convert and evaluate put it in the run's own"
                        " edgeport-<time>-<pid>.log in"
                        " the --out folder; inspect drops it)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("targets", parents=[common], help="print the supported (framework, target, recipe) matrix", allow_abbrev=False)
    s.set_defaults(fn=cmd_targets)

    s = sub.add_parser("convert", parents=[common], help="convert a model to artifacts with manifests", allow_abbrev=False)
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
    s.add_argument("--task", default=None, choices=list(TASKS),
                   help="what the model does (chooses metrics and tolerances); inferred when omitted")
    s.add_argument("--calib", default=None, help="calibration data for int8: a named set or an .npz with one array per input")
    s.add_argument("--data", default=None, help="held-out rows for the parity probe (named set or .npz), kept apart from --calib")
    s.add_argument("--name", default=None, help="artifact base name (default: from the model)")
    s.add_argument("--int8-io", action="store_true", help="full-integer TFLite with int8 input and output")
    s.add_argument("--for", dest="profile", default=None, metavar="PLACE",
                   help="mcu: a full-integer .tflite (int8 I/O) for TensorFlow Lite Micro, every op checked against"
                   " TFLM's kernels (with --to tflite --quant int8)")
    s.add_argument("--strict-parity", action="store_true", help="fail when parity is outside the recipe's tolerance")
    s.add_argument("--timeout", type=float, default=None,
                   help="per-artifact time limit for a conversion, seconds (default 1800); a hang past it fails that artifact")
    _budget_flags(s, "int8 must hold this budget ({task} models: {what}), judged on --data: equalization, then the"
                  " fewest layers kept float")
    s.add_argument("--input-format", default=None, metavar="FORMAT",
                   help="put preprocessing inside the model: rgb-uint8-nhwc | rgba-uint8-nhwc (an Android Bitmap's bytes"
                   " in) | bert-ids-mask-segments (MediaPipe's three BERT inputs)")
    s.add_argument("--mean", default=None, metavar="M[,M,M]", help="the image front's mean, 0-255 pixel units (default:"
                   " from the model's preprocessing)")
    s.add_argument("--std", default=None, metavar="S[,S,S]", help="the image front's std, 0-255 pixel units (127.5 with"
                   " --mean 127.5 maps pixels to [-1, 1])")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser("inspect", parents=[common], allow_abbrev=False,
                       help="layer-by-layer divergence of a quantized artifact from its float source, worst first")
    s.add_argument("artifact", help="a *.manifest.json of a quantized .tflite or .pte")
    s.add_argument("--data", default=None, help="a named set (its held-out split) or an .npz; default: the model's own"
                   " set, else the probe rows written at conversion")
    s.add_argument("--max-samples", type=int, default=32, help="rows of data to run (default 32)")
    s.add_argument("--top", type=int, default=None, help="print only the N worst layers")
    s.add_argument("--json", action="store_true", help="print the rows as JSON")
    s.add_argument("--runtime", default=None, help="instead: this runtime's tensors against the host runtime's on the"
                   " same artifact, in execution order, naming the first that diverges (arm64: ARM vs x86)")
    _runtime_flags(s)
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("evaluate", parents=[common], help="measure size, accuracy and speed of artifacts with their real runtimes", allow_abbrev=False)
    s.add_argument("paths", nargs="+", help="folders of manifests, or manifest files")
    s.add_argument("--data", default=None, help="a named set (builtin:digits, builtin:sentences) or an .npz with one array per"
                   " input and optional labels y (default: each model's own default set, else the probe rows written at conversion: agreement with float, no accuracy)")
    s.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core (default 1,all)")
    s.add_argument("--out", default="report", help="report folder (default report/)")
    _budget_flags(s, "{task} rows within budget for the report's picks: {what} (default {default:g})")
    s.add_argument("--budget", dest="max_drop", type=float, default=None, help=argparse.SUPPRESS)  # --max-drop's old name
    s.add_argument("--timeout", type=float, default=defaults.WORKER_TIMEOUT_S, help="per-artifact time limit, seconds")
    s.add_argument("--strict", action="store_true", help="exit non-zero if any row has an error")
    s.add_argument("--runtime", default=None, metavar="NAME[,NAME]",
                   help="where to run the artifacts (see `edgeport targets`); default: every host runtime, plus the"
                   " browser runtimes with --browser. A runtime not available here is a skipped row saying why")
    s.add_argument("--device", default="local", help="local (default), or adb[:serial]: the same as --runtime adb")
    s.add_argument("--browser", default=None, choices=["chromium"], help="also run web artifacts in headless Chromium")
    _runtime_flags(s)
    s.add_argument("--quick", action="store_true", help="fewer timed runs (for smoke tests)")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("bundle", parents=[common], allow_abbrev=False,
                       help="what an app needs beside the artifacts: metadata, preprocessing, labels, call sites, checks")
    s.add_argument("artifacts", nargs="+", help="artifacts (.tflite, .pte), their manifests, or folders of them")
    s.add_argument("--for", required=True, metavar="PLACE", help="android | mcu (a C array, op resolver and arena size for TensorFlow Lite Micro)")
    s.add_argument("--out", required=True, help="the bundle folder (replaced when it holds an earlier bundle)")
    s.add_argument("--labels", default=None, metavar="FILE", help="class names, one a line (a classifier whose manifest"
                   " has none)")
    s.add_argument("--mean", default=None, metavar="M[,M,M]", help="image normalisation mean, 0-255 pixel units")
    s.add_argument("--std", default=None, metavar="S[,S,S]", help="image normalisation std, 0-255 pixel units (127.5"
                   " with --mean 127.5 maps pixels to [-1, 1])")
    s.add_argument("--mediapipe", default="auto", metavar="TASK", help="auto (default) | none | image-classifier |"
                   " text-embedder | text-classifier: the MediaPipe task the .tflite's metadata is written for")
    s.add_argument("--report", default=None, help="an `edgeport evaluate` report.json (or its folder): its speed and"
                   " accuracy go into the README")
    s.add_argument("--no-verify", action="store_true", help="skip running the bundled files with MediaPipe Tasks,"
                   " LiteRT CompiledModel and executorch.runtime")
    s.set_defaults(fn=cmd_bundle)

    s = sub.add_parser("serve", parents=[common], help="serve the demo page and the artifacts", allow_abbrev=False)
    s.add_argument("dir", nargs="?", default="artifacts", help="artifacts folder (default artifacts/)")
    s.add_argument("--host", default=None, help="bind address (default 127.0.0.1); a non-loopback address must be given here")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--data", default=None, help="evaluation data for benchmark mode (default: each model's own)")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("demo", parents=[common], help="train, convert everything, evaluate natively and in Chromium, serve the page", allow_abbrev=False)
    s.add_argument("--out", default=".", help="where artifacts/ and report/ go (default .)")
    s.add_argument("--no-serve", action="store_true", help="exit after writing the report")
    s.add_argument("--no-browser", action="store_true", help="skip the browser evaluation")
    s.add_argument("--port", type=int, default=8765)
    s.set_defaults(fn=cmd_demo)

    from edgeport.edge.sweep import add_parser as add_sweep  # the sweep's flags and logic live in edge/sweep/

    add_sweep(sub, common)
    return p


def _quiet_libraries() -> None:
    """The frameworks warn about their own internals (deprecations inside torch/executorch/keras); a CLI user
    cannot act on those, so they are hidden here and only here (tests and library use still see them)."""
    import warnings

    for cat in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=cat)


def _terminate(signum, frame):
    raise Terminated("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:
        if not args.verbose:
            _quiet_libraries()
        import signal

        signal.signal(signal.SIGTERM, _terminate)  # unwind: staging folders and worker processes are cleaned up
    try:
        return args.fn(args)
    except EdgeportError as e:
        print(f"edgeport: error: {' '.join(str(e).split())}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, read-only or immutable folder, a file where a folder should be ...
        print(f"edgeport: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    except (OverflowError, UnicodeError) as e:
        print(f"edgeport: error: {' '.join(str(e).split())}; check the arguments", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeport: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("edgeport: terminated (SIGTERM); staging folders removed", file=sys.stderr)
        return 143
