"""``edgeport bundle --for mcu``: the files a microcontroller firmware needs to run one full-integer ``.tflite`` with
TensorFlow Lite Micro.

- ``model_data.h`` / ``model_data.cc``: the model as a 16-byte aligned C array (TFLM reads it in place from flash) and
  its length, the tensor arena size (measured on TFLM, plus :data:`ARENA_MARGIN`), the int8 input and output scale
  and zero point, the shapes and the labels. Plain C++: they compile with ``g++ -c`` and no SDK.
- ``model_ops.h``: ``RegisterModelOps(ModelOpResolver&)`` adding exactly the ops the model uses to a
  ``tflite::MicroMutableOpResolver<N>`` with the ``Add...()`` names TFLM registers (needs the TFLM headers).
- ``README.md``: the measured figures (arena, flash, ops, and with ``--report`` the accuracy on TFLM), which example
  boards they fit, and how to wire the files in.

Everything is checked before anything is written: a model TFLM cannot run, or one with float I/O, is one line.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgeport import micro
from edgeport.errors import InputError, UnsupportedError
from edgeport.manifest import Manifest

from . import BundleOptions

# The arena constant is the host measurement plus this share. The host is 64-bit, so TFLM's own structs (pointers)
# are larger than on a 32-bit board, but an optimized kernel library (CMSIS-NN, ESP-NN) may ask for scratch buffers
# the reference kernels do not; 10% (at least 1 KiB) covers what we have seen, and the figure is stated, not hidden.
ARENA_MARGIN = 0.10
ARENA_MARGIN_MIN = 1024


def arena_constant(measured: int) -> int:
    """The kTensorArenaSize written into model_data.h: measured + margin, rounded up to 16 bytes."""
    n = measured + max(ARENA_MARGIN_MIN, int(measured * ARENA_MARGIN))
    return (n + 15) // 16 * 16


def bundle(manifests: list[Manifest], options: BundleOptions, out: Path) -> dict:
    if len(manifests) != 1:
        raise InputError(f"--for mcu bundles one model (a firmware links one model array); got {len(manifests)}:"
                         f" {', '.join(m.name for m in manifests)}; run `edgeport bundle` once per artifact")
    m = manifests[0]
    plan = _plan(m)  # every refusal happens here, before a file is written
    rows = _report_rows(options.report, m)
    (out / "model_data.h").write_text(_header(plan))
    (out / "model_data.cc").write_text(_source(plan))
    (out / "model_ops.h").write_text(_ops_header(plan))
    checks = _verify(plan, out) if options.verify else {}
    (out / "README.md").write_text(_readme(plan, rows, checks))
    return {"artifacts": [{"name": m.name, "target": m.target, "kind": "mcu", "files": {
                "model": "model_data.cc", "header": "model_data.h", "ops": "model_ops.h"}}],
            "arena_bytes": plan["arena"], "arena_constant": plan["arena_const"], "flash_bytes": plan["flash"],
            "ops": plan["ops"], "checks": checks, "boards": plan["boards"]}


# ------------------------------------------------------------------------------------------------ planning
def _plan(m: Manifest) -> dict:
    if m.target != "tflite":
        raise UnsupportedError(f"{m.name}: the mcu bundle takes a .tflite for TensorFlow Lite Micro; this one is"
                               f" {m.target} (convert with --to tflite --quant int8 --for mcu)")
    why = micro.unavailable()
    if why:
        raise UnsupportedError(f"--for mcu measures the arena with TFLite Micro, but {why}")
    tensors = (*m.sig.inputs, *m.sig.outputs)
    floats = [f"{t.name} ({t.dtype})" for t in tensors if t.dtype != "int8"]
    if floats:
        raise UnsupportedError(f"{m.name}: {', '.join(floats)} {'is' if len(floats) == 1 else 'are'} not int8; a"
                               " microcontroller bundle takes a full-integer model: convert with --to tflite --quant"
                               " int8 --for mcu")
    data = m.entry_path.read_bytes()
    why = micro.refusal(data)
    if why:
        raise UnsupportedError(f"{m.name}: {why}")
    table = micro.op_table(data)
    arena = micro.smallest_arena(data)
    return {"m": m, "data": data, "sha256": hashlib.sha256(data).hexdigest(), "flash": len(data), "arena": arena,
            "arena_const": arena_constant(arena), "ops": [{"op": o["op"], "add": o["add"], "count": o["count"]}
                                                          for o in table],
            "boards": micro.boards_fitting(arena_constant(arena), len(data)), "version": micro.version()}


def _report_rows(report: str | None, m: Manifest) -> list[dict]:
    """The tflite-micro rows of this artifact in an `edgeport evaluate` report (accuracy on TFLM, vs LiteRT)."""
    if not report:
        return []
    from edgeport.report import Report

    p = Path(report)
    p = p / "report.json" if p.is_dir() else p
    if not p.is_file():
        raise InputError(f"--report {report}: no report.json there; pass the folder or file `edgeport evaluate` wrote")
    rows = [r for r in Report.read(p).rows if r.artifact == m.name and r.where == "mcu" and not r.error and not r.skipped]
    if not rows:
        raise InputError(f"--report {report} has no tflite-micro row of {m.name}; run `edgeport evaluate ... --runtime"
                         " tflite-micro` first")
    return [r.__dict__ for r in rows]


# ------------------------------------------------------------------------------------------------ the C files
def _cident(s: str) -> str:
    return re.sub(r"\W", "_", s)


def _cfloat(x: float) -> str:
    return f"{float(x):.9e}f"  # always a valid float literal, exact to float32's precision


def _header(p: dict) -> str:
    m = p["m"]
    lines = [f"// Generated by `edgeport bundle --for mcu` from {m.name} (sha256 {p['sha256'][:16]}...). Do not edit:",
             "// re-run the bundle after re-converting the model.",
             "#ifndef EDGEPORT_MODEL_DATA_H_", "#define EDGEPORT_MODEL_DATA_H_", "", "#include <cstddef>",
             "#include <cstdint>", "",
             "// The .tflite flatbuffer, 16-byte aligned; TFLM reads it in place (keep it const: it stays in flash).",
             "extern const unsigned char g_model_data[];", "extern const unsigned int g_model_data_len;", "",
             f"// Tensor arena: {p['arena']:,} bytes measured as the smallest that allocates on TFLite Micro"
             f" {p['version']} (64-bit host,",
             f"// reference kernels), plus a {int(ARENA_MARGIN * 100)}% margin (at least {ARENA_MARGIN_MIN} B) for"
             " optimized kernels' scratch buffers.",
             f"constexpr size_t kTensorArenaSize = {p['arena_const']};", ""]
    for kind, ts in (("Input", m.sig.inputs), ("Output", m.sig.outputs)):
        for i, t in enumerate(ts):
            sfx = "" if len(ts) == 1 else str(i)
            q = t.quantization
            lines += [f"// {kind} {t.name!r}: int8{list(t.shape)}; real value = (q - zero_point) * scale",
                      f"constexpr float k{kind}Scale{sfx} = {_cfloat(q['scale'])};",
                      f"constexpr int k{kind}ZeroPoint{sfx} = {int(q['zero_point'])};",
                      f"constexpr int k{kind}Dims{sfx}[] = {{{', '.join(str(int(d)) for d in t.shape)}}};",
                      f"constexpr int k{kind}Size{sfx} = {int(_prod(t.shape))};"]
        lines.append("")
    labels = m.sig.outputs[0].labels if m.sig.outputs else None
    if labels:
        esc = ", ".join('"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"' for x in labels)
        lines += [f"constexpr int kNumLabels = {len(labels)};", f"constexpr const char* kLabels[] = {{{esc}}};", ""]
    lines += ["#endif  // EDGEPORT_MODEL_DATA_H_", ""]
    return "\n".join(lines)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _source(p: dict) -> str:
    data = p["data"]
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)]
    body = ",\n  ".join(rows)
    return (f"// Generated by `edgeport bundle --for mcu` from {p['m'].name}: {len(data):,} bytes. Do not edit.\n"
            '#include "model_data.h"\n\n'
            f"alignas(16) const unsigned char g_model_data[] = {{\n  {body}\n}};\n"
            f"const unsigned int g_model_data_len = {len(data)};\n")


def _ops_header(p: dict) -> str:
    ops = p["ops"]
    adds = "\n".join(f"  if (resolver.{o['add']}() != kTfLiteOk) return kTfLiteError;  // {o['op']} x{o['count']}"
                     for o in ops)
    return (f"// Generated by `edgeport bundle --for mcu` from {p['m'].name}: exactly the ops the model uses.\n"
            "// Needs TensorFlow Lite Micro's headers (github.com/tensorflow/tflite-micro).\n"
            "#ifndef EDGEPORT_MODEL_OPS_H_\n#define EDGEPORT_MODEL_OPS_H_\n\n"
            '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
            f"constexpr int kNumModelOps = {len(ops)};\n"
            "using ModelOpResolver = tflite::MicroMutableOpResolver<kNumModelOps>;\n\n"
            "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {\n"
            f"{adds}\n  return kTfLiteOk;\n}}\n\n#endif  // EDGEPORT_MODEL_OPS_H_\n")


def parse_c_array(text: str) -> bytes:
    """The bytes of g_model_data in a model_data.cc (the bundle checks its own array against the model)."""
    body = text[text.index("g_model_data[] = {") :]
    body = body[: body.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))


# ------------------------------------------------------------------------------------------------ checks
def _verify(p: dict, out: Path) -> dict:
    """The array holds the model byte for byte; the arena constant allocates and runs on TFLM; the C files compile
    with the host's C++ compiler where there is one (no SDK needed for them)."""
    checks = {"array_matches_model": parse_c_array((out / "model_data.cc").read_text()) == p["data"],
              "arena_constant_runs_on_tflm": micro.allocates(p["data"], p["arena_const"])}
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        checks["compiles"] = "not checked: no g++ on this machine"
    else:
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-c", str(out / "model_data.cc"), "-o",
                                str(Path(d) / "model_data.o")], capture_output=True, text=True)
        checks["compiles"] = True if r.returncode == 0 else f"g++ -c failed: {(r.stderr.strip().splitlines() or ['?'])[0]}"
    bad = [k for k, v in checks.items() if v is not True and not str(v).startswith("not checked")]
    if bad:
        raise UnsupportedError(f"{p['m'].name}: the mcu bundle failed its own checks ({', '.join(f'{k}: {checks[k]}' for k in bad)})")
    return checks


# ------------------------------------------------------------------------------------------------ README
def _op_list(ops: list[dict]) -> str:
    return ", ".join(f"{o['op']} x{o['count']} (`{o['add']}`)" for o in ops)


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def _readme(p: dict, rows: list[dict], checks: dict) -> str:
    m = p["m"]
    t_in, t_out = m.sig.inputs[0], m.sig.outputs[0]
    out = [f"# {m.name} for TensorFlow Lite Micro", "",
           f"Written by `edgeport bundle --for mcu` from `{m.name}` ({m.source.get('model')}, recipe {m.recipe}).", "",
           "## Measured", "",
           "| figure | value |", "|---|---|",
           f"| flash: the model array (`g_model_data_len`) | {_kib(p['flash'])} |",
           f"| tensor arena, smallest that allocates on TFLM {p['version']} (this host, reference kernels) |"
           f" {_kib(p['arena'])} |",
           f"| `kTensorArenaSize` (+{int(ARENA_MARGIN * 100)}%, at least {ARENA_MARGIN_MIN} B, 16-byte rounded) |"
           f" {_kib(p['arena_const'])} |",
           f"| ops ({len(p['ops'])} kinds) | {_op_list(p['ops'])} |"]
    for r in rows:
        vs = r.get("vs_host") or {}
        acc = r.get("accuracy")
        if acc is not None:
            drop = r.get("accuracy_drop_pp")
            out.append(f"| accuracy on TFLM ({r.get('samples')} rows) | {100 * acc:.2f}%"
                       + (f" (drop vs float: {drop:.2f} pp)" if drop is not None else "") + " |")
        elif r.get("agreement") is not None:
            out.append(f"| top-1 agreement with float on TFLM | {100 * r['agreement']:.2f}% |")
        if vs.get("max_abs_diff") is not None:
            out.append(f"| max abs diff vs {vs.get('runtime')} on the same .tflite | {vs['max_abs_diff']:.4g} |")
        lat = (r.get("latency_ms") or {}).get("p50")
        if lat is not None:
            out.append(f"| latency p50 on this host's CPU (not a board's) | {lat:.3f} ms |")
    if not rows:
        out += ["", "Accuracy on TFLM was not measured for this bundle: run `edgeport evaluate DIR --runtime"
                " tflite-micro` and pass its report with `--report`."]
    out += ["", "Host figures: the arena was measured on a 64-bit host, where TFLM's own bookkeeping (pointers) is"
            " larger than on a 32-bit microcontroller; optimized kernels (CMSIS-NN, ESP-NN) may ask for scratch"
            " buffers the reference kernels do not, which is what the margin is for. The flash figure is the model"
            " only: TFLM's code and your firmware come on top (tens of KB).", "",
            "## Example boards", "",
            "Examples to compare against, not a list of supported boards; check your board's datasheet.", "",
            "| board | core | RAM | flash | model + arena fit? | source |", "|---|---|---|---|---|---|"]
    for b in micro.BOARDS:
        ok = p["arena_const"] <= b.ram and p["flash"] <= b.flash
        out.append(f"| {b.name} | {b.core} | {b.ram // 1024} KB | {b.flash // 1024} KB | {'yes' if ok else 'no'} |"
                   f" {b.source} |")
    out += ["", "## Files", "",
            "- `model_data.h` / `model_data.cc`: `g_model_data` (16-byte aligned), `g_model_data_len`,"
            " `kTensorArenaSize`, `kInputScale`/`kInputZeroPoint`, `kOutputScale`/`kOutputZeroPoint`, shapes"
            + (", `kLabels`" if t_out.labels else "") + ". Plain C++17; `g++ -c model_data.cc` needs no SDK.",
            "- `model_ops.h`: `RegisterModelOps(ModelOpResolver&)`, the model's ops and nothing else, for"
            " `tflite::MicroMutableOpResolver<kNumModelOps>` (needs TFLM's headers).", "",
            "## Wiring it in", "", "```cpp",
            '#include "model_data.h"', '#include "model_ops.h"',
            '#include "tensorflow/lite/micro/micro_interpreter.h"', "",
            "alignas(16) static uint8_t tensor_arena[kTensorArenaSize];", "",
            "ModelOpResolver resolver;", "RegisterModelOps(resolver);",
            "const tflite::Model* model = tflite::GetModel(g_model_data);",
            "tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);",
            "interpreter.AllocateTensors();",
            "TfLiteTensor* input = interpreter.input(0);",
            f"// quantize each real input value x ({t_in.name}, int8{list(t_in.shape)}):",
            "//   input->data.int8[i] = clamp(round(x / kInputScale) + kInputZeroPoint, -128, 127)",
            "interpreter.Invoke();",
            "TfLiteTensor* output = interpreter.output(0);",
            f"// real output ({t_out.name}) = (output->data.int8[i] - kOutputZeroPoint) * kOutputScale",
            "```", ""]
    if checks:
        out += ["## Checked when this bundle was written", ""]
        out += [f"- {k.replace('_', ' ')}: {'yes' if v is True else v}" for k, v in checks.items()]
        out.append("")
    return "\n".join(out)
