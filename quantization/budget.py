"""Static int8 that holds accuracy: an accuracy budget, met with the smallest change from all-int8.

Given a budget (``max_drop_pp`` for classification, ``min_cosine`` for embedding, ``min_snr_db`` for regression)
and budget rows kept apart from calibration, the search tries, in order, and stops at the first that meets it:

1. plain static int8 (every layer int8);
2. an equalization that keeps every layer int8 (torch sources): BatchNorm folding + cross-layer equalization of
   conv/linear chains, and SmoothQuant scale migration for Linear inputs with outlier channels (transformers);
   kept when it improves the metric;
3. the fewest layers kept float: layers ranked by the SNR they lose (:mod:`edgeport.quantization.layers`, one pass on the
   int8 model), then the shortest prefix of that ranking that meets the budget (lengths 1, 2, 4, ... then
   bisection).

``.pte``: PT2E (XNNPACKQuantizer, per-channel weights, per-tensor activations) with a node filter that leaves the
chosen modules float; candidates are scored in Python on the fake-quantized GraphModule, and the chosen one is
lowered and measured again with the real ExecuTorch runtime (if that misses, the next layer is added).
``.tflite`` (Keras and torch sources alike): the float .tflite of the official converter -> ai-edge-quantizer static
int8 with per-op exclusions (NO_QUANTIZE by op scope), calibrated once; every candidate is run with LiteRT. This
also avoids litert-torch's PT2E path, which fails on plain conv-relu-pool chains.

The result's ``quantization`` dict goes into the manifest; :class:`edgeport.errors.QuantizationBudgetError` is raised
naming the best reached when nothing meets the budget.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.console import log as _log
from edgeport.errors import InputError, QuantizationBudgetError
from edgeport.tasks import get_task

# ------------------------------------------------------------------------------------------------ the budget
SCREEN_ROWS = 32  # rows that score each candidate of a .pte search for a cosine or SNR budget (see _search_pte)
_COMPUTE_OPS = {"conv2d", "conv1d", "linear", "matmul", "bmm", "mm", "addmm", "add", "mul", "sub", "div", "softmax",
                "_softmax", "layer_norm", "gelu", "tanh", "mean", "cat", "hardswish", "sigmoid", "avg_pool2d",
                "adaptive_avg_pool2d", "max_pool2d", "relu", "embedding"}


@dataclass(frozen=True)
class Goal:
    """What meeting the budget means for one task: its metric, direction and texts (edgeport.tasks) at a threshold."""

    task: str
    metric: str  # the task's budget metric: drop_pp | cosine | snr_db
    threshold: float

    def meets(self, value: float) -> bool:
        return get_task(self.task).meets(value, self.threshold)

    def better(self, a: float, b: float) -> bool:
        return get_task(self.task).better(a, b)

    def describe(self) -> str:
        return get_task(self.task).describe(self.threshold, long=True)


def goal(task: str, budget: Any) -> Goal:
    """``budget``: an edgeport.tasks.Budget, a dict ({max_drop_pp | min_cosine | min_snr_db: value}) or a number
    (the task's own threshold)."""
    t = get_task(task)
    k = t.budget_field
    if isinstance(budget, (int, float)):
        v = float(budget)
    elif isinstance(budget, dict):
        if k not in budget:
            raise InputError(f"a {task} model's budget is {k} (got {', '.join(budget) or 'nothing'})")
        v = float(budget[k])
    else:
        v = float(budget.threshold(task))
    return Goal(task, t.metric, v)


def score(g: Goal, ref: dict[str, np.ndarray], got: dict[str, np.ndarray], y: np.ndarray | None) -> dict:
    """The budget metric (and companions) of ``got`` against the float outputs ``ref`` on the budget rows."""
    from edgeport.metrics import cosine_rows, failing_flags, output_flags, snr_db

    name = next(iter(ref))
    r = np.asarray(ref[name]).reshape(len(ref[name]), -1)
    q = np.asarray(got[name]).reshape(len(got[name]), -1)
    out: dict = {}
    if get_task(g.task).labels:
        agree = float((r.argmax(1) == q.argmax(1)).mean())
        out["agreement"] = round(agree, 6)
        if y is not None:
            fa, qa = float((r.argmax(1) == y).mean()), float((q.argmax(1) == y).mean())
            out.update(float_accuracy=round(fa, 6), accuracy=round(qa, 6), drop_pp=round(100 * (fa - qa), 4))
        else:  # no labels: disagreement with the float model bounds the accuracy drop from above
            out["drop_pp"] = round(100 * (1 - agree), 4)
            out["drop_from"] = "disagreement with float (no labels)"
    out["cosine"] = round(float(cosine_rows(r, q).mean()), 6)
    s = snr_db(r, q)
    out["snr_db"] = round(s, 3) if np.isfinite(s) else 999.0
    out["value"] = out[g.metric]
    out["flags"] = output_flags(r, q)
    # outputs that are zero, NaN or off-scale never meet a budget, whatever the metric says
    out["meets"] = g.meets(out["value"]) and not failing_flags(out["flags"])
    return out


class SearchLog(list):
    """The search's candidates, in order (the manifest keeps them); each one is also a progress line, since a
    transformer's search takes minutes."""

    def __init__(self, g: Goal, what: str):
        super().__init__()
        self.g, self.what, self.t0 = g, what, time.perf_counter()
        _log(f"{what}: budget {g.describe()}; trying plain int8 first")

    def append(self, e: dict) -> None:
        super().append(e)
        how = [f"{e['equalization']} equalization"] if e.get("equalization") not in (None, "none") else []
        if e.get("policy"):
            how.append(e["policy"])
        n = len(e.get("float_layers") or [])
        if n or not e.get("policy"):
            how.append(f"{n} layer(s) float" if n else "every layer int8")
        if e.get("runtime"):
            how.append(f"measured with {e['runtime']}")
        _log(f"{self.what}: {', '.join(how)}: {self.g.metric} {e['value']:.4g}"
             f" {'meets' if e['meets'] else 'misses'} the budget ({time.perf_counter() - self.t0:.0f}s)")


def split_feeds(budget_feeds: dict[str, np.ndarray], names: list[str]) -> tuple[dict, np.ndarray | None]:
    missing = [n for n in names if n not in budget_feeds]
    if missing:
        raise InputError(f"budget data lacks input(s) {', '.join(missing)}; give one array per input (and y for labels)")
    y = budget_feeds.get("y")
    return {n: np.asarray(budget_feeds[n]) for n in names}, (None if y is None else np.asarray(y).astype(np.int64))


@dataclass
class BudgetResult:
    """What a budgeted conversion produced: the artifact's bytes (``data``; .tflite) or the lowered ExecuTorch
    program (``program``; .pte, with ``delegation``), and the manifest's ``quantization`` dict (``facts``)."""

    facts: dict
    data: bytes | None = None
    program: Any = None
    delegation: dict | None = None
    exported: Any = None


# ------------------------------------------------------------------------------------------------ equalization
def _equalize(module, example: tuple, calib: list[tuple], methods: list[str]) -> dict:
    """Apply ``methods`` (in order: batchnorm-fold, cle, smoothquant) to ``module`` in place. -> facts."""
    from . import equalize as eq

    facts: dict = {"applied": []}
    if "batchnorm-fold" in methods:
        folded = eq.fold_batchnorm_(module, example)
        if folded:
            facts["applied"].append("batchnorm-fold")
            facts["batchnorm_folded"] = folded
    if "cle" in methods:
        f = eq.cross_layer_equalize_(module, example)
        if f["pairs"]:
            facts["applied"].append("cle")
            facts["cle"] = f
    if "smoothquant" in methods:
        f = eq.smooth_quant_(module, calib[:32])
        if f["linears"]:
            facts["applied"].append("smoothquant")
            facts["smoothquant"] = f
    return facts


def equalized_module(module, example: tuple, calib: list[tuple], equalization: dict | None):
    """A deep copy of ``module`` with the equalization a manifest records re-applied (deterministic)."""
    m = copy.deepcopy(module).eval()
    if equalization and equalization.get("applied"):
        _equalize(m, example, calib, list(equalization["applied"]))
    return m


def _has_embeddings(module) -> bool:
    import torch

    return any(isinstance(m, torch.nn.Embedding) for m in module.modules())


# ------------------------------------------------------------------------------------------------ PT2E (.pte)
def _filter(float_layers: set[str]) -> Callable:
    from .equalize import module_path_fqns

    def keep(n) -> bool:
        if not float_layers:
            return True
        return not any(f in float_layers for f in module_path_fqns(n))

    return keep


class _Prepared:
    """One export + prepare_pt2e of a module (all layers int8, or with ``float_layers`` left out by the quantizer's
    filter), calibrated once. Observer statistics do not depend on which layers are quantized (a prepared model
    computes in float), so candidates reuse them: ``without(layers)`` removes the observers around those layers
    (fast, for the search), ``copy_stats_to`` fills a freshly prepared model's observers (exact, for the final)."""

    def __init__(self, module, example: tuple, float_layers=(), dynamic: bool = False):
        import torch
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        from .pt2e import float_only, quantize_embeddings_

        self.embeddings = _has_embeddings(module)
        if self.embeddings:
            module = quantize_embeddings_(copy.deepcopy(module), 8)
        self.example, self.dynamic = example, dynamic
        self.ep = torch.export.export(module, example, strict=False)
        q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
        q.set_filter_function(_filter(set(float_layers)))
        self.prepared = prepare_pt2e(self.ep.module(), float_only(q))
        self.samples = 0

    def calibrate(self, calib: list[tuple]) -> "_Prepared":
        import torch

        with torch.no_grad():
            for b in (calib if not self.dynamic else [self.example]):
                self.prepared(*b)
        self.samples = len(calib)
        return self

    def _observers(self, gm) -> dict:
        return {n.name: n for n in gm.graph.nodes if n.op == "call_module" and "activation_post_process" in str(n.target)}

    def copy_stats_to(self, other: "_Prepared") -> bool:
        by_input = {}
        for n in self._observers(self.prepared).values():
            by_input.setdefault(n.args[0].name, self.prepared.get_submodule(n.target))
        for n in self._observers(other.prepared).values():
            src = by_input.get(n.args[0].name)
            if src is None:
                return False
            other.prepared.get_submodule(n.target).load_state_dict(src.state_dict())
        other.samples = self.samples
        return True

    def without(self, float_layers) -> Any:
        """A copy of the calibrated prepared model with the observers around ``float_layers`` removed."""
        from .equalize import module_path_fqns

        gm = copy.deepcopy(self.prepared)
        fl = set(float_layers)
        if not fl:
            return gm
        obs = self._observers(gm)

        def is_float(n) -> bool:
            return n.op == "call_function" and any(f in fl for f in module_path_fqns(n))

        # Drop what the quantizer's filter would not have annotated: an observer whose consumers are all in float
        # layers, and whose producer is a float layer's op or no op at all (an input, a weight).
        drop = set()
        for name, n in obs.items():
            users = list(n.users)
            prod = n.args[0]
            if users and all(is_float(u) for u in users) and (prod.op != "call_function" or is_float(prod)):
                drop.add(name)
            elif prod.op == "call_function" and is_float(prod) and users and all(
                    is_float(u) or u.op == "output" for u in users):
                drop.add(name)
        for name in drop:
            node = obs[name]
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
        gm.graph.lint()
        gm.recompile()
        return gm

    def convert(self, gm=None):
        """(converted fake-quant GraphModule, facts); ``gm``: a prepared copy (default: a copy of ours)."""
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        from .pt2e import drop_saturated_observers

        gm = copy.deepcopy(self.prepared) if gm is None else gm
        dropped = drop_saturated_observers(gm) if not self.dynamic else []
        converted = convert_pt2e(gm, fold_quantize=True)
        try:
            from torchao.quantization.pt2e import move_exported_model_to_eval

            move_exported_model_to_eval(converted)
        except ImportError:
            pass
        return converted, {"scheme": "PT2E", "calibration_samples": self.samples, "kept_float_saturated": dropped}

    def float_module(self):
        return self.ep.module()


def _pt2e(module, example: tuple, calib: list[tuple], *, float_layers=(), dynamic: bool = False, stats=None):
    """export -> (float GraphModule, fake-quant converted GraphModule, facts); modules in ``float_layers`` stay
    float (the quantizer's filter). ``stats``: a calibrated :class:`_Prepared` of the same module to take the
    observer statistics from instead of calibrating again."""
    p = _Prepared(module, example, float_layers, dynamic)
    if stats is None or not stats.copy_stats_to(p):
        p.calibrate(calib)
    conv, facts = p.convert()
    return p.float_module(), conv, facts, p


def pt2e_graphs(src, calib: list[tuple], *, dynamic: bool = False, equalization: dict | None = None,
                float_layers=()) -> tuple:
    """(float GraphModule, PT2E fake-quant GraphModule) for a torch Source, as the budgeted converter makes them."""
    example = tuple(t[:1] for t in calib[0]) if calib else None
    m = equalized_module(src.torch_module(), example, calib, equalization)
    smooth = ((equalization or {}).get("smoothquant") or {}).get("float_scales", [])
    f, q, _, _ = _pt2e(m, example, calib, float_layers=set(float_layers) | set(smooth), dynamic=dynamic)
    return f, q


def calibration_batches_for(m, src) -> list[tuple]:
    """The calibration rows a manifest records (``calibration.source`` and ``samples``), as torch tuples."""
    from edgeport import data as dat

    cal = m.calibration or {}
    spec = str(cal.get("source") or m.source.get("default_data") or "")
    if not spec:
        raise InputError(f"{m.name}: the manifest names no calibration data; re-convert it with --calib")
    spec = spec[:-len(":train")] if spec.endswith(":train") else spec
    sig = type(m.sig)(tuple(s.with_(binding=None, quantization=None) for s in m.sig.inputs), ())
    probe = (m.probe or {}).get("data")
    data = probe if probe and not dat.is_named(probe) and probe != spec else None
    cal_feeds, _, _ = dat.calibration_and_probe(sig, m.preprocessing, calib=spec, data=data, default_data=None,
                                                need_calib=True, n_calib=int(cal.get("samples") or 200), root=m.folder)
    return torch_batches(cal_feeds, [s.name for s in sig.inputs])


def torch_batches(feeds: dict[str, np.ndarray], names: list[str]) -> list[tuple]:
    n = len(next(iter(feeds.values())))
    return [tuple(_tensor(feeds[k][i:i + 1]) for k in names) for i in range(n)]


def _tensor(a):
    """A torch tensor with standard strides (numpy may give size-1 axes stride 0, which ExecuTorch refuses)."""
    import torch

    a = np.asarray(a)
    return torch.from_numpy(np.array(a, order="C", copy=True)) if a.ndim else torch.tensor(a)


def _fresh(t):
    return t.new_empty(t.shape).copy_(t)


def _run_gm(gm, batches: list[tuple], out_names: list[str]) -> dict[str, np.ndarray]:
    import torch

    from edgeport.sources import flatten_outputs

    outs: dict[str, list] = {}
    with torch.no_grad():
        for b in batches:
            res = flatten_outputs(gm(*b))
            for i, (k, v) in enumerate(res.items()):
                outs.setdefault(out_names[i] if i < len(out_names) else k, []).append(np.asarray(v, np.float32))
    return {k: np.concatenate(v) for k, v in outs.items()}


def _candidates(rows: list[dict], module) -> list[str]:
    """Layers worth keeping float, most sensitive first: rows naming a module with weights or a compute op."""
    names = dict(module.named_modules())
    out = []
    for r in rows:
        lay = r["layer"]
        sub = names.get(lay)
        has_w = sub is not None and any(True for _ in sub.parameters(recurse=False))
        if (has_w or r["op"] in _COMPUTE_OPS) and lay not in out and lay != "(root)":
            out.append(lay)
    return out


def prefix_search(order: list[str], evaluate: Callable[[list[str]], dict], g: Goal, log: list) -> tuple[int, dict] | None:
    """Smallest k (within an eighth of it) such that the first k of ``order`` kept float meets the goal (1, 2, 4,
    ... then bisect)."""
    results: dict[int, dict] = {}

    def ev(k):
        if k not in results:
            results[k] = evaluate(order[:k])
            log.append({"float_layers": order[:k], **{x: results[k][x] for x in ("value", "meets")}})
        return results[k]

    lo, k = 0, 1
    n = len(order)
    while k <= n:
        if ev(k)["meets"]:
            break
        lo = k
        k = min(n, 2 * k) if k < n else n + 1
    if k > n:
        return None
    hi = k
    # Bisect down to one layer, or to an eighth of the count for long lists (a transformer's 60 layers: 8 more
    # layers float instead of 4 more candidates, each a fake-quant pass).
    while hi - lo > max(1, hi // 8):
        mid = (lo + hi) // 2
        if ev(mid)["meets"]:
            hi = mid
        else:
            lo = mid
    return hi, results[hi]


def give_back(chosen: list, weight_bytes: Callable[[Any], int], evaluate: Callable[[list], dict], g: Goal,
               log: list, tries: int = 4, min_share: float = 0.02) -> tuple[list, dict | None]:
    """After the prefix search: the chosen float layers that hold the most weight bytes (at least ``min_share`` of
    all of them), biggest first, are tried back in int8 one at a time (at most ``tries``), and stay int8 when the
    budget still holds. The ranking orders layers by the SNR they lose, not by their bytes: a transformer's
    embedding table can rank first and alone hold a third of the model. -> (the float layers, the last result that
    met the budget, or None when nothing came back)."""
    sizes = {i: weight_bytes(c) for i, c in enumerate(chosen)}
    total = sum(sizes.values()) or 1
    keep, last = list(range(len(chosen))), None
    for i in sorted((i for i in sizes if sizes[i] >= min_share * total), key=lambda i: -sizes[i])[:tries]:
        trial = [chosen[j] for j in keep if j != i]
        r = evaluate(trial)
        log.append({"float_layers": [c if isinstance(c, str) else c[0] for c in trial], "value": r["value"],
                    "meets": r["meets"], "policy": "one big layer back in int8"})
        if r["meets"]:
            keep.remove(i)
            last = r
    return [chosen[j] for j in keep], last


def search_pte(module, example: tuple, calib: list[tuple], budget_feeds: dict[str, np.ndarray], *, task: str,
               budget: Any, input_names: list[str], output_names: list[str], lower: Callable, run: Callable,
               sensitivity_samples: int = 16, equalize: bool = True, verify: bool = True) -> BudgetResult:
    """The budget search for ExecuTorch (see the module docstring). ``module``: the float nn.Module; ``example``:
    batch-1 torch tuple; ``calib``: calibration batches (torch tuples); ``budget_feeds``: {input: (N, ...)} plus
    optional labels ``y``. The .pte target supplies its own lowering and runner (converters/pte/budget.py):
    ``lower(exported_program, embeddings) -> (program, delegation)`` and ``run(program, feeds) -> (outputs, bytes)``."""
    import torch

    threads = torch.get_num_threads()
    # Observers and fake-quant ops on batch-1 tensors: a small CNN's run ~25x faster on one thread (waking a second
    # thread costs more than its tiny ops), a transformer's ~1.6x faster on every core. Time both on the float model.
    torch.set_num_threads(fastest_threads(lambda: module(*example)))
    try:
        return _search_pte(module, example, calib, budget_feeds, task=task, budget=budget, input_names=input_names,
                           output_names=output_names, sensitivity_samples=sensitivity_samples, equalize=equalize,
                           verify=verify, lower=lower, run=run)
    finally:
        torch.set_num_threads(threads)


def fastest_threads(fn, reps: int = 3) -> int:
    """1 or every core (torch's intra-op threads), whichever runs ``fn`` faster (best of ``reps`` after a warm-up)."""
    import torch

    n = torch.get_num_threads()
    if n <= 1:
        return 1
    best = {}
    with torch.no_grad():
        for t in (1, n):
            torch.set_num_threads(t)
            fn()
            best[t] = min(_timed(fn) for _ in range(reps))
    torch.set_num_threads(n)
    return min(best, key=best.get)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _search_pte(module, example, calib, budget_feeds, *, task, budget, input_names, output_names,
                sensitivity_samples, equalize, verify, lower, run) -> BudgetResult:
    from edgeport.quantization.layers import pt2e_layer_rows

    t0 = time.perf_counter()
    g = goal(task, budget)
    example = tuple(_fresh(t) for t in example)
    calib = [tuple(_fresh(t) for t in b) for b in calib]
    feeds, y = split_feeds(budget_feeds, input_names)
    bb = torch_batches(feeds, input_names)
    # Candidates are scored on the fake-quant graph in Python, one row at a time. An accuracy drop needs every row
    # (one row of 360 is 0.28 pp); a mean cosine or SNR settles on fewer, so a transformer's candidates are screened
    # on at most SCREEN_ROWS rows spread over the set. The chosen artifact is judged on every row with ExecuTorch.
    if g.metric == "drop_pp" or len(bb) <= SCREEN_ROWS:
        screen, screen_y = bb, y
    else:
        pick = np.linspace(0, len(bb) - 1, SCREEN_ROWS).round().astype(int)
        screen, screen_y = [bb[i] for i in pick], None if y is None else y[pick]
    base = copy.deepcopy(module).eval()
    ref = _run_gm(base, screen, output_names)
    ref_all = ref if screen is bb else None
    log = SearchLog(g, "int8 .pte")

    def variant(m, eqf) -> tuple:
        smooth = (eqf.get("smoothquant") or {}).get("float_scales", [])
        return _Prepared(m, example, smooth).calibrate(calib), smooth

    def evaluate(prep: _Prepared, float_layers) -> dict:
        conv, _ = prep.convert(prep.without(float_layers))
        return score(g, ref, _run_gm(conv, screen, output_names), screen_y)

    noeq = {"applied": []}
    prep, _ = variant(base, noeq)
    plain = evaluate(prep, [])
    log.append({"equalization": "none", "float_layers": [], "value": plain["value"], "meets": plain["meets"]})
    best = (base, noeq, prep, plain)
    if not plain["meets"] and equalize:
        m = copy.deepcopy(module).eval()
        eqf = _equalize(m, example, calib, ["batchnorm-fold", "cle", "smoothquant"])
        if eqf["applied"]:
            eprep, _ = variant(m, eqf)
            res = evaluate(eprep, [])
            log.append({"equalization": "+".join(eqf["applied"]), "float_layers": [], "value": res["value"],
                        "meets": res["meets"]})
            if res["meets"] or g.better(res["value"], plain["value"]):
                best = (m, eqf, eprep, res)
    model, eqf, prep, res = best
    smooth = (eqf.get("smoothquant") or {}).get("float_scales", [])
    float_layers: list[str] = []
    order: list[str] = []

    def ranking() -> list[str]:
        conv, _ = prep.convert()
        return _candidates(pt2e_layer_rows(prep.float_module(), conv, bb[:sensitivity_samples]), model)

    if not res["meets"]:
        _log("int8 .pte: ranking layers by the SNR they lose ...")
        order = ranking()
        found = prefix_search(order, lambda fl: evaluate(prep, fl), g, log)
        if found is None:
            raise budget_error(g, log, t0)
        k, res = found
        float_layers = order[:k]
        mods = dict(model.named_modules())
        float_layers, back = give_back(
            float_layers, lambda lay: sum(p.numel() * p.element_size() for p in mods[lay].parameters()) if lay in mods else 0,
            lambda fl: evaluate(prep, fl), g, log)
        res = back or res
    # The chosen candidate, prepared with the quantizer's filter (calibration statistics copied), lowered and
    # measured with the real runtime; the next layer is added if it misses.
    while True:
        final = _Prepared(model, example, set(float_layers) | set(smooth))
        if not prep.copy_stats_to(final):
            final.calibrate(calib)
        conv, pfacts = final.convert()
        import torch

        exported = torch.export.export(conv, example, strict=False)
        program, delegation = lower(exported, final.embeddings)
        if not verify:
            measured, size = res, None
            break
        got, size = run(program, feeds)
        if ref_all is None:
            ref_all = _run_gm(base, bb, output_names)
        measured = score(g, ref_all, got, y)
        log.append({"float_layers": list(float_layers), "value": measured["value"], "meets": measured["meets"],
                    "runtime": "executorch"})
        if measured["meets"]:
            break
        order = order or ranking()
        rest = [o for o in order if o not in float_layers]
        if not rest:
            raise budget_error(g, log, t0)
        float_layers.append(rest[0])
    facts = {**pfacts, "activations": "static int8 (per-tensor, histogram-calibrated)",
             "weights": "int8 per channel, symmetric",
             "budget": {"metric": g.metric, "threshold": g.threshold, "rows": int(len(next(iter(feeds.values())))),
                        "candidates_scored_on_rows": len(screen)},
             "equalization": eqf if eqf["applied"] else None, "float_layers": list(float_layers),
             "measured": {k: v for k, v in measured.items() if k != "meets"}, "plain_int8": plain["value"],
             "measured_by": "executorch.runtime" if verify else "PT2E fake-quant (Python)",
             "search": list(log), "search_seconds": round(time.perf_counter() - t0, 2)}
    if size is not None:
        facts["bytes"] = size
    return BudgetResult(facts=facts, program=program, delegation=delegation, exported=exported)


def budget_error(g: Goal, log: list, t0: float) -> QuantizationBudgetError:
    vals = [e for e in log if "value" in e]
    best = None
    for e in vals:
        if best is None or g.better(e["value"], best["value"]):
            best = e
    where = "" if best is None else (f"; best reached: {g.metric} {best['value']:g} with "
                                     f"{len(best.get('float_layers') or [])} layer(s) float"
                                     + (f" and {best['equalization']} equalization" if best.get("equalization") not in (None, "none") else ""))
    return QuantizationBudgetError(f"int8 could not meet the budget ({g.describe()}) after {len(vals)} candidate(s) in"
                                   f" {time.perf_counter() - t0:.0f}s{where}; loosen the budget or use fp16/dynamic-int8")


def budgeted_int8_pte(job, budget, budget_feeds: dict[str, np.ndarray], *, lower: Callable, run: Callable,
                      **kw) -> BudgetResult:
    """For the .pte converter: the budget search on a converters Job (its source, calibration rows and example).
    ``.program`` is the lowered ExecuTorch program to write, ``.delegation`` its counts, ``.facts`` the manifest's
    ``quantization``."""
    if job.calib is None:
        raise InputError(f"{job.name}: a budgeted int8 needs calibration rows (--calib or the model's default set)")
    names = job.sig.input_names
    calib = [tuple(_tensor(r[n]) for n in names) for r in job.calib_rows()]
    return search_pte(job.source.torch_module(), job.example_torch(), calib, budget_feeds, task=job.source.task,
                      budget=budget, input_names=list(names), output_names=list(job.sig.output_names), lower=lower,
                      run=run, **kw)


# ------------------------------------------------------------------------------------------------ TFLite
def float_tflite(src, equalization: dict | None = None, calib: list[tuple] | None = None,
                 example: dict | None = None) -> bytes:
    """The float .tflite of a Source through its official converter (TFLiteConverter for Keras, litert-torch for
    torch), after re-applying a recorded equalization (torch)."""
    from edgeport.config import ConvertOptions
    from edgeport.job import Job, cleanup

    ex = example or src.example()
    if src.framework == "torch" and equalization and equalization.get("applied"):
        names = src.signature.input_names
        ext = tuple(_tensor(ex[n]) for n in names)
        src = dataclasses.replace(src, model=equalized_module(src.torch_module(), ext, calib or [ext], equalization))
    conv = _tflite_converter(src.framework)
    with tempfile.TemporaryDirectory(prefix="edgeport-float-tflite-") as d:
        work = Path(d) / "work"
        work.mkdir()
        job = Job(src, "fp32", work, "float", None, ConvertOptions(), ex, {})
        try:
            produced = conv(job)
            return (work / produced.entry).read_bytes()
        finally:
            cleanup(job.cache)


def _tflite_converter(framework: str):
    from edgeport.registry import get_converter

    return get_converter(framework, "tflite").fn


def _aeq_quantize(float_bytes: bytes, calib_result, excluded_scopes: list[str]) -> bytes:
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager
    from ai_edge_quantizer import quantizer as aeq

    rm = recipe_manager.RecipeManager()
    rm.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                         weight_num_bits=8, algorithm_key=algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    if excluded_scopes:  # one rule for all of them: ai-edge-quantizer matches every rule against every op
        rm.add_quantization_config(regex="^(" + "|".join(map(re.escape, dict.fromkeys(excluded_scopes))) + ")$",
                                   operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                   algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    q = aeq.Quantizer(bytes(float_bytes))
    q.load_quantization_recipe(rm.get_quantization_recipe())
    return bytes(q.quantize(calib_result, enable_progress_report=False).quantized_model)


def _aeq_calibrate(float_bytes: bytes, calib: list[dict], key: str):
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager
    from ai_edge_quantizer import quantizer as aeq

    rm = recipe_manager.RecipeManager()
    rm.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                         weight_num_bits=8, algorithm_key=algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    q = aeq.Quantizer(bytes(float_bytes))
    q.load_quantization_recipe(rm.get_quantization_recipe())
    return q.calibrate({key: list(calib)}, num_threads=1)


def _tflite_candidates(rows: list[dict], ops_of: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """(layer, [op scopes of every op of that layer]) most sensitive first, from inspect rows on the .tflite; then
    the layers no row could measure (their outputs renamed or fused in the quantized model), so that keeping every
    candidate float is the float model."""
    ranked = [(r["layer"], ops_of.get(r["layer"]) or [r["tensor"] + ";"]) for r in rows]
    seen = {lay for lay, _ in ranked}
    return ranked + [(lay, scopes) for lay, scopes in ops_of.items() if lay not in seen]


def _constants_by_scope(float_bytes: bytes) -> dict[str, list[tuple[int, int]]]:
    """{op scope: [(elements, bytes) of each constant input (weights, biases, scalars)]} of a float .tflite."""
    from edgeport.quantization.layers import TFLRun

    run = TFLRun(float_bytes)
    produced = {i for op in run.ops for i in op["outputs"]}
    graph_in = {d["index"] for d in run.inputs.values()}
    out = {}
    for op in run.ops:
        consts = [run.by_index[i] for i in op["inputs"]
                  if i >= 0 and i not in produced and i not in graph_in and i in run.by_index]
        out[run.op_scope(op)] = [(n := int(np.prod(d["shape"])), n * np.dtype(d["dtype"]).itemsize) for d in consts]
    return out


def _weightless(consts: dict[str, list[tuple[int, int]]], min_weight: int = 64) -> list[str]:
    """Op scopes that take no weight (no constant input of ``min_weight`` elements or more: a scalar such as
    LayerNorm's epsilon is not a weight)."""
    return [scope for scope, cs in consts.items() if not any(n >= min_weight for n, _ in cs)]


def search_tflite(src, calib_feeds: dict[str, np.ndarray], budget_feeds: dict[str, np.ndarray], *, budget: Any,
                  run: Callable, task: str | None = None, sensitivity_samples: int = 16,
                  equalize: bool = True) -> BudgetResult:
    """The budget search for .tflite (Keras or torch Source): float .tflite -> ai-edge-quantizer static int8,
    per-op exclusions; every candidate measured with LiteRT through the target's own runner,
    ``run(tflite_bytes, feeds) -> outputs`` (converters/tflite/budget.py)."""
    from edgeport.job import bind_keys
    from edgeport.quantization.layers import LayerNamer, TFLRun, tflite_layer_rows

    t0 = time.perf_counter()
    task = task or src.task
    g = goal(task, budget)
    names = list(src.signature.input_names)
    feeds, y = split_feeds(budget_feeds, names)
    calib_feeds = {n: np.asarray(calib_feeds[n]) for n in names}
    ncal = len(next(iter(calib_feeds.values())))
    log = SearchLog(g, "int8 .tflite")
    torch_calib = torch_batches(calib_feeds, names) if src.framework == "torch" else None
    example = {n: calib_feeds[n][:1] for n in names}

    def prepare(eq: dict | None):
        fb = float_tflite(src, eq, torch_calib, example)
        run = TFLRun(fb)
        keys = bind_keys(names, list(run.inputs))
        # integer inputs in the float .tflite's own type (litert-torch makes int64 token ids int32)
        dt = {k: np.dtype(run.inputs[k]["dtype"]) for k in keys}
        rows_cal = [{k: calib_feeds[n][i:i + 1].astype(dt[k]) if dt[k].kind in "iu" else calib_feeds[n][i:i + 1]
                     for n, k in zip(names, keys)} for i in range(ncal)]
        return fb, _aeq_calibrate(fb, rows_cal, run.key), keys

    fb, cres, keys = prepare(None)
    ref = run(fb, feeds)
    plain_bytes = _aeq_quantize(fb, cres, [])
    plain = score(g, ref, run(plain_bytes, feeds), y)
    log.append({"equalization": "none", "float_layers": [], "value": plain["value"], "meets": plain["meets"]})
    best = (None, fb, cres, keys, plain, plain_bytes)
    if not plain["meets"] and equalize and src.framework == "torch":
        m = copy.deepcopy(src.torch_module()).eval()
        ext = tuple(t[:1] for t in torch_calib[0])
        eqf = _equalize(m, ext, torch_calib, ["batchnorm-fold", "cle"])  # SmoothQuant's float multiply: .pte only
        if eqf["applied"]:
            efb, ecres, ekeys = prepare(eqf)
            eb = _aeq_quantize(efb, ecres, [])
            res = score(g, ref, run(eb, feeds), y)
            log.append({"equalization": "+".join(eqf["applied"]), "float_layers": [], "value": res["value"],
                        "meets": res["meets"]})
            if res["meets"] or g.better(res["value"], plain["value"]):
                best = (eqf, efb, ecres, ekeys, res, eb)
    eqf, fb, cres, keys, res, qbytes = best
    float_layers: list[str] = []
    excluded: list[str] = []
    base: list[str] = []  # op scopes kept float before any layer is
    consts = _constants_by_scope(fb) if not res["meets"] else {}
    if not res["meets"]:
        # ai-edge-quantizer quantizes every op, a transformer's LayerNorm arithmetic (MEAN, RSQRT, ...), softmax and
        # attention-mask ops included, which int8 cannot carry. Keeping the ops without weights float costs no bytes
        # (every weight stays int8): tried before any layer is kept float, and kept when it helps.
        light = _weightless(consts)
        if light:
            lb = _aeq_quantize(fb, cres, light)
            r2 = score(g, ref, run(lb, feeds), y)
            log.append({"policy": f"ops without weights float ({len(light)} ops)", "float_layers": [],
                        "value": r2["value"], "meets": r2["meets"]})
            if r2["meets"] or g.better(r2["value"], res["value"]):
                base, res, qbytes = light, r2, lb
    if not res["meets"]:
        samples = [{k: feeds[n][i:i + 1] for n, k in zip(names, keys)}
                   for i in range(min(sensitivity_samples, len(next(iter(feeds.values())))))]
        _log("int8 .tflite: ranking layers by the SNR they lose ...")
        ops_of: dict[str, list[str]] = {}
        rows = tflite_layer_rows(fb, qbytes, samples, LayerNamer(src), ops_of=ops_of)
        order = _tflite_candidates(rows, ops_of)

        def evaluate(prefix):
            scopes = list(dict.fromkeys(base + [s for _, ss in prefix for s in ss]))
            return score(g, ref, run(_aeq_quantize(fb, cres, scopes), feeds), y)

        found = prefix_search(order, evaluate, g, log)
        if found is None:
            raise budget_error(g, log, t0)
        k, res = found
        chosen, back = give_back(order[:k], lambda c: sum(b for sc in c[1] for _, b in consts.get(sc, ())), evaluate,
                                  g, log)
        res = back or res
        float_layers = [lay for lay, _ in chosen]
        excluded = list(dict.fromkeys(base + [s for _, ss in chosen for s in ss]))
        qbytes = _aeq_quantize(fb, cres, excluded)
    elif base:
        excluded = base
    facts = {"scheme": "ai-edge-quantizer static int8 (MIN_MAX_UNIFORM_QUANT)", "calibration_samples": ncal,
             "activations": "static int8 (per-tensor, asymmetric)", "weights": "int8 per channel, symmetric",
             "budget": {"metric": g.metric, "threshold": g.threshold, "rows": int(len(next(iter(feeds.values()))))},
             "equalization": eqf, "float_layers": float_layers, "float_ops": excluded,
             "policy": "ops without weights kept float" if base else None,
             "measured": {k: v for k, v in res.items() if k != "meets"}, "plain_int8": plain["value"],
             "measured_by": "ai-edge-litert", "search": list(log), "search_seconds": round(time.perf_counter() - t0, 2),
             "bytes": len(qbytes), "float_bytes": len(fb)}
    return BudgetResult(facts=facts, data=qbytes)


def budgeted_int8_tflite(job, budget, budget_feeds: dict[str, np.ndarray], *, run: Callable, **kw) -> BudgetResult:
    """For the .tflite converters (Keras and torch): the budget search on a converters Job. ``.data`` is the
    .tflite to write, ``.facts`` the manifest's ``quantization``."""
    if job.calib is None:
        raise InputError(f"{job.name}: a budgeted int8 needs calibration rows (--calib or the model's default set)")
    return search_tflite(job.source, job.calib, budget_feeds, budget=budget, task=job.source.task, run=run, **kw)
