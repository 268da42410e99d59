"""Equalizations applied to a float torch module before PT2E (or before litert-torch's float export), so that
per-tensor int8 activations can hold every channel and every layer stays int8.

- :func:`fold_batchnorm_`: Conv2d -> BatchNorm2d pairs folded into the conv (the BN becomes Identity), so that the
  folded conv can be equalized (folding is where outlier channels usually come from).
- :func:`cross_layer_equalize_`: cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight
  Equalization and Bias Correction", ICCV 2019) for chains producer -> [ReLU | max/avg pool | flatten | dropout] ->
  consumer, with producer and consumer Conv2d (groups=1 consumer) or Linear. Output channel i of the producer is
  divided by s_i and the consumer's matching input channel(s) multiplied by s_i, with
  s_i = sqrt(r1_i / r2_i) (r1, r2: the ranges of the producer's row and the consumer's column), which makes both
  ranges sqrt(r1_i * r2_i). Exact for positively homogeneous pass-throughs (ReLU, pooling), so the float function
  is unchanged.
- :func:`smooth_quant_`: SmoothQuant (Xiao et al. 2023) scale migration for nn.Linear inputs with outlier channels
  (transformers): y = (x / s) @ (W * s)^T with s_j = max|x_j|^a / max|W_j|^(1-a), from calibration statistics.
  The 1/s multiply is a :class:`SmoothScale` module placed before the Linear (kept float by the budget search;
  folded into a preceding LayerNorm only when that LayerNorm feeds nothing else, which BERT's post-LN residuals
  never allow).

Pairs are found on the ``torch.export`` graph of the module (so functional code, ``x.flatten(1)`` and Hugging Face
models are handled as written) and weights are changed on the nn.Module itself, so module names stay the source's.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

# aten ops through which a per-channel positive scale passes unchanged (f(s*x) = s*f(x) channel-wise).
_PASS = {"relu", "relu_", "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d", "dropout",
         "dropout_", "clone", "contiguous", "getitem", "alias", "detach", "mean"}
_RESHAPE = {"flatten", "view", "reshape", "_unsafe_view"}


def _op(n) -> str:
    t = n.target
    name = getattr(t, "__name__", str(t))
    return name.split(".")[0]


def module_fqn(node) -> str | None:
    """The fully qualified name of the innermost module a graph node came from ('' for the root, None if unknown)."""
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if not stack:
        return None
    path = list(stack.values())[-1][0]
    return normalize_fqn(path)


def normalize_fqn(path: str) -> str:
    import re

    path = path.replace("L['self']", "").replace("L__self__", "")
    path = re.sub(r"\._modules\['([^']+)'\]", r".\1", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\['([^']+)'\]", r".\1", path)
    return path.strip(".")


def module_path_fqns(node) -> list[str]:
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    return [normalize_fqn(v[0]) for v in (stack or {}).values()]


def _export(module, example: tuple):
    import torch

    return torch.export.export(module, example, strict=False)


def _weight_node_module(node, module, kinds) -> tuple[str, Any] | None:
    """(fqn, module) when ``node`` (aten.conv2d / aten.linear) is the forward of an nn module of ``kinds``."""
    fqn = module_fqn(node)
    if fqn is None:
        return None
    try:
        sub = module.get_submodule(fqn) if fqn else module
    except AttributeError:
        return None
    return (fqn, sub) if isinstance(sub, kinds) else None


def find_pairs(module, example: tuple) -> list[tuple[str, str, int]]:
    """Equalizable (producer fqn, consumer fqn, consumer input columns per producer channel) on the export graph."""
    import torch.nn as nn

    ep = _export(module, example)
    g = ep.graph
    kinds = (nn.Conv2d, nn.Linear)
    pairs = []
    for n in g.nodes:
        if n.op != "call_function" or _op(n) not in ("conv2d", "linear"):
            continue
        prod = _weight_node_module(n, module, kinds)
        if prod is None:
            continue
        pf, pm = prod
        if _grouped(pm):
            continue
        cur, flat = n, 1
        while True:
            users = [u for u in cur.users if u.op != "output"]
            if len(users) != 1 or len(cur.users) != 1:
                break
            u = users[0]
            op = _op(u)
            if op in ("conv2d", "linear"):
                if u.args[0] is not cur:
                    break
                cons = _weight_node_module(u, module, kinds)
                if cons is None:
                    break
                cf, cm = cons
                if _grouped(cm):
                    break
                c_in = cm.in_channels if isinstance(cm, nn.Conv2d) else cm.in_features
                p_out = pm.out_channels if isinstance(pm, nn.Conv2d) else pm.out_features
                if c_in == p_out * flat and cf != pf:
                    pairs.append((pf, cf, flat))
                break
            if op in _PASS:
                if op == "getitem" and u.args[1] != 0:
                    break
                if op == "max_pool2d_with_indices":
                    pass
                if op == "mean" and (len(u.args) < 2 or sorted(int(d) % 4 for d in u.args[1]) != [2, 3]):
                    break
                cur = u
                continue
            if op in _RESHAPE and isinstance(pm, nn.Conv2d):
                shape_in = tuple(cur.meta["val"].shape)
                shape_out = tuple(u.meta["val"].shape)
                if len(shape_in) == 4 and len(shape_out) == 2 and shape_out[1] == shape_in[1] * shape_in[2] * shape_in[3]:
                    flat = shape_in[2] * shape_in[3]
                    cur = u
                    continue
            break
    return pairs


def _rows(w, groups: int = 1):
    """|W| reshaped (out channels, rest): the range of each output channel."""
    return w.detach().abs().reshape(w.shape[0], -1)


def _in_cols(w, flat: int):
    """Max |W| over each input channel of the consumer, with ``flat`` columns per channel (flatten after conv)."""
    a = w.detach().abs()
    if a.dim() == 4:  # conv (out, in, kh, kw)
        return a.transpose(0, 1).reshape(a.shape[1], -1).max(1).values
    # linear (out, in): group columns per producer channel (NCHW flatten: channel-major)
    return a.reshape(a.shape[0], -1, flat).permute(1, 0, 2).reshape(a.shape[1] // flat, -1).max(1).values


def cross_layer_equalize_(module, example: tuple, *, iterations: int = 4, pairs=None) -> dict:
    """In place: equalize every chain found by :func:`find_pairs`. -> facts for the manifest."""
    import torch

    pairs = find_pairs(module, example) if pairs is None else pairs
    if not pairs:
        return {"method": "cross-layer equalization", "pairs": []}
    before = {}
    with torch.no_grad():
        for it in range(iterations):
            for pf, cf, flat in pairs:
                p, c = module.get_submodule(pf), module.get_submodule(cf)
                r1 = _rows(p.weight).max(1).values
                r2 = _in_cols(c.weight, flat)
                if it == 0:
                    before[f"{pf}->{cf}"] = float((r1.max() / r1.clamp_min(1e-12).median()).item())
                ok = (r1 > 1e-12) & (r2 > 1e-12)
                s = torch.where(ok, torch.sqrt(r1.clamp_min(1e-12) / r2.clamp_min(1e-12)), torch.ones_like(r1))
                shape = (-1,) + (1,) * (p.weight.dim() - 1)
                p.weight.div_(s.reshape(shape))
                if p.bias is not None:
                    p.bias.div_(s)
                if c.weight.dim() == 4:
                    c.weight.mul_(s.reshape(1, -1, 1, 1))
                else:
                    c.weight.mul_(s.repeat_interleave(flat).reshape(1, -1))
    after = {}
    for pf, cf, flat in pairs:
        r1 = _rows(module.get_submodule(pf).weight).max(1).values
        after[f"{pf}->{cf}"] = float((r1.max() / r1.clamp_min(1e-12).median()).item())
    return {"method": "cross-layer equalization", "pairs": [f"{a}->{b}" for a, b, _ in pairs],
            "channel_range_ratio_before": {k: round(v, 2) for k, v in before.items()},
            "channel_range_ratio_after": {k: round(v, 2) for k, v in after.items()}}


def fold_batchnorm_(module, example: tuple) -> list[str]:
    """In place: fold each Conv2d -> BatchNorm2d (eval) whose conv output feeds only the BN; the BN becomes
    Identity. -> the folded pairs."""
    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    ep = _export(module, example)
    done = []
    for n in ep.graph.nodes:
        if n.op != "call_function" or _op(n) not in ("_native_batch_norm_legit_no_training", "batch_norm",
                                                      "_native_batch_norm_legit_functional"):
            continue
        src = n.args[0]
        if getattr(src, "op", None) != "call_function" or _op(src) != "conv2d" or len(src.users) != 1:
            continue
        conv = _weight_node_module(src, module, (nn.Conv2d,))
        bn = _weight_node_module(n, module, (nn.BatchNorm2d,))
        if conv is None or bn is None:
            continue
        fused = fuse_conv_bn_eval(conv[1].eval(), bn[1].eval())
        _set_submodule(module, conv[0], fused)
        _set_submodule(module, bn[0], nn.Identity())
        done.append(f"{conv[0]}+{bn[0]}")
    return done


def _set_submodule(root, fqn: str, new) -> None:
    parent, _, name = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


# ------------------------------------------------------------------------------------------------ SmoothQuant
def _smooth_scale_class():
    import torch

    class SmoothScale(torch.nn.Module):
        """x * inv_scale (per input channel, last axis): SmoothQuant's migration, kept float by the quantizer."""

        def __init__(self, inv_scale):
            super().__init__()
            self.register_buffer("inv_scale", inv_scale)

        def forward(self, x):
            return x * self.inv_scale

    class SmoothedLinear(torch.nn.Module):
        """A Linear whose input is first divided by s (``smooth``) and whose weight columns were multiplied by s.
        Keeps the Linear's own name for its parameters (``<name>.linear``)."""

        def __init__(self, linear, inv_scale):
            super().__init__()
            self.smooth = SmoothScale(inv_scale)
            self.linear = linear

        def forward(self, x):
            return self.linear(self.smooth(x))

    return SmoothScale, SmoothedLinear


def linear_input_absmax(module, batches: Iterable[tuple], names: Iterable[str] | None = None) -> dict:
    """Per-input-channel max |x| of every nn.Linear (or those named), over the calibration batches."""
    import torch

    stats: dict = {}
    hooks = []
    wanted = set(names) if names is not None else None
    for fqn, m in module.named_modules():
        if isinstance(m, torch.nn.Linear) and (wanted is None or fqn in wanted):
            def hook(mod, args, fqn=fqn):
                x = args[0].detach()
                if x.dim() < 3:  # (batch, features): a CNN head's flattened pixels, not token activations
                    return
                a = x.abs().reshape(-1, x.shape[-1]).max(0).values
                stats[fqn] = a if fqn not in stats else torch.maximum(stats[fqn], a)
            hooks.append(m.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for b in batches:
                module(*b)
    finally:
        for h in hooks:
            h.remove()
    return stats


def smooth_quant_(module, batches: list[tuple], *, alpha: float = 0.5, min_outlier_ratio: float = 8.0,
                  names: Iterable[str] | None = None) -> dict:
    """In place: SmoothQuant every nn.Linear whose input has outlier channels (max channel range over median
    >= ``min_outlier_ratio``). The Linear at ``name`` becomes ``SmoothedLinear`` (``name.smooth`` then
    ``name.linear``). -> facts (the smoothed linears and their outlier ratios)."""
    import torch

    SmoothedLinear = _SMOOTH[1]
    stats = linear_input_absmax(module, batches, names)
    done = {}
    with torch.no_grad():
        for fqn, amax in stats.items():
            lin = module.get_submodule(fqn)
            amax = amax.clamp_min(1e-5)
            ratio = float(amax.max() / amax.median())
            if ratio < min_outlier_ratio:
                continue
            wmax = lin.weight.detach().abs().max(0).values.clamp_min(1e-5)
            s = (amax.pow(alpha) / wmax.pow(1 - alpha)).clamp(1e-2, 1e4)
            new = copy.deepcopy(lin)
            new.weight.mul_(s.reshape(1, -1))
            _set_submodule(module, fqn, SmoothedLinear(new, (1.0 / s).to(lin.weight.dtype)))
            done[fqn] = round(ratio, 1)
    return {"method": "SmoothQuant", "alpha": alpha, "linears": done,
            "float_scales": [f"{k}.smooth" for k in done]}


def smooth_scale_type():
    """The SmoothScale class (the one :func:`smooth_quant_` inserts), for quantizer filters."""
    return _SMOOTH[0]


_SMOOTH = _smooth_scale_class()


def _grouped(m) -> bool:
    """A grouped (e.g. depthwise) convolution: its channels do not mix, so it cannot take part in equalization."""
    from torch import nn

    return isinstance(m, nn.Conv2d) and m.groups != 1
