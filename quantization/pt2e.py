"""PT2E post-training quantization, shared by the ExecuTorch and litert-torch converters.

Two guards make PT2E safe for real models (token ids, Hugging Face attention masks), for any quantizer:
- :func:`float_only` keeps every quantization annotation off integer and bool tensors (stock HF mask code computes
  indices with ``arange + 0``; XNNPACKQuantizer rewrote the scalar into a float buffer, making the index float);
- :func:`drop_saturated_observers` leaves float any tensor whose calibrated range no int8 grid can hold (HF's
  additive mask ``finfo(float32).min`` shares an observer with the attention scores).
"""

from __future__ import annotations


def calibrate_pt2e(exported, quantizer, *, example: tuple, calib=None, fold_quantize: bool = True,
                   saturation_limit: float | None = 1e6):
    """prepare_pt2e -> run the representative set (or one example for dynamic quantization) -> convert_pt2e.

    ``exported`` is a torch.export.ExportedProgram of the float model; ``example`` a tuple of torch tensors in
    input order; ``calib`` a converters Job whose calibration rows are run (None for dynamic recipes, whose
    activation ranges are computed at run time). Returns (converted GraphModule, facts for the manifest).
    """
    import numpy as np
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(exported.module(), float_only(quantizer))
    if calib is None:
        batches = [example]
    else:
        names = calib.sig.input_names
        batches = [tuple(torch.from_numpy(np.ascontiguousarray(row[n])) for n in names) for row in calib.calib_rows()]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the histogram observers run ~25x faster single-threaded on small batches
    try:
        with torch.no_grad():
            for b in batches:
                prepared(*b)
    finally:
        torch.set_num_threads(threads)
    dropped = drop_saturated_observers(prepared, saturation_limit) if (calib is not None and saturation_limit) else []
    converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
    try:
        from torchao.quantization.pt2e import move_exported_model_to_eval

        move_exported_model_to_eval(converted)
    except ImportError:  # older torchao
        pass
    facts = {"scheme": "PT2E", "calibration_samples": len(batches) if calib is not None else 0,
             "kept_float_saturated": dropped}
    return converted, facts


def float_only(quantizer):
    """``quantizer`` wrapped so that it never annotates an integer or bool tensor."""
    return _make_float_only_quantizer(quantizer)


def _is_float_value(v) -> bool:
    import torch

    if isinstance(v, torch.Tensor):
        return v.dtype.is_floating_point
    if isinstance(v, (list, tuple)):
        return bool(v) and all(_is_float_value(x) for x in v)
    return False


def _node_is_float(n) -> bool:
    return _is_float_value(n.meta.get("val")) if hasattr(n, "meta") else False


def _make_float_only_quantizer(base):
    """Wrap any PT2E Quantizer so it never touches integer/bool tensors.  See FloatOnlyQuantizer."""
    import torch
    from torchao.quantization.pt2e.quantizer import Quantizer

    class FloatOnlyQuantizer(Quantizer):
        """Delegates to `base`, with two guards that make PT2E safe for graphs that compute on integer tensors:

        1. transform_for_annotation: the base may rewrite python-scalar operands into float32 0-d buffers
           (XNNPACKQuantizer's `_convert_scalars_to_attrs` does this for every aten.add/mul.Tensor).  On an
           integer op (`arange(128) + 0` in HF's mask code) that silently promotes int64 -> float32 at run time
           (the fake `meta['val']` still says int64), and the next aten.index fails with
           "tensors used as indices must be long, int, byte or bool tensors".  We undo any such rewrite on nodes
           whose traced output is not floating point.
        2. annotate: after the base annotates, drop every input/output qspec on a non-float tensor, and any
           SharedQuantizationSpec left pointing at a dropped edge/node, so no observer lands on an int tensor.
        """

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def transform_for_annotation(self, model):
            saved = {n: n.args for n in model.graph.nodes if n.op == "call_function" and not _node_is_float(n)}
            model = self.inner.transform_for_annotation(model)
            changed = False
            for n, old_args in saved.items():
                if n.graph is not model.graph or n.args == old_args or len(n.args) != len(old_args):
                    continue
                new_args = list(n.args)
                for i, (old, new) in enumerate(zip(old_args, n.args)):
                    if not isinstance(old, torch.fx.Node) and isinstance(new, torch.fx.Node) and new.op == "get_attr":
                        new_args[i] = old  # restore the python scalar: keeps integer arithmetic integer
                        changed = True
                n.args = tuple(new_args)
            if changed:
                model.graph.eliminate_dead_code()
                model.recompile()
            return model

        def annotate(self, model):
            model = self.inner.annotate(model)
            strip_non_float_annotations(model)
            return model

        def validate(self, model):
            return self.inner.validate(model)

        def __getattr__(self, name):  # set_global, set_module_name, ... reach the base quantizer
            if name == "inner":
                raise AttributeError(name)
            return getattr(self.inner, name)

    return FloatOnlyQuantizer(base)


def strip_non_float_annotations(model) -> int:
    """Remove PT2E quantization annotations on non-float tensors (post-annotation pass, quantizer-agnostic).
    -> number of qspecs removed."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    key = "quantization_annotation"
    removed = 0
    for n in model.graph.nodes:
        a = n.meta.get(key)
        if a is None:
            continue
        for inp in [i for i in a.input_qspec_map if not _node_is_float(i)]:
            del a.input_qspec_map[inp]
            removed += 1
        if a.output_qspec is not None and not _node_is_float(n):
            a.output_qspec = None
            removed += 1

    def target_alive(spec) -> bool:
        eon = spec.edge_or_node
        if isinstance(eon, tuple):  # (producer, consumer) edge
            src, dst = eon
            ca = dst.meta.get(key)
            return ca is not None and src in ca.input_qspec_map
        pa = eon.meta.get(key)
        return pa is not None and pa.output_qspec is not None

    while True:  # shared specs can chain; iterate to a fixed point
        changed = False
        for n in model.graph.nodes:
            a = n.meta.get(key)
            if a is None:
                continue
            for inp, spec in list(a.input_qspec_map.items()):
                if isinstance(spec, SharedQuantizationSpec) and not target_alive(spec):
                    del a.input_qspec_map[inp]
                    removed += 1
                    changed = True
            if isinstance(a.output_qspec, SharedQuantizationSpec) and not target_alive(a.output_qspec):
                a.output_qspec = None
                removed += 1
                changed = True
        if not changed:
            return removed



def drop_saturated_observers(prepared, limit: float = 1e6) -> list[str]:
    """After calibration: remove observers whose calibrated |range| exceeds `limit`, leaving those tensors float.

    Such ranges come from sentinel values, e.g. HF's additive attention mask `where(mask, 0, finfo(float32).min)`
    which XNNPACKQuantizer's `add` pattern quantizes together with the attention scores: range [-3.4e38, ~50],
    int8 scale ~2.7e36, so every real score rounds to 0 and attention becomes uniform (cosine 0.37 -> 0.86 with
    this pass on MiniLM).  No int8 grid can hold such a tensor, so keeping it float is the only sensible choice.
    -> names of the dropped observer nodes."""
    import torch

    dropped = []
    for node in list(prepared.graph.nodes):
        if node.op != "call_module":
            continue
        mod = prepared.get_submodule(node.target)
        lo, hi = getattr(mod, "min_val", None), getattr(mod, "max_val", None)
        if not isinstance(lo, torch.Tensor) or lo.numel() == 0:
            continue
        if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()) or \
                float(torch.maximum(lo.abs().max(), hi.abs().max())) > limit:
            node.replace_all_uses_with(node.args[0])
            prepared.graph.erase_node(node)
            dropped.append(node.name)
    if dropped:
        prepared.graph.lint()
        prepared.recompile()
    return dropped



def quantize_embeddings_(module, bits: int = 8, group_size: int | None = None):
    """In place: weight-only quantize every nn.Embedding with torchao (IntxWeightOnlyConfig, symmetric, per-row or
    per-group).  After export + ExecuTorch's quant-fusion pass it becomes quantized_decomposed.embedding_byte /
    embedding_4bit / embedding_2bit.  -> module."""
    import torch
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import IntxWeightOnlyConfig, MappingType, quantize_

    gran = PerGroup(group_size) if group_size else PerAxis(0)
    for m in module.modules():
        # padding_idx only affects gradients, never the forward value; but aten.embedding(w, idx, padding_idx)
        # does not match ExecuTorch's quant-fusion pattern (embedding(dequantize_affine(...), idx)), leaving an
        # unfusable torchao::dequantize_affine ("Missing out variants") at to_executorch().
        if isinstance(m, torch.nn.Embedding):
            m.padding_idx = None
    quantize_(module, IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=gran,
                                           mapping_type=MappingType.SYMMETRIC),
              lambda m, fqn: isinstance(m, torch.nn.Embedding))
    return module
