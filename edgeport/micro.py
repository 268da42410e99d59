"""TensorFlow Lite Micro facts about a ``.tflite``: its ops and the layers they come from, whether TFLM registers
each (and the ``MicroMutableOpResolver::Add...()`` that does), whether TFLM allocates and runs it, and the smallest
tensor arena that allocates.

Core, because three plugins of two layers read the same facts: the tflite converter's ``--for mcu`` profile (refuse
an op TFLM lacks), the ``tflite-micro`` runtime (arena, flash, op table) and the ``mcu`` bundle (op resolver, arena
constant). The ``tflite-micro`` package (PyPI) runs the same C++ reference kernels a board runs; it is imported
lazily.

Example::

    from edgeport import micro
    data = open("kws.int8.tflite", "rb").read()
    micro.refusal(data)           # None, or "GELU (layer 'gelu_act') is not in TFLite Micro's op resolver ..."
    micro.smallest_arena(data)    # 12400
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

PACKAGE = "tflite-micro"
INSTALL = "pip install tflite-micro (requirements.lock pins it; ./run setup installs it)"

# The builtin operators the pinned tflite-micro registers in its Python interpreter's resolver (every kernel TFLM
# has). Read from the wheel's `Register_<OP>()` kernels (nm -C _runtime.so); tests/test_tflm.py re-reads them so a
# wheel bump that adds or drops a kernel fails there rather than silently here.
TFLM_BUILTINS = frozenset("""
ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS BROADCAST_TO
CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV
DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER
GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND
LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2
PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK
VAR_HANDLE WHILE ZEROS_LIKE
""".split())
# Custom ops TFLM ships a kernel for, by the custom code a .tflite carries.
TFLM_CUSTOM = {"TFLite_Detection_PostProcess": "AddDetectionPostprocess", "CIRCULAR_BUFFER": "AddCircularBuffer"}
# MicroMutableOpResolver's method names follow the op's name in CamelCase ("MAX_POOL_2D" -> AddMaxPool2D,
# "SPACE_TO_BATCH_ND" -> AddSpaceToBatchNd) except these (tensorflow/lite/micro/micro_mutable_op_resolver.h).
_ADD_EXCEPTIONS = {"BATCH_MATMUL": "AddBatchMatMul", "CUMSUM": "AddCumSum", "PADV2": "AddPadV2",
                   "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM"}


def add_name(op: str) -> str | None:
    """The ``MicroMutableOpResolver`` method that registers ``op`` ("CONV_2D" -> "AddConv2D"), None when TFLM has
    no kernel for it. A custom op is named ``CUSTOM:<code>``."""
    if op.startswith("CUSTOM:"):
        return TFLM_CUSTOM.get(op[7:])
    if op not in TFLM_BUILTINS:
        return None
    if op in _ADD_EXCEPTIONS:
        return _ADD_EXCEPTIONS[op]
    return "Add" + "".join(p if re.fullmatch(r"\d+D", p) else p.capitalize() for p in op.split("_"))


@dataclass(frozen=True)
class Op:
    index: int  # position in the main subgraph (TFLM's "Node ... (number N)")
    name: str  # builtin operator name, or CUSTOM:<code>
    layer: str  # the first name of the op's output tensor: the framework's layer path
    input_types: tuple[str, ...]  # tensor types of its inputs (INT8, FLOAT32 ...), constants included


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


def model_ops(data: bytes) -> list[Op]:
    """Every op of the model's main subgraph, in execution order (read with the schema tflite-micro ships)."""
    s = _schema()
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
    g = m.subgraphs[0]
    out = []
    for i, op in enumerate(g.operators or []):
        oc = m.operatorCodes[op.opcodeIndex]
        name = names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "UNKNOWN")
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.customCode or b"").decode()
        outs = [g.tensors[t].name.decode(errors="replace") for t in (op.outputs if op.outputs is not None else []) if t >= 0]
        layer = outs[0].split(";")[0] if outs else "?"
        ins = tuple(types.get(g.tensors[t].type, "?") for t in (op.inputs if op.inputs is not None else []) if t >= 0)
        out.append(Op(i, name, layer, ins))
    return out


def op_table(data: bytes, failed: dict[int, str] | None = None) -> list[dict]:
    """One entry per distinct op, in first-use order: {op, add, count, tflm (True | False), why} -- ``failed`` maps an
    op's index to the reason TFLM refused it at prepare time (a registered op refusing these types)."""
    rows: dict[str, dict] = {}
    for o in model_ops(data):
        r = rows.setdefault(o.name, {"op": o.name, "add": add_name(o.name), "count": 0, "tflm": add_name(o.name) is not None,
                                     "why": None if add_name(o.name) else "no TFLM kernel", "layers": []})
        r["count"] += 1
        r["layers"].append(o.layer)
        if failed and o.index in failed:
            r["tflm"], r["why"] = False, failed[o.index]
    return list(rows.values())


# ------------------------------------------------------------------------------------------------ the interpreter
_LIBC = None


@contextlib.contextmanager
def _c_output(sink: list):
    """TFLM's MicroPrintf writes to the process's stderr (fd 2) from C++, past Python's sys.stderr: point fd 2 at a
    file for the duration and hand its text back in ``sink``."""
    global _LIBC
    _LIBC = _LIBC or ctypes.CDLL(None)
    sys.stderr.flush()
    _LIBC.fflush(None)
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            _LIBC.fflush(None)
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            sink.append(f.read().decode("utf-8", "replace"))


class MicroError(RuntimeError):
    """TFLM refused the model: ``text`` is what it printed, ``op_index`` the node it names (or None)."""

    def __init__(self, text: str, op_index: int | None, op_name: str | None):
        super().__init__(text)
        self.text, self.op_index, self.op_name = text, op_index, op_name


def _refusal_from(text: str) -> tuple[int | None, str | None, str]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("[RecordingMicroAllocator]")]
    m = re.search(r"Node (\w+) \(number (\d+)\) failed to (?:prepare|invoke)", text)
    if m:
        why = next((ln for ln in lines if not ln.startswith("Node ")), lines[0])
        return int(m.group(2)), m.group(1), why
    m = re.search(r"Didn't find op for builtin opcode '(\w+)'", text) or re.search(r"[Cc]ustom op[^']*'([^']+)'", text)
    if m:
        return None, m.group(1), "no TFLM kernel"
    return None, None, lines[0] if lines else "TFLM failed to allocate tensors"


def interpreter(data: bytes, arena_size: int | None = None, *, log: list | None = None):
    """A TFLM interpreter of ``data`` with a tensor arena of ``arena_size`` bytes (None: 10x the model, TFLM's own
    guess), allocated and run once on zeros (TFLM plans the arena lazily); raises :class:`MicroError` with what TFLM
    printed."""
    from tflite_micro.python.tflite_micro import runtime as tflm

    sink: list[str] = []
    try:
        with _c_output(sink):
            it = tflm.Interpreter.from_bytes(data, arena_size=arena_size)
            for i in range(_n_inputs(data)):
                d = it.get_input_details(i)
                it.set_input(np.zeros(d["shape"], d["dtype"]), i)
            it.invoke()
    except (RuntimeError, ValueError) as e:
        text = (sink[0] if sink else "") or str(e)
        idx, name, why = _refusal_from(text + "\n" + str(e))
        raise MicroError(why, idx, name) from None
    if log is not None:
        log.append(sink[0] if sink else "")
    return it


def _n_inputs(data: bytes) -> int:
    s = _schema()
    return s.Model.GetRootAsModel(data, 0).Subgraphs(0).InputsLength()


def io_positions(data: bytes) -> tuple[dict[str, int], dict[str, int]]:
    """TFLM addresses inputs and outputs by position in the main subgraph; the manifest by the signature's keys
    (``binding``). {key: position} for inputs and outputs, from the model's first SignatureDef ({} when it has none)."""
    s = _schema()
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
    g = m.subgraphs[0]
    if not m.signatureDefs:
        return {}, {}
    sd = m.signatureDefs[0]
    ins, outs = list(g.inputs), list(g.outputs)
    return ({t.name.decode(): ins.index(t.tensorIndex) for t in sd.inputs or [] if t.tensorIndex in ins},
            {t.name.decode(): outs.index(t.tensorIndex) for t in sd.outputs or [] if t.tensorIndex in outs})


def refusal(data: bytes) -> str | None:
    """None when TFLM registers every op and allocates and runs the model; else one line naming the op and its layer."""
    ops = model_ops(data)
    for o in ops:
        if add_name(o.name) is None:
            return (f"{o.name} (layer {o.layer!r}) is not in TFLite Micro's op resolver; replace that layer with ops"
                    f" TFLM has (edgeport.micro.TFLM_BUILTINS)")
    try:
        interpreter(data, max(10 * len(data), 1 << 20))
    except MicroError as e:
        o = ops[e.op_index] if e.op_index is not None and e.op_index < len(ops) else None
        where = f"{o.name} (layer {o.layer!r}, inputs {'/'.join(dict.fromkeys(o.input_types))})" if o else (e.op_name or "the model")
        return f"TFLite Micro cannot run {where}: {e.text}"
    return None


def arena_total(data: bytes, arena_size: int | None = None) -> int:
    """The arena TFLM's recording allocator says it used (``print_allocations``' total), after one invoke."""
    it = interpreter(data, arena_size or max(10 * len(data), 1 << 20))
    sink: list[str] = []
    with _c_output(sink):
        it.print_allocations()
    m = re.search(r"Arena allocation total (\d+) bytes", sink[0])
    if not m:
        raise MicroError(f"tflite-micro printed no arena total ({sink[0][:120]!r})", None, None)
    return int(m.group(1))


# One arena probe, in a process of its own: TFLM's allocator can write past an arena a little too small for the model
# (a segfault at some sizes just below the need, seen with a 1-D conv model at 1.7 KB of its 3.4 KB) instead of
# failing cleanly, so a probe's crash is an answer ("does not allocate"), not the caller's death.
_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime as tflm
data = sys.stdin.buffer.read()
try:
    it = tflm.Interpreter.from_bytes(data, arena_size=int(sys.argv[1]))
    for i in range(int(sys.argv[2])):
        d = it.get_input_details(i)
        it.set_input(np.zeros(d["shape"], d["dtype"]), i)
    it.invoke()
except Exception:
    sys.exit(3)
"""


def allocates(data: bytes, arena_size: int) -> bool:
    """Whether TFLM allocates and runs the model (once, on zeros) with a tensor arena of ``arena_size`` bytes."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", _PROBE, str(int(arena_size)), str(_n_inputs(data))], input=data,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def smallest_arena(data: bytes) -> int:
    """The smallest tensor arena (bytes) with which TFLM allocates and runs the model on this host: a bisection just
    below the recording allocator's total (alignment slack can make a few bytes less enough), each probe a real
    allocation."""
    hi = arena_total(data)
    while not allocates(data, hi):  # the recorded total leaves out the arena's own alignment: step up until it runs
        hi += 16
    lo = hi - 64
    if allocates(data, lo):  # the plan needs less than recorded: search the whole lower half
        lo = 0
    while hi - lo > 1:  # lo fails, hi runs
        mid = (lo + hi) // 2
        if allocates(data, mid):
            hi = mid
        else:
            lo = mid
    return hi


def version() -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v(PACKAGE)
    except PackageNotFoundError:
        return None


def unavailable() -> str | None:
    """None when tflite-micro imports here; else one line with the fix."""
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except Exception as e:  # an ImportError, or a wheel built for another platform
        return f"{PACKAGE} is not importable ({type(e).__name__}: {str(e)[:80]}); {INSTALL}"
    return None


def check_profile(targets: list[str], recipes: list[str]) -> None:
    """``--for mcu`` makes one kind of artifact, a full-integer .tflite: any other target or recipe is one line, before
    the model loads."""
    from .errors import InputError

    other_t = [t for t in targets if t != "tflite"]
    other_r = [r for r in recipes if r != "int8"]
    if other_t or other_r:
        raise InputError("--for mcu makes a full-integer .tflite for TensorFlow Lite Micro; drop "
                         + " and ".join(x for x in (f"--to {','.join(other_t)}" if other_t else "",
                                                    f"--quant {','.join(other_r)}" if other_r else "") if x)
                         + " (use: --to tflite --quant int8 --for mcu)")


def run_rows(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Every row of ``inputs`` (float, one (N, ...) array per model input in subgraph order) through TFLM, batch 1;
    int8 I/O quantized and dequantized with the model's own scale and zero point. Outputs in subgraph order, float."""
    it = interpreter(data, max(10 * len(data), 1 << 20))
    n_out = len(io_positions(data)[1]) or 1
    ind = [it.get_input_details(i) for i in range(len(inputs))]
    outd = [it.get_output_details(j) for j in range(n_out)]
    outs: list[list] = [[] for _ in range(n_out)]
    for k in range(len(inputs[0])):
        for i, (x, d) in enumerate(zip(inputs, ind)):
            it.set_input(_quantize(x[k : k + 1], d), i)
        it.invoke()
        for j, d in enumerate(outd):
            outs[j].append(_dequantize(it.get_output(j), d))
    return [np.concatenate(o) for o in outs]


def _quantize(x: np.ndarray, d: dict) -> np.ndarray:
    dt = np.dtype(d["dtype"])
    q = d.get("quantization_parameters") or {}
    if dt.kind in "iu" and np.asarray(x).dtype.kind == "f" and len(q.get("scales", [])):
        info = np.iinfo(dt)
        return np.clip(np.round(x / q["scales"][0] + q["zero_points"][0]), info.min, info.max).astype(dt)
    return np.asarray(x).astype(dt).reshape(d["shape"])


def _dequantize(y: np.ndarray, d: dict) -> np.ndarray:
    q = d.get("quantization_parameters") or {}
    if y.dtype.kind in "iu" and len(q.get("scales", [])):
        return ((y.astype(np.float32) - q["zero_points"][0]) * q["scales"][0]).astype(np.float32)
    return np.asarray(y, dtype=np.float32)


@dataclass(frozen=True)
class Board:
    name: str
    core: str
    ram: int  # on-chip SRAM, bytes (the tensor arena and everything else the firmware keeps in RAM share it)
    flash: int  # flash for the firmware and the model array, bytes
    source: str  # where the figures come from


KB = 1024
# Example boards for the README and the note, not a catalogue: check your own board's datasheet.
BOARDS = (
    Board("Arduino Nano 33 BLE Sense (nRF52840)", "Arm Cortex-M4F, 64 MHz", 256 * KB, 1024 * KB,
          "Nordic nRF52840 Product Specification v1.7, section 1 (256 KB RAM, 1 MB flash)"),
    Board("STM32F746 (e.g. 32F746G-DISCOVERY)", "Arm Cortex-M7, 216 MHz", 320 * KB, 1024 * KB,
          "ST STM32F745xx/STM32F746xx datasheet DS10916, features (320 KB SRAM, up to 1 MB flash)"),
    Board("ESP32-S3 (e.g. ESP32-S3-WROOM-1-N8)", "Xtensa LX7 dual-core, 240 MHz", 512 * KB, 8 * 1024 * KB,
          "Espressif ESP32-S3 Series datasheet v1.x, section 1 (512 KB SRAM; flash is external, 8 MB on the N8"
          " module)"),
)


def boards_fitting(arena: int, flash: int) -> list[str]:
    """The example boards whose RAM holds the arena and whose flash holds the model (the firmware's own code and
    stack are not counted: leave room for them)."""
    return [b.name for b in BOARDS if arena <= b.ram and flash <= b.flash]


_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "k": 1024, "mb": 1 << 20, "mib": 1 << 20, "m": 1 << 20}


def parse_bytes(text: str) -> int:
    """"64KB" / "64KiB" / "1MB" / "65536" -> bytes. KB is 1024 bytes, as microcontroller datasheets use it."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError("not a byte size; write e.g. 256KB, 1MB or 65536 (KB = 1024 bytes)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError("must be positive")
    return n
