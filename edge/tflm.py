"""Runtime plugin: TensorFlow Lite Micro (``--runtime tflite-micro``). Full-integer ``.tflite`` artifacts run on
TFLM's C++ reference kernels (the PyPI ``tflite-micro`` interpreter, the code a board runs), on this host.

Each row carries what a microcontroller asks: ``arena_bytes`` (the smallest tensor arena that allocates, bisected
against the real allocator, not TFLM's 10x-the-model guess), ``flash_bytes`` (the model as a C array), ``ops`` (each
op with its TFLM kernel and ``Add...()`` name) and, with ``--mcu-ram`` / ``--mcu-flash``, ``fits``: whether model and
arena fit the board and by how much they miss. Latency is this host's time on the reference kernels, not a board's.

Example::

    edgeport evaluate artifacts/ --runtime tflite-micro --mcu-ram 256KB --mcu-flash 1MB
"""

from __future__ import annotations


from edgeport import micro
from edgeport.errors import ArtifactError
from edgeport.registry import RuntimeFlag, register_runtime
from edgeport.runtime import Runner

# Why a recipe cannot run on a microcontroller interpreter (the fix is the same: --quant int8 --for mcu).
_NOT_INTEGER = {
    "fp32": "float32 model: TFLM runs it but a microcontroller wants full-integer",
    "fp16": "fp16 weights are DEQUANTIZE'd from float16, which TFLM's DEQUANTIZE does not take",
    "dynamic-int8": "dynamic-range int8 runs float activations into int8-weight FULLY_CONNECTED/CONV_2D, which TFLM"
                    " does not take",
}
def fits(arena: int, flash: int, ram_have: int | None, flash_have: int | None) -> dict | None:
    """{ram: {need, have, ok, short_by}, flash: {...}, ok} for the budgets given; None when none was."""
    out = {}
    for k, need, have in (("ram", arena, ram_have), ("flash", flash, flash_have)):
        if have is not None:
            out[k] = {"need": int(need), "have": int(have), "ok": need <= have, "short_by": max(0, int(need - have))}
    if not out:
        return None
    out["ok"] = all(v["ok"] for v in out.values())
    return out


class MicroRunner(Runner):
    runtime = "tflite-micro"
    backend = "reference"  # TFLM's portable C++ kernels (a board build swaps in CMSIS-NN / ESP-NN for speed)
    threaded = False  # a microcontroller interpreter is single-threaded

    @classmethod
    def import_runtime(cls) -> None:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401

    @classmethod
    def accepts(cls, manifest) -> str | None:
        if manifest.recipe in _NOT_INTEGER:
            return f"not full-integer: convert with --quant int8 --for mcu ({_NOT_INTEGER[manifest.recipe]})"
        try:
            ops = micro.model_ops(manifest.entry_path.read_bytes())
        except Exception:  # unreadable: the worker's load gives the error row
            return None
        lacking = [o for o in ops if micro.add_name(o.name) is None]
        if lacking:
            o = lacking[0]
            return f"{o.name} (layer {o.layer!r}) has no TFLite Micro kernel; re-convert with --for mcu to see every op"
        return None

    def load(self) -> None:
        self.runtime_version = micro.version() or ""
        self.data = self.m.entry_path.read_bytes()
        try:
            it = micro.interpreter(self.data, max(10 * len(self.data), 1 << 20))
        except micro.MicroError as e:
            why = micro.refusal(self.data) or e.text
            raise ArtifactError(f"{self.m.name}: {why}") from None
        ins, outs = micro.io_positions(self.data)
        in_pos = [ins.get(s.binding, i) for i, s in enumerate(self.sig.inputs)]
        out_pos = [outs.get(s.binding, i) for i, s in enumerate(self.sig.outputs)]
        set_input, invoke, get_output = it.set_input, it.invoke, it.get_output
        pairs = list(zip(range(len(in_pos)), in_pos))
        self.it = it

        def invoke_one(xs: list) -> list:
            for j, p in pairs:
                set_input(xs[j], p)
            invoke()
            return [get_output(p) for p in out_pos]

        self.invoke_one = invoke_one

    def extra_fields(self) -> dict:
        arena = micro.smallest_arena(self.data)
        flash = len(self.data)
        ops = micro.op_table(self.data)
        f = fits(arena, flash, self.options.get("ram"), self.options.get("flash"))
        note = "latency: host time on TFLM's reference kernels, not board time"
        if f and not f["ok"]:
            note = "; ".join(f"{k} short by {v['short_by']:,} B (needs {v['need']:,}, has {v['have']:,})"
                             for k, v in f.items() if k != "ok" and not v["ok"]) + "; " + note
        return {"arena_bytes": arena, "flash_bytes": flash, "ops": ops, "fits": f, "note": note}

    def delegation(self) -> dict | None:
        return None  # no delegate on a microcontroller interpreter (the manifest's is LiteRT's XNNPACK)


register_runtime(
    "tflite-micro", formats=("tflite",), where="mcu", runner=MicroRunner,
    measures=("accuracy", "latency", "arena", "flash"), available=micro.unavailable, compare_to="ai-edge-litert",
    flags=(RuntimeFlag("--mcu-ram", "ram", "tflite-micro: the board's RAM for the tensor arena (e.g. 256KB; KB = 1024"
                       " bytes); the row says whether the arena fits and by how much it misses", metavar="BYTES",
                       parse=micro.parse_bytes),
           RuntimeFlag("--mcu-flash", "flash", "tflite-micro: the board's flash for the model array (e.g. 1MB)",
                       metavar="BYTES", parse=micro.parse_bytes)),
    aliases=("tflm",), versions=(micro.PACKAGE,),
    description="TensorFlow Lite Micro reference kernels on this host: arena, flash, op support; host latency")
