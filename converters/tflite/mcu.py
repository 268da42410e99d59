"""The ``--for mcu`` profile of the .tflite converters (Keras and torch): the full-integer int8 model they made
(int8 weights, activations and I/O) is checked op by op against TensorFlow Lite Micro, allocated and run by TFLM's
own interpreter, and, with a budget flag, judged by TFLM on the held-out rows.

A microcontroller has no float fallback worth the name, so the budget search that keeps layers float does not apply:
the model meets ``--max-drop`` fully integer or is refused with the number it reached.
"""

from __future__ import annotations

import numpy as np

from edgeport import micro
from edgeport.errors import QuantizationBudgetError, UnsupportedError
from edgeport.job import Job
from edgeport.signature import Signature


def check(job: Job, data: bytes, signature: Signature) -> dict:
    """Refuse what TFLM cannot run (one line naming the op and its layer); else the manifest's ``quantization``
    facts of the profile: TFLM version, the ops with their ``Add...()`` names, the arena, the budget verdict."""
    why = micro.unavailable()
    if why:
        raise UnsupportedError(f"{job.name}: --for mcu checks the model with TFLite Micro, but {why}")
    why = micro.refusal(data)
    if why:
        raise UnsupportedError(f"{job.name}: --for mcu: {why}")
    floats = [f"{s.name} ({s.dtype})" for s in (*signature.inputs, *signature.outputs)
              if s.dtype.startswith("float")]
    if floats:
        raise UnsupportedError(f"{job.name}: --for mcu needs int8 input and output, but {', '.join(floats)} stayed float;"
                               " the converter did not quantize them (report this model)")
    facts = {"profile": "mcu", "scheme": "full integer (int8 weights, activations and I/O)", "tflite-micro": micro.version(),
             "ops": {o["op"]: o["add"] for o in micro.op_table(data)}, "arena_bytes_host": micro.smallest_arena(data)}
    if job.budget is not None:
        facts["budget"] = _judge(job, data, signature)
    return facts


def _judge(job: Job, data: bytes, signature: Signature) -> dict:
    """The budget metric of the TFLM outputs against the float model on the held-out rows; refused when it misses."""
    from edgeport.quantization.budget import goal, score, split_feeds

    g = goal(job.source.task, job.budget)
    if not job.holdout:
        raise UnsupportedError(f"{job.name}: a budget with --for mcu is judged on held-out rows; pass --data")
    feeds, y = split_feeds(job.holdout, list(job.sig.input_names))
    ref = job.source.float_outputs(feeds)
    ins, outs = micro.io_positions(data)
    order = sorted(signature.inputs, key=lambda s: ins.get(s.binding, 0))
    got_list = micro.run_rows(data, [np.asarray(feeds[s.name], np.float32) for s in order])
    got = {s.name: got_list[outs.get(s.binding, i)].reshape((-1, *s.shape[1:]))
           for i, s in enumerate(signature.outputs)}
    primary = signature.outputs[0].name
    res = score(g, {primary: ref[primary]}, {primary: got[primary]}, y)
    verdict = {"goal": g.describe(), "value": res["value"], "meets": bool(res["meets"]), "runtime": "tflite-micro",
               "rows": int(len(next(iter(feeds.values()))))}
    if not res["meets"]:
        raise QuantizationBudgetError(f"{job.name}: --for mcu: the full-integer model reaches {g.metric} {res['value']:.4g}"
                                      f" on TFLite Micro, which misses {g.describe()}; a microcontroller build keeps"
                                      " every layer int8, so relax the budget, give more representative --calib rows,"
                                      " or change the model")
    return verdict
