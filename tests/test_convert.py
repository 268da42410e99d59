"""The conversion matrix: registry completeness, parity, quantized accuracy, sizes, manifests, reproducibility."""

import json

import numpy as np
import pytest

from edgeport.registry import PLUGIN_GROUP, matrix, targets

from .conftest import BUILTIN, heldout_digits


# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


def test_every_declared_plugin_registers_its_target():
    """Each plugin named in pyproject's entry points registers a target or a runtime of that name; every target has
    a converter and a place to run."""
    from importlib.metadata import entry_points

    from edgeport.registry import runtimes

    declared = {ep.name for ep in entry_points(group=PLUGIN_GROUP)} - {"builtins", "web"}
    assert {"tflite", "tfjs", "pte"} <= declared
    registered = targets()
    assert declared == set(registered) | (declared & set(runtimes())), "entry points and registered plugins differ"
    for name, t in registered.items():
        assert t.converters, f"{name}: no converter attached"
        assert t.native or t.browser, f"{name}: neither a native runner nor a browser adapter"


def test_every_registered_combination_converted_the_builtin_model(manifests):
    for t, c in matrix():
        for r in c.recipes:
            name = f"{BUILTIN[c.framework][0].split(':')[1]}.{r}.{t.name}"
            assert name in manifests, f"{name} was not produced"
            m = manifests[name]
            m.check_files()  # every file exists with the recorded bytes and sha256
            assert (m.folder / m.entry).is_file()


def test_manifest_schema(manifests):
    for m in manifests.values():
        d = json.loads(m.path.read_text())
        for key in ("schema", "name", "source", "target", "recipe", "task", "files", "signature", "preprocessing", "parity",
                    "probe", "tools"):
            assert key in d, f"{m.name}: no {key}"
        assert d["schema"] == 2 and d["task"] == "classification"
        assert d["source"]["framework"] in ("torch", "keras") and len(d["source"]["sha256"]) == 64
        (inp,) = d["signature"]["inputs"]
        assert inp["role"] == "image" and inp["binding"] is not None
        assert inp["layout"] == ("NCHW" if d["source"]["framework"] == "torch" else "NHWC")
        assert inp["shape"] == list(BUILTIN[d["source"]["framework"]][1])
        if inp["dtype"] == "int8":
            assert inp["quantization"]["scale"] > 0
        (out,) = d["signature"]["outputs"]
        assert out["name"] == "logits" and out["labels"] == [str(i) for i in range(10)]
        assert d["preprocessing"]["kind"] == "image" and d["preprocessing"]["scale"] == pytest.approx(1 / 255)
        probe_in, probe_out = m.probe_arrays()
        assert d["probe"]["data"] == "builtin:digits:heldout" and len(d["probe"]["indices"]) == 64
        assert probe_in[inp["name"]].shape == (64, *inp["shape"][1:]) and probe_out["logits"].shape == (64, 10)
        assert (d["calibration"] is not None) == (d["recipe"] == "int8")
        if d["target"] == "pte":
            assert d["delegation"]["delegated"] > 0 and d["delegation"]["total"] >= d["delegation"]["delegated"]


def test_parity_within_recipe_tolerance(manifests):
    for m in manifests.values():
        if m.target == "tfjs":
            assert m.parity["status"] in ("pending", "measured")
            if m.parity["status"] == "pending":
                assert "outputs" not in m.parity  # never a made-up number
            continue
        assert m.parity["status"] == "measured" and m.parity["task"] == "classification"
        p = m.parity["outputs"][0]
        assert p["samples"] >= 64 and p["name"] == "logits"
        if m.recipe == "fp32":
            assert p["max_abs_diff"] <= 1e-4, m.name
        elif m.recipe == "fp16":
            assert p["max_abs_diff"] <= 1e-2, m.name
        else:
            assert p["top1_agreement"] >= 0.98, m.name
        assert m.parity["within_tolerance"], m.name


def test_quantized_sizes(manifests):
    for m in manifests.values():
        fp32 = manifests[m.name.replace(f".{m.recipe}.", ".fp32.")]
        ratio = m.total_bytes / fp32.total_bytes
        if m.recipe in ("int8", "dynamic-int8", "uint8"):
            assert ratio < 0.30, f"{m.name}: {ratio:.3f}x fp32"
        if m.recipe in ("fp16", "uint16"):
            assert ratio < 0.55, f"{m.name}: {ratio:.3f}x fp32"


def test_int8_accuracy_within_one_point_of_float(native_report, float_accuracy):
    report, _ = native_report
    rows = [r for r in report.rows if r.recipe in ("int8", "dynamic-int8") and r.error is None]
    assert len(rows) >= 5
    for r in rows:
        drop = 100 * (float_accuracy[r.source] - r.accuracy)
        assert r.samples == 360  # held-out data
        assert drop <= 1.0, f"{r.artifact}: {drop:.2f} pp below float"


REPRO = [("builtin:simplecnn-torch", "pte,tflite", "fp32,int8"), ("builtin:simplecnn-keras", "tflite,tfjs", "all")]


def test_conversion_is_byte_identical(tmp_path):
    """Two runs of `edgeport convert` with the same seed give the same bytes. None of these formats embeds a
    timestamp (TF.js model.json carries converter versions only), so files are compared whole. Each run is its
    own process, as a user's would be: inside one long-lived process Keras numbers repeated traces
    (`simplecnn_keras_1`, `_2`), which renames graph nodes and tensors without changing a weight."""
    import subprocess
    import sys

    from edgeport.manifest import Manifest

    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        for model, targets, recipes in REPRO:
            p = subprocess.run([sys.executable, "-m", "edgeport", "convert", "--model", model, "--to", targets,
                                "--quant", recipes, "--out", str(out)], capture_output=True, text=True, timeout=900)
            assert p.returncode == 0, p.stderr[-2000:]
        runs.append({m.name: [(f["path"], f["sha256"]) for f in m.files]
                     for m in (Manifest.read(q) for q in sorted(out.glob("*.manifest.json")))})
    assert len(runs[0]) == 12
    assert runs[0] == runs[1]


def test_other_model_inputs(tmp_path, manifests):
    """A .keras file, a SavedModel folder and a .pt2 exported program convert like the built-ins they hold."""
    import torch

    from edgeport.convert import convert
    from edgeport.demo import models

    kmodel, kpath = models.trained_keras()
    (m,) = convert(str(kpath), ["tflite"], ["fp32"], tmp_path / "keras")
    # A user file carries no preprocessing and no data, so its float probe is seeded N(0, 1) noise, which drives
    # these logits far past the digits' range: the float32 bound is relative to the logit scale here.
    scale = float(np.abs(m.probe_arrays()[1][m.primary_output]).max())
    assert m.probe["data"].startswith("normal(0,1)")
    assert m.parity["outputs"][0]["max_abs_diff"] <= 1e-5 * scale
    assert m.source["sha256"] == manifests["simplecnn-keras.fp32.tflite"].source["sha256"]

    saved = tmp_path / "saved"
    kmodel.export(str(saved), format="tf_saved_model", verbose=False)
    ms = convert(str(saved), ["tflite", "tfjs"], ["fp32"], tmp_path / "sm")
    scale = float(np.abs(ms[0].probe_arrays()[1][ms[0].primary_output]).max())
    assert ms[0].parity["outputs"][0]["max_abs_diff"] <= 1e-5 * scale and ms[1].parity["status"] == "pending"

    tmodel, _ = models.trained_torch()
    ep = torch.export.export(tmodel, (torch.zeros(1, 1, 28, 28),))
    torch.export.save(ep, str(tmp_path / "net.pt2"))
    # every torch target takes it, .tflite included (an exported graph's module refuses .eval(): litert-torch path)
    ms = convert(str(tmp_path / "net.pt2"), ["pte", "tflite", "onnx"], ["fp32"], tmp_path / "pt2")
    assert [m.target for m in ms] == ["pte", "tflite", "onnx"]
    for m in ms:
        assert m.signature["inputs"][0]["shape"] == [1, 1, 28, 28]
        scale = float(np.abs(m.probe_arrays()[1][m.primary_output]).max())
        assert m.parity["outputs"][0]["max_abs_diff"] <= 1e-5 * scale, m.name


def test_keras_int8_with_int8_io(tmp_path, float_accuracy):
    """Full-integer TFLite with int8 input/output: scale and zero point land in the manifest, and the runner
    quantizes with them (accuracy stays within a point of float)."""
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert
    from edgeport.registry import runner_for

    (m,) = convert("builtin:simplecnn-keras", ["tflite"], ["int8"], tmp_path, ConvertOptions(int8_io=True))
    inp, out = m.signature["inputs"][0], m.signature["outputs"][0]
    assert inp["dtype"] == "int8" and out["dtype"] == "int8"
    assert inp["quantization"]["scale"] == pytest.approx(1 / 255, rel=0.05) and inp["quantization"]["zero_point"] == -128
    r = runner_for(m.target)(m, 1)
    r.load()
    x, y = heldout_digits("NHWC")
    acc = float((r.run({"image": x})["logits"].argmax(-1) == y).mean())
    assert 100 * (float_accuracy["builtin:simplecnn-keras"] - acc) <= 1.0
