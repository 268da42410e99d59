"""Issue 22: answers that look right but are not. Zero, NaN and off-scale outputs are flagged and never pass;
--input names bind to forward() by name; a non-tensor output is one line; each run keeps its own log; one-line
errors carry their cause. Unit tests first (no converter), then real conversions (slow)."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

from edgeport.errors import InputError, one_line
from edgeport.metrics import compare, cosine_rows, output_flags, parity_record, task_metrics, within
from edgeport.report import Budget, Report, Row, render_html, table
from edgeport.testing import QuantizedAccuracyError, assert_quantized_close


# ------------------------------------------------------------------------------------------------ metrics
def test_cosine_of_a_zero_vector_against_a_nonzero_one_is_zero():
    assert cosine_rows(np.ones((2, 4)), np.zeros((2, 4))).tolist() == [0.0, 0.0]  # was [1.0, 1.0]
    assert cosine_rows(np.zeros((2, 4)), np.ones((2, 4))).tolist() == [0.0, 0.0]
    # one zero row among good ones costs that row only
    got = np.array([[1.0, 2.0], [0.0, 0.0]])
    assert cosine_rows(np.array([[1.0, 2.0], [3.0, 4.0]]), got) == pytest.approx([1.0, 0.0])


def test_both_zero_is_one_and_says_so():
    assert cosine_rows(np.zeros((2, 4)), np.zeros((2, 4))).tolist() == [1.0, 1.0]
    c = compare(np.zeros((2, 4)), np.zeros((2, 4)))
    assert c["flags"] == ["float-zero"] and c["cosine_mean"] == 1.0
    assert within("embedding", "int8", c) == []  # recorded, not failing: the artifact does what the float model does


def test_all_zero_outputs_are_flagged_and_fail_every_task():
    ref = np.random.default_rng(0).normal(size=(8, 16))
    c = compare(ref, np.zeros_like(ref))
    assert c["flags"] == ["all-zero"] and c["cosine_mean"] == 0.0 and c["norm_ratio"] == 0.0 and c["snr_db"] == 0.0
    for task in ("classification", "embedding", "regression"):
        fails = within(task, "int8", c)
        assert fails and "outputs all zero" in fails[0], (task, fails)


def test_a_wrong_scale_with_perfect_cosine_is_flagged():
    """An fp16 artifact whose outputs are 1e5 times too large: cosine 1.0, SNR -100 dB, flagged 'scale'."""
    ref = np.random.default_rng(1).normal(size=(4, 10))
    c = compare(ref, 1e5 * ref)
    assert c["cosine_mean"] == pytest.approx(1.0) and c["norm_ratio"] == pytest.approx(1e5) and c["flags"] == ["scale"]
    assert c["snr_db"] < -90
    assert any("norm 1e+05x" in f for f in within("classification", "fp16", c))
    assert compare(ref, 1.01 * ref)["flags"] == [] and compare(ref, 0.6 * ref)["flags"] == []  # no flag for these


@pytest.mark.parametrize("bad,flag", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nan_and_inf_are_flagged(bad, flag):
    ref = np.ones((3, 4))
    got = ref.copy()
    got[1, 2] = bad
    assert flag in output_flags(ref, got)
    assert flag in output_flags(None, got)  # without a float reference too
    assert within("embedding", "fp32", compare(ref, got))


def _zero_row(**kw) -> Row:
    ref = np.random.default_rng(2).normal(size=(16, 32)).astype(np.float32)
    fields = task_metrics("embedding", {"emb": ref}, {"emb": np.zeros_like(ref)}, None, "emb")
    fields.pop("outputs")
    return Row(artifact="m.int8.tflite", target="tflite", recipe="int8", source="m", runtime="ai-edge-litert",
               backend="xnnpack", threads=1, device="local", task="embedding", bytes=1000,
               latency_ms={"p50": 0.1, "p90": 0.1}, **fields, **kw)


def test_a_zero_row_is_flagged_in_the_row_the_table_the_html_and_the_assertion():
    r = _zero_row()
    assert r.flags == ["all-zero"] and r.cosine_mean == 0.0 and r.norm_ratio == 0.0 and r.snr_db == 0.0
    assert not r.within(Budget(min_cosine=0.0))  # even a budget any cosine meets
    rep = Report(rows=[r])
    assert "FLAGGED: outputs all zero" in table(rep) and "norm x" in table(rep)
    assert "FLAGGED: outputs all zero" in render_html(rep)
    with pytest.raises(QuantizedAccuracyError) as e:
        assert_quantized_close(rep, min_cosine=0.0)
    first = str(e.value).splitlines()[0]
    assert "m.int8.tflite over budget: outputs all zero (flagged all-zero)" in first, str(e.value)


def test_old_reports_without_flags_still_read(tmp_path):
    rep = Report(rows=[_zero_row()])
    rep.write(tmp_path)
    d = (tmp_path / "report.json").read_text().replace('"flags"', '"flags_unknown"')
    (tmp_path / "report.json").write_text(d)
    assert Report.read(tmp_path).rows[0].flags is None


def test_parity_and_budget_search_see_the_same_flags():
    from edgeport.quantization.budget import Goal, score

    ref = np.random.default_rng(3).normal(size=(8, 16)).astype(np.float32)
    zero = np.zeros_like(ref)
    rec = parity_record("embedding", "int8", {"emb": ref}, {"emb": zero}, "test")
    assert not rec["within_tolerance"] and "outputs all zero" in rec["failures"][0]
    assert rec["outputs"][0]["flags"] == ["all-zero"]
    # a regression budget of -inf dB is met by any number: the flag alone refuses the candidate
    s = score(Goal("regression", "snr_db", -1e9), {"y": ref}, {"y": zero}, None)
    assert s["flags"] == ["all-zero"] and not s["meets"]
    assert score(Goal("regression", "snr_db", -1e9), {"y": ref}, {"y": ref * 0.999}, None)["meets"]


# ------------------------------------------------------------------------------------------------ one-line causes
def test_one_line_names_the_innermost_cause_of_a_pass_failure():
    """torch's (and ExecuTorch's) pass manager wraps a pass's error in 'An error occurred when running ...'."""
    import torch
    from torch.fx.passes.infra.pass_manager import PassManager

    def ChannelsLastTaggedReshapePass(gm):  # noqa: N802 - named as ExecuTorch's pass, whose failure this mirrors
        raise RuntimeError("required rank 4 tensor to use channels_last format")

    with pytest.raises(Exception) as e:
        PassManager([ChannelsLastTaggedReshapePass])(torch.fx.symbolic_trace(torch.nn.ReLU()))
    line = one_line(e.value)
    assert "'ChannelsLastTaggedReshapePass'" in line and "required rank 4 tensor to use channels_last format" in line
    assert "after the following passes" not in line and "\n" not in line and len(line) <= 300


def test_one_line_keeps_an_onnx_checker_message_past_of_node():
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["z"], ["y"], name="relu1")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(Exception) as e:
        onnx.checker.check_model(helper.make_model(g))
    assert str(e.value).splitlines()[0].rstrip().endswith("of node:")
    line = one_line(e.value)
    assert "input 'z' of node: name: relu1 OpType: Relu is not output of any previous nodes" in line, line


def test_one_line_clips_and_does_not_repeat_a_quoted_cause():
    try:
        try:
            raise ValueError("x" * 1000)
        except ValueError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as e:
        line = one_line(e, 120)
    assert len(line) <= 120 and line.startswith("outer (cause: ValueError: xxx") and line.endswith("...)")
    try:
        try:
            raise KeyError("k")
        except KeyError as inner:
            raise InputError(f"bad: {one_line(inner)}") from inner
    except InputError as e:
        assert one_line(e) == "bad: 'k'"


# ------------------------------------------------------------------------------------------------ logs
def test_each_run_keeps_its_own_log(tmp_path):
    from edgeport.fileio import RunFolder

    kept = []
    for text in ("first run", "second run"):
        with RunFolder(tmp_path) as run:
            run.keep_log = True
            run.log.write_text(text)
            kept.append(run.kept_log)
    assert kept[0] != kept[1] and all(p.name.startswith("edgeport-") and p.suffix == ".log" for p in kept)
    assert [p.read_text() for p in kept] == ["first run", "second run"]  # the first run's log was not replaced
    assert not (tmp_path / "edgeport.log").exists()


# ------------------------------------------------------------------------------------------------ binding by name
KW_TINY = '''
import torch


class ABC(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fa = torch.nn.Linear(4, 3)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, a, b=None, c=None):
        y = self.fa(a)
        if b is not None:
            y = y + 100.0 * b.sum(-1, keepdim=True)
        if c is not None:
            y = y - 2.0 * self.fc(c)
        return y


def abc():
    return ABC()
'''


class ABC:
    """forward(a, b=None, c=None): b would move every output by 100 per unit, c subtracts a second layer (KW_TINY,
    in memory here; written to a module where a test needs a spec)."""

    @staticmethod
    def make():
        ns: dict = {}
        exec(compile(KW_TINY, "kw_tiny", "exec"), ns)
        return ns["abc"]().eval()


def _spec(*texts):
    from edgeport.signature import parse_input_spec

    return [parse_input_spec(t) for t in texts]


@pytest.mark.parametrize("order", [("a", "c"), ("c", "a")])
def test_inputs_bind_to_forward_by_name(order):
    import torch

    from edgeport.sources import load_source

    m = ABC.make()
    src = load_source(m, inputs=_spec(*(f"{n}:float32[2,4]" for n in order)))
    rng = np.random.default_rng(4)
    feeds = {n: rng.normal(size=(2, 4)).astype(np.float32) for n in order}
    with torch.no_grad():
        want = m(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()  # b stays at its default
    got = src.float_outputs(feeds)["output"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_a_name_forward_does_not_have_is_one_line_listing_its_parameters():
    from edgeport.sources import load_source

    with pytest.raises(InputError) as e:
        load_source(ABC.make(), inputs=_spec("a:float32[1,4]", "token_type_ids:float32[1,4]"))
    msg = str(e.value)
    assert "\n" not in msg and "'token_type_ids' is not a parameter of ABC.forward(a, b=..., c=...)" in msg, msg


def test_positional_names_that_match_no_parameter_stay_positional():
    import torch

    from edgeport.sources import load_source

    seq = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()  # forward(self, input)
    src = load_source(seq, inputs=_spec("x:float32[1,4]"))
    assert src.model is seq and "by position" in src.notes[0]


GPT2 = textwrap.dedent("""
    from transformers import GPT2Config, GPT2LMHeadModel

    def gpt2(use_cache=True):
        cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, use_cache=use_cache)
        return GPT2LMHeadModel(cfg)

    def gpt2_nocache():
        return gpt2(use_cache=False)
""")


def test_a_cache_output_is_one_line_naming_it_and_the_fix(tmp_path, monkeypatch):
    """GPT-2 declared with input_ids, attention_mask: the mask reaches attention_mask (it went to past_key_values),
    and the cache it returns is named, with the fix; use_cache=False then loads."""
    pytest.importorskip("transformers", reason="needs transformers for a GPT-2 with a cache output")
    from edgeport.sources import load_source

    (tmp_path / "tinygpt2.py").write_text(GPT2)
    monkeypatch.syspath_prepend(str(tmp_path))
    ins = _spec("input_ids:int64[1,8]", "attention_mask:int64[1,8]")
    with pytest.raises(InputError) as e:
        load_source("tinygpt2:gpt2", inputs=ins)
    msg = str(e.value)
    # transformers 5 names the cache 'cache' in the model output (4.x: 'past_key_values')
    assert re.search(r"output '(cache|past_key_values)' is a DynamicCache, not a tensor", msg), msg
    assert "use_cache=False" in msg
    assert "dtype object" not in msg and "\n" not in msg
    src = load_source("tinygpt2:gpt2_nocache", inputs=ins)
    assert list(src.signature.output_names) == ["logits"]
    # the mask reaches forward's attention_mask: the same logits as calling GPT-2 with those keywords
    import torch

    ids = np.arange(8, dtype=np.int64)[None] % 64
    mask = np.r_[np.ones(5), np.zeros(3)].astype(np.int64)[None]
    got = src.float_outputs({"input_ids": ids, "attention_mask": mask})["logits"]
    with torch.no_grad():
        want = src.model.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


PER_IMAGE = '''
import torch


class Det(torch.nn.Module):
    """What torchvision's detectors return: a list of per-image dicts whose tensors have no batch axis."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        f = self.conv(x).flatten(2).transpose(1, 2)  # (B, H*W, 8)
        return [{"boxes": f[i, :, :4], "scores": f[i, :, 4]} for i in range(x.shape[0])]


class Squeezed(Det):
    def forward(self, x):
        return self.conv(x).mean((2, 3))[0]  # (8,): the batch axis squeezed away


class Batched(Det):
    def forward(self, x):
        f = self.conv(x).flatten(2).transpose(1, 2)
        return {"boxes": f[..., :4], "scores": f[..., 4]}


def det():
    return Det()


def squeezed():
    return Squeezed()


def batched():
    return Batched()
'''


@pytest.mark.parametrize("factory, output", [("det", "output_0.boxes"), ("squeezed", "output")])
def test_an_output_without_the_batch_axis_is_refused_at_load(tmp_path, monkeypatch, factory, output):
    """Found by the zoo: per-image dicts converted and then failed parity on a shape mismatch. The load refuses
    them in one line naming the output, its shape and the fix; the same head with the batch axis first loads."""
    from edgeport.sources import load_source

    (tmp_path / "perimage.py").write_text(PER_IMAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    ins = _spec("x:float32[1,3,6,6]")
    with pytest.raises(InputError) as e:
        load_source(f"perimage:{factory}", inputs=ins)
    msg = str(e.value)
    assert f"output '{output}'" in msg and "first axis is not the batch" in msg and "\n" not in msg, msg
    assert "batch axis first" in msg
    src = load_source("perimage:batched", inputs=ins)
    assert dict(zip(src.signature.output_names, (o.shape for o in src.signature.outputs))) == {
        "boxes": (1, 36, 4), "scores": (1, 36)}


# ------------------------------------------------------------------------------------------------ real artifacts
ZERO_EMB = '''
import torch


class Emb(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 16, bias=False)

    def forward(self, x):
        return self.fc(x)


def emb():
    return Emb()
'''


@pytest.mark.slow
def test_an_int8_embedding_that_answers_zeros_is_flagged_and_fails(tmp_path, monkeypatch):
    """Calibrated on rows 1000x larger than the rows it is judged on, the int8 output scale rounds every answer to
    zero: the report says cosine 0 (what the outputs give), flags all-zero, and the pytest assertion fails on it."""
    from edgeport.config import ConvertOptions, EvaluateOptions
    from edgeport.convert import convert
    from edgeport.evaluate import evaluate
    from edgeport.signature import parse_input_spec

    (tmp_path / "zeroemb.py").write_text(ZERO_EMB)
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=(1000 * rng.normal(size=(32, 8))).astype(np.float32))
    np.savez(tmp_path / "small.npz", x=(1e-3 * rng.normal(size=(32, 8))).astype(np.float32))
    (m,) = convert("zeroemb:emb", ["tflite"], ["int8"], tmp_path / "out",
                   ConvertOptions(calib=str(tmp_path / "calib.npz"), data=str(tmp_path / "small.npz")),
                   inputs=[parse_input_spec("x:float32[1,8]")], task="embedding", isolate=False)
    assert m.parity["outputs"][0]["flags"] == ["all-zero"] and not m.parity["within_tolerance"]
    report = evaluate([m.path], EvaluateOptions(data=str(tmp_path / "small.npz"), threads=("1",)))
    (row,) = [r for r in report.rows if r.error is None and not r.skipped]
    assert row.flags == ["all-zero"] and row.cosine_mean == 0.0 and row.norm_ratio == 0.0, row
    with pytest.raises(QuantizedAccuracyError) as e:
        assert_quantized_close(report, min_cosine=0.99)
    assert "emb.int8.tflite over budget: outputs all zero (flagged all-zero)" in str(e.value), str(e.value)




@pytest.mark.slow
def test_inputs_out_of_forward_order_agree_on_every_torch_target(tmp_path, monkeypatch):
    """Declared c then a (forward(a, b=None, c=None)): every torch target's artifact, run on its own runtime, gives
    forward(a=..., c=...); b keeps its default."""
    import torch

    from edgeport.config import ConvertOptions
    from edgeport.convert import convert
    from edgeport.registry import runner_for
    from edgeport.signature import parse_input_spec

    (tmp_path / "kwtiny.py").write_text(KW_TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(5)
    feeds = {"c": rng.normal(size=(6, 4)).astype(np.float32), "a": rng.normal(size=(6, 4)).astype(np.float32)}
    np.savez(tmp_path / "rows.npz", **feeds)
    ms = convert("kwtiny:abc", ["pte", "tflite", "onnx"], ["fp32"], tmp_path / "out",
                 ConvertOptions(data=str(tmp_path / "rows.npz")),
                 inputs=[parse_input_spec("c:float32[1,4]"), parse_input_spec("a:float32[1,4]")], task="regression",
                 isolate=False)
    import kwtiny

    with torch.no_grad():
        want = kwtiny.abc().eval()(a=torch.from_numpy(feeds["a"]), c=torch.from_numpy(feeds["c"])).numpy()
    assert {m.target for m in ms} == {"pte", "tflite", "onnx"}
    for m in ms:
        r = runner_for(m.target)(m, 1)
        r.load()
        got = np.concatenate([r.run({k: v[i:i + 1] for k, v in feeds.items()})["output"] for i in range(6)])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=m.name)
