"""The ONNX target: every recipe from both built-ins (parity, size, held-out accuracy), a token model with integer
inputs and a tuple output, and a two-input Keras Functional model. Artifacts are built once per module; every
number comes from onnxruntime running the artifact."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgeport.convert import convert  # noqa: E402
from edgeport.manifest import Manifest  # noqa: E402

RECIPES = ("fp32", "fp16", "dynamic-int8", "int8")
BUILTINS = {"torch": "builtin:simplecnn-torch", "keras": "builtin:simplecnn-keras"}


def _seed():
    random.seed(0)
    np.random.seed(0)
    import torch

    torch.manual_seed(0)


def _runner(m: Manifest, threads: int = 1):
    from edgeport.converters.onnx.runner import OrtRunner

    r = OrtRunner(m, threads=threads)
    r.load()
    return r


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def builtin_onnx(tmp_path_factory) -> dict[str, Manifest]:
    """Both built-ins converted to every ONNX recipe, once: {artifact name: manifest}."""
    _seed()
    out = tmp_path_factory.mktemp("onnx-builtins")
    ms = []
    for spec in BUILTINS.values():
        ms += convert(spec, ["onnx"], ["all"], out)
    return {m.name: m for m in ms}


@pytest.fixture(scope="module")
def heldout_accuracy(builtin_onnx) -> dict[str, float]:
    """Top-1 accuracy on builtin:digits' held-out split: each ONNX artifact on onnxruntime, and each float source
    (keyed by its spec)."""
    from edgeport import data as dat
    from edgeport.sources import load_source

    ds = dat.load_dataset("builtin:digits", "heldout")
    acc = {}
    for spec in BUILTINS.values():
        src = load_source(spec)
        feeds = dat.model_inputs(ds, src.signature, src.preprocessing)
        acc[spec] = float((src.float_outputs(feeds)[src.signature.output_names[0]].argmax(-1) == ds.y).mean())
    for m in builtin_onnx.values():
        feeds = dat.model_inputs(ds, m.sig, m.preprocessing)
        got = _runner(m, threads=2).run(feeds)[m.primary_output]
        acc[m.name] = float((got.argmax(-1) == ds.y).mean())
    return acc


class TokenModel:
    """A tiny text classifier: int64 token ids + attention mask in, (logits, pooled embedding) tuple out."""

    @staticmethod
    def build():
        import torch

        class Tok(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(64, 16)
                self.mix = torch.nn.Linear(16, 16)
                self.cls = torch.nn.Linear(16, 4)

            def forward(self, input_ids, attention_mask):
                mask = attention_mask.unsqueeze(-1).to(torch.float32)
                h = torch.relu(self.mix(self.emb(input_ids))) * mask
                pooled = h.sum(1) / mask.sum(1).clamp(min=1.0)
                return self.cls(pooled), pooled

        torch.manual_seed(0)
        return Tok().eval()

    @staticmethod
    def rows(n: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        ids = rng.integers(1, 64, size=(n, 12)).astype(np.int64)
        lens = rng.integers(3, 13, size=n)
        mask = (np.arange(12)[None, :] < lens[:, None]).astype(np.int64)
        return {"input_ids": ids * mask, "attention_mask": mask}


@pytest.fixture(scope="module")
def token_onnx(tmp_path_factory) -> dict[str, Manifest]:
    from edgeport.config import ConvertOptions
    from edgeport.signature import make_input

    _seed()
    out = tmp_path_factory.mktemp("onnx-token")
    calib, probe = out / "calib.npz", out / "probe.npz"
    np.savez(calib, **TokenModel.rows(96, seed=1))
    np.savez(probe, **TokenModel.rows(32, seed=2))
    inputs = [make_input("input_ids", "int64", (1, 12)), make_input("attention_mask", "int64", (1, 12))]
    ms = convert(TokenModel.build(), ["onnx"], ["all"], out / "art", ConvertOptions(calib=str(calib), data=str(probe)),
                 inputs=inputs, name="tok", task="regression")
    return {m.recipe: m for m in ms}


@pytest.fixture(scope="module")
def keras_two_inputs(tmp_path_factory) -> Manifest:
    import keras

    keras.utils.set_random_seed(0)
    a = keras.Input((8,), name="features")
    b = keras.Input((4,), name="context")
    h = keras.layers.Concatenate()([keras.layers.Dense(16, activation="relu")(a), b])
    model = keras.Model([a, b], keras.layers.Dense(3, name="score")(h))
    (m,) = convert(model, ["onnx"], ["fp32"], tmp_path_factory.mktemp("onnx-keras2"), name="two_in", task="regression")
    return m


# --------------------------------------------------------------------------------------------------- tests
def test_onnx_is_a_registered_target():
    from edgeport.registry import get_target

    t = get_target("onnx")
    assert t.suffix == ".onnx" and t.runtime == "onnxruntime" and t.browser == "ort" and t.native
    assert {fw: c.recipes for fw, c in t.converters.items()} == {"torch": RECIPES, "keras": RECIPES}


def test_every_recipe_converts_both_builtins(builtin_onnx):
    import onnx

    for fw, spec in BUILTINS.items():
        for r in RECIPES:
            m = builtin_onnx[f"simplecnn-{fw}.{r}.onnx"]
            m.check_files()
            onnx.checker.check_model(str(m.entry_path), full_check=True)
            sig = m.sig
            assert [s.binding for s in sig.inputs] == sig.input_names  # bound by name
            assert [s.binding for s in sig.outputs] == sig.output_names == ["logits"]
            assert sig.inputs[0].dtype == sig.outputs[0].dtype == "float32"  # fp16 keeps float32 I/O
            assert m.parity["status"] == "measured" and m.parity["runtime"].startswith("onnxruntime ")
            assert m.parity["within_tolerance"], (m.name, m.parity["failures"])
            assert any(n.startswith("ONNX opset ") for n in m.conversion["notes"])
            assert (m.quantization is None) == (r == "fp32")
            d = m.delegation
            assert d["unit"] == "nodes" and d["delegate"] == "CPUExecutionProvider" and 0 < d["delegated"] == d["total"]


def test_fp32_parity(builtin_onnx):
    for fw in BUILTINS:
        o = builtin_onnx[f"simplecnn-{fw}.fp32.onnx"].parity["outputs"][0]
        assert o["samples"] >= 64 and o["max_abs_diff"] <= 1e-4, (fw, o)


def test_int8_is_under_30_percent_of_fp32(builtin_onnx):
    for fw in BUILTINS:
        fp32 = builtin_onnx[f"simplecnn-{fw}.fp32.onnx"].total_bytes
        assert builtin_onnx[f"simplecnn-{fw}.int8.onnx"].total_bytes < 0.30 * fp32


def test_int8_records_its_calibration_choice(builtin_onnx):
    for fw in BUILTINS:
        q = builtin_onnx[f"simplecnn-{fw}.int8.onnx"].quantization
        assert q["format"] == "QDQ" and q["calibrate_method"] in q["candidates"] and len(q["candidates"]) == 2
        assert q["selection"]["rows"] >= 1 and q["calibration_rows"] >= 100 and q["ops_quantized"] > 0


def test_quantized_heldout_accuracy_within_one_point(heldout_accuracy):
    for fw, spec in BUILTINS.items():
        for r in ("dynamic-int8", "int8"):
            drop = 100 * (heldout_accuracy[spec] - heldout_accuracy[f"simplecnn-{fw}.{r}.onnx"])
            assert drop <= 1.0, f"{fw} {r}: {drop:.2f} pp below float"


def test_token_model_every_recipe_returns_both_named_outputs(token_onnx):
    probe = TokenModel.rows(8, seed=3)
    assert set(token_onnx) == set(RECIPES)
    for r, m in token_onnx.items():
        sig = m.sig
        assert [(s.name, s.dtype, s.binding) for s in sig.inputs] == [("input_ids", "int64", "input_ids"),
                                                                      ("attention_mask", "int64", "attention_mask")]
        assert sig.output_names == ["output_0", "output_1"]
        got = _runner(m).run(probe)
        assert set(got) == {"output_0", "output_1"}
        assert got["output_0"].shape == (8, 4) and got["output_1"].shape == (8, 16)
        assert all(np.isfinite(v).all() for v in got.values())
        snr = [o["snr_db"] for o in m.parity["outputs"]]
        assert len(snr) == 2 and all(s is None or s > (60 if r == "fp32" else 20) for s in snr), (r, snr)


def test_keras_two_named_inputs_fp32_parity(keras_two_inputs):
    m = keras_two_inputs
    assert [(s.name, s.binding) for s in m.sig.inputs] == [("features", "features"), ("context", "context")]
    o = m.parity["outputs"][0]
    assert o["max_abs_diff"] <= 1e-4 and m.parity["within_tolerance"]
    rng = np.random.default_rng(0)
    got = _runner(m).run({"features": rng.standard_normal((3, 8), np.float32),
                          "context": rng.standard_normal((3, 4), np.float32)})
    assert list(got) == m.sig.output_names and got[m.sig.output_names[0]].shape == (3, 3)
