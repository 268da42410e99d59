"""Issue 22: the manifest records what an artifact holds, read back from the file (edgeport.weights and each
target's reader), not what its recipe promised."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgeport.weights import Stored, summarize, warnings


def test_summarize_counts_shared_storage_once_and_identical_data_twice():
    a, b = "a" * 64, "b" * 64
    w = summarize([Stored("fp32", 4096, 2, a, key=1), Stored("fp32", 4096, 2, a, key=1),  # one buffer, two tensors
                   Stored("fp32", 4096, 2, a, key=2),  # the same data in another buffer: stored twice
                   Stored("int8", 1024, 2, b, key=3), Stored("int32", 40, 1, "c" * 64, key=4)])
    assert w["bytes_by_dtype"] == {"fp32": 8192, "int8": 1024, "int32": 40}
    assert w["tensors_by_dtype"] == {"fp32": 2, "int8": 1, "int32": 1}
    assert (w["quantized_layers"], w["float_layers"], w["duplicated_bytes"]) == (1, 2, 4096)
    assert w["total_bytes"] == 9256 and w["float_share"] == pytest.approx(8192 / 9256, abs=1e-4)


def _m(name, recipe, total, weights=None):
    return SimpleNamespace(name=name, recipe=recipe, target="tflite", source={"model": "m"}, total_bytes=total,
                           weights=weights)


def test_warnings_name_a_quantized_artifact_that_is_not_smaller_or_keeps_most_bytes_float():
    w_float = summarize([Stored("fp32", 3000, 2, "a" * 64), Stored("int8", 1000, 2, "b" * 64)])
    ms = [_m("m.fp32.tflite", "fp32", 27_400), _m("m.int8.tflite", "int8", 33_300, w_float),
          _m("m.dynamic-int8.tflite", "dynamic-int8", 9_000, summarize([Stored("int8", 8000, 2, "c" * 64)]))]
    out = warnings(ms)
    assert any("m.int8.tflite: int8 is not smaller than fp32 (33,300 B against 27,400 B)" in w for w in out), out
    assert any("m.int8.tflite: 75% of its 4,000 weight bytes stay float" in w for w in out), out
    assert not any("dynamic-int8" in w for w in out)


def test_onnx_reader_counts_initializers_by_dtype_and_duplicates(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import edgeport.converters.onnx.weights  # noqa: F401  (registers the reader)
    from edgeport.weights import count

    w = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    inits = [numpy_helper.from_array(w, "w1"), numpy_helper.from_array(w.copy(), "w2"),  # a tied weight, twice
             numpy_helper.from_array(np.ones((32, 8), np.int8), "q")]
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"])],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], initializer=inits)
    p = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g), str(p))
    res = count("onnx", p)
    assert res["bytes_by_dtype"] == {"fp32": 2 * w.nbytes, "int8": 256}
    assert res["duplicated_bytes"] == w.nbytes and res["quantized_layers"] == 1 and res["float_layers"] == 2


def test_a_reader_that_fails_is_recorded_not_raised(tmp_path):
    import edgeport.converters.onnx.weights  # noqa: F401
    from edgeport.weights import count

    p = tmp_path / "bad.onnx"
    p.write_bytes(b"not onnx")
    assert "could not read the stored constants" in count("onnx", p)["error"]


TIED = '''
import torch


class Tied(torch.nn.Module):
    """An embedding table tied to the output layer, as GPT-2 ties wte and lm_head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(200, 64)
        self.mix = torch.nn.Linear(64, 64)
        self.head = torch.nn.Linear(64, 200, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.mix(self.emb(ids)))).mean(1)


def tied():
    return Tied()
'''


@pytest.mark.slow
def test_manifests_record_the_weights_each_artifact_stores(tmp_path, monkeypatch):
    """fp32 stores float, dynamic-int8 and int8 store int8 (read from the files); the fp32 .pte stores the tied table twice
    (the embedding's copy in the program, the output layer's in the XNNPACK delegate) and says so."""
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert
    from edgeport.manifest import Manifest
    from edgeport.report import artifact_table
    from edgeport.signature import parse_input_spec

    (tmp_path / "tiedmodel.py").write_text(TIED)
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "ids.npz", ids=np.random.default_rng(0).integers(0, 200, (16, 8)).astype(np.int64))
    np.savez(tmp_path / "calib.npz", ids=np.random.default_rng(1).integers(0, 200, (16, 8)).astype(np.int64))
    ms = convert("tiedmodel:tied", ["pte", "tflite"], ["fp32", "dynamic-int8", "int8"], tmp_path / "out",
                 ConvertOptions(data=str(tmp_path / "ids.npz"), calib=str(tmp_path / "calib.npz")),
                 inputs=[parse_input_spec("ids:int64[1,8]")], task="regression", isolate=False)
    w = {m.name: Manifest.read(m.path).weights for m in ms}
    table = 200 * 64 * 4
    params = table + 64 * 64 * 4 + 64 * 4
    assert w["tied.fp32.tflite"]["bytes_by_dtype"]["fp32"] == params and w["tied.fp32.tflite"]["duplicated_bytes"] == 0
    assert w["tied.fp32.pte"]["bytes_by_dtype"]["fp32"] == params + table
    assert w["tied.fp32.pte"]["duplicated_bytes"] == table
    for name in ("tied.dynamic-int8.tflite", "tied.dynamic-int8.pte", "tied.int8.tflite", "tied.int8.pte"):
        assert w[name]["quantized_layers"] >= 2 and w[name]["float_share"] < 0.1, (name, w[name])
    # static int8 .tflite: the embedding table is int8 too (PT2E left it float: 75,328 B, more than fp32's 70,376 B)
    size = {m.name: m.total_bytes for m in ms}
    assert w["tied.int8.tflite"]["float_layers"] == 0 and size["tied.int8.tflite"] < 0.6 * size["tied.fp32.tflite"]
    assert "50.0K stored twice" in artifact_table(ms)
