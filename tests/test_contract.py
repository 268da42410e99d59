"""The named multi-tensor I/O contract end to end, natively, on tiny seeded in-test models (no session fixtures):
a Keras Functional model with two named inputs and two outputs, a PyTorch model with int64 ids and a tuple
output, a three-input BERT-like model from `transformers`, a .pt2 with a dynamic batch and a Keras custom layer
loaded with --import. Each goes through the CLI as a user would."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeport.app.cli import main
from edgeport.manifest import Manifest

# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


SEQ = 12
USER_CODE = textwrap.dedent('''
    import torch, torch.nn as nn

    class IdsTuple(nn.Module):
        """int64 ids + mask in, a tuple (class scores, pooled features) out."""
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = nn.Embedding(100, 16)
            self.fc = nn.Linear(16, 5)
        def forward(self, ids, mask):
            h = self.emb(ids) * mask.unsqueeze(-1).float()
            pooled = h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            return self.fc(pooled), pooled

    def ids_tuple():
        return IdsTuple()

    def tiny_bert():
        """A three-input BERT from transformers with a small random config: stock HF code, attention mask included."""
        from transformers import BertConfig, BertModel
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32)
        class Bert(nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = BertModel(cfg, add_pooling_layer=True)
            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return Bert().eval()

    import keras

    @keras.saving.register_keras_serializable(package="usercode")
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kw):
            super().__init__(**kw)
            self.factor = factor
        def call(self, x):
            return x * self.factor
        def get_config(self):
            return {**super().get_config(), "factor": self.factor}
''')


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    d = tmp_path_factory.mktemp("usercode")
    (d / "usercode.py").write_text(USER_CODE)
    sys.path.insert(0, str(d))
    rng = np.random.default_rng(0)
    np.savez(d / "ids.npz", ids=rng.integers(0, 100, (96, SEQ)), mask=(np.arange(SEQ)[None] < rng.integers(3, SEQ, (96, 1))).astype(np.int64),
             y=rng.integers(0, 5, 96))
    np.savez(d / "bert.npz", input_ids=rng.integers(0, 120, (64, 16)),
             attention_mask=(np.arange(16)[None] < rng.integers(4, 16, (64, 1))).astype(np.int64),
             token_type_ids=np.zeros((64, 16), np.int64))
    import keras

    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(keras.layers.Concatenate()([a, b]))
    keras.Model([a, b], [keras.layers.Dense(3, name="cls")(h), keras.layers.Dense(1, name="reg")(h)]).save(d / "two_in.keras")
    x = {"a": rng.standard_normal((120, 4)).astype(np.float32), "b": rng.standard_normal((120, 3)).astype(np.float32)}
    np.savez(d / "two_in.npz", **x, y=rng.integers(0, 3, 120))
    yield d
    sys.path.remove(str(d))


def convert_cli(capsys, *args) -> list[Manifest]:
    code = main(["convert", *map(str, args)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    out = Path(args[list(args).index("--out") + 1])
    return [Manifest.read(p) for p in sorted(out.glob("*.manifest.json"))]


def test_keras_two_named_inputs_two_outputs(user, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(user)
    ms = convert_cli(capsys, "--model", "two_in.keras", "--to", "tflite", "--quant", "fp32,int8", "--calib", "two_in.npz",
                     "--out", tmp_path)
    by = {m.recipe: m for m in ms}
    fp32 = by["fp32"]
    assert fp32.sig.input_names == ["a", "b"] and fp32.sig.output_names == ["cls", "reg"]
    assert [s.binding for s in fp32.sig.inputs] == ["a", "b"]
    # per-output parity, against the float Keras model, on calibration rows kept apart from calibration
    assert [o["name"] for o in fp32.parity["outputs"]] == ["cls", "reg"]
    assert all(o["max_abs_diff"] <= 1e-5 for o in fp32.parity["outputs"])
    assert fp32.probe["kept_apart_from_calibration"] and by["int8"].calibration["samples"] == 120 - len(fp32.probe["indices"])
    # evaluation with named arrays (and labels): every output scored, from another directory than the conversion's
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(tmp_path), "--data", str(user / "two_in.npz"), "--threads", "1", "--quick",
                 "--out", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    rows = {r["artifact"]: r for r in rep["rows"]}
    r = rows["two_in.fp32.tflite"]
    assert r["error"] is None and r["agreement"] == 1.0 and r["accuracy_drop_pp"] == 0.0
    assert [o["name"] for o in r["outputs"]] == ["cls", "reg"] and r["outputs"][1]["max_abs_diff"] <= 1e-5
    assert rows["two_in.int8.tflite"]["agreement"] >= 0.9


def test_torch_int64_ids_and_tuple_output(user, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(user)
    ms = convert_cli(capsys, "--model", "usercode:ids_tuple", "--input", f"ids:int64[1,{SEQ}]", "--input",
                     f"mask:int64[1,{SEQ}]", "--task", "classification", "--to", "pte,tflite", "--quant", "fp32,dynamic-int8,int8",
                     "--calib", "ids.npz", "--out", tmp_path)
    assert {m.name for m in ms} >= {"ids_tuple.fp32.pte", "ids_tuple.int8.pte", "ids_tuple.dynamic-int8.pte", "ids_tuple.fp32.tflite"}
    for m in ms:
        assert m.task == "classification"
        assert m.sig.output_names == ["output_0", "output_1"], m.name
        assert m.sig.inputs[0].role == "token_ids"
        assert m.parity["within_tolerance"], (m.name, m.parity["failures"])
    fp32 = {m.target: m for m in ms if m.recipe == "fp32"}
    assert fp32["tflite"].sig.inputs[0].dtype in ("int32", "int64")  # litert-torch narrows int64 I/O to int32
    # the runner takes and returns named arrays
    from edgeport.registry import runner_for

    m = fp32["pte"]
    r = runner_for(m.target)(m, 1)
    r.load()
    z = np.load(user / "ids.npz")
    got = r.run({"ids": z["ids"][:5], "mask": z["mask"][:5]})
    assert set(got) == {"output_0", "output_1"} and got["output_0"].shape == (5, 5) and got["output_1"].shape == (5, 16)


def test_bert_like_three_inputs(user, tmp_path, capsys, monkeypatch):
    """The stock HF attention-mask code goes through PT2E: only float tensors are annotated (no float indices)."""
    monkeypatch.chdir(user)
    ms = convert_cli(capsys, "--model", "usercode:tiny_bert", "--input", "input_ids:int64[1,16]", "--input",
                     "attention_mask:int64[1,16]", "--input", "token_type_ids:int64[1,16]", "--to", "pte",
                     "--quant", "fp32,dynamic-int8,int8", "--calib", "bert.npz", "--out", tmp_path)
    by = {m.recipe: m for m in ms}
    assert by["fp32"].sig.output_names == ["last_hidden_state", "pooler_output"]
    assert by["fp32"].task == "regression"
    assert by["fp32"].parity["outputs"][0]["max_abs_diff"] <= 1e-4
    assert by["dynamic-int8"].parity["outputs"][0]["cosine_mean"] >= 0.99
    assert by["int8"].parity["outputs"][0]["cosine_mean"] >= 0.9


def test_pt2_with_dynamic_batch_says_what_was_fixed(tmp_path, capsys):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(net, (torch.zeros(8, 6),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(tmp_path / "net.pt2"))
    (m,) = convert_cli(capsys, "--model", tmp_path / "net.pt2", "--to", "pte", "--out", tmp_path / "o")
    assert m.sig.inputs[0].shape == (1, 6)
    assert any("pinned to 1" in n for n in m.source["notes"]), m.source["notes"]
    assert m.parity["within_tolerance"]


def test_keras_custom_layer_with_import(user, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(user)
    import keras

    import usercode

    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="v")
    keras.Model(inp, keras.layers.Dense(2)(usercode.Scale(3.0)(inp))).save(tmp_path / "custom.keras")
    # a fresh registry would not know the layer; --import brings it in
    ms = convert_cli(capsys, "--model", tmp_path / "custom.keras", "--import", "usercode", "--to", "tflite", "--out",
                     tmp_path / "o")
    assert ms[0].parity["within_tolerance"] and ms[0].sig.input_names == ["v"]


def test_task_inference_reads_labels_and_says_what_it_chose():
    """Token ids -> a 2-D float output reads as an embedding, unless the data's integer labels index its columns:
    then it is a classifier. --task always wins."""
    from edgeport.metrics import infer_task
    from edgeport.signature import Signature, TensorSpec, make_input

    sig = Signature((make_input("input_ids", "int64", (1, 16), "token_ids"),), (TensorSpec("out", "float32", (1, 4), "tensor"),))
    assert infer_task(sig) == "embedding"
    assert infer_task(sig, labels=np.array([0, 3, 1])) == "classification"
    assert infer_task(sig, labels=np.array([0, 4])) == "embedding"  # 4 is no column of a (1, 4) output
    assert infer_task(sig, labels=np.array([0.5, 1.0])) == "embedding"  # not class indices
    assert infer_task(sig, "regression", labels=np.array([0, 1])) == "regression"
    emb = Signature(sig.inputs, (TensorSpec("e", "float32", (1, 384), "tensor"),))
    assert infer_task(emb, labels=np.array([0, 1, 1])) == "embedding"  # 0/1 labels do not make 384 dims classes
