"""TensorFlow Lite Micro (issue 20): the tflite-micro runtime, convert --for mcu, bundle --for mcu.

The slow tier converts both built-ins and a keyword-spotting-style 1-D conv model (trained here on a seeded synthetic
task over 49x10 features) for a microcontroller, runs them on TFLM's own interpreter, and checks accuracy against
float on held-out rows, the measured arena (fails at 90%, runs at 100%), the refusals, and the C hand-off (g++ -c,
the op resolver's Add...() names)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeport import micro
from edgeport.errors import InputError, UnsupportedError

FRAMES, BINS, CLASSES = 49, 10, 4
MAX_DROP_PP = 1.0  # the bar: int8 on TFLM within 1 pp of float on held-out data


# ------------------------------------------------------------------------------------------------ fast: the tables
def test_add_names_follow_tflm():
    assert micro.add_name("CONV_2D") == "AddConv2D"
    assert micro.add_name("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert micro.add_name("MAX_POOL_2D") == "AddMaxPool2D"
    assert micro.add_name("FULLY_CONNECTED") == "AddFullyConnected"
    assert micro.add_name("SPACE_TO_BATCH_ND") == "AddSpaceToBatchNd"
    assert micro.add_name("L2_POOL_2D") == "AddL2Pool2D"
    assert micro.add_name("BATCH_MATMUL") == "AddBatchMatMul"
    assert micro.add_name("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    assert micro.add_name("RELU6") == "AddRelu6"
    assert micro.add_name("GELU") is None  # TFLite has it, TFLM does not
    assert micro.add_name("CUSTOM:MyOp") is None
    assert micro.add_name("CUSTOM:TFLite_Detection_PostProcess") == "AddDetectionPostprocess"


def test_builtins_table_matches_the_installed_wheel():
    """TFLM_BUILTINS is the wheel's kernels: the Register_<OP>() symbols of its interpreter that name a builtin op."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("binutils' nm is not installed (apt-get install binutils)")
    from importlib.util import find_spec

    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    so = find_spec("tflite_micro.python.tflite_micro._runtime").origin
    syms = subprocess.run([nm, "-C", so], capture_output=True, text=True, check=True).stdout
    registered = set(re.findall(r"Register_([A-Z0-9_]+)\(\)", syms))
    builtin = {k for k in vars(s.BuiltinOperator) if not k.startswith("_")}
    assert registered & builtin == set(micro.TFLM_BUILTINS)


def test_byte_sizes_and_fits():
    from edgeport.edge.tflm import fits

    assert micro.parse_bytes("64KB") == 65536 and micro.parse_bytes("1MB") == 1 << 20
    assert micro.parse_bytes("512 KiB") == 512 * 1024 and micro.parse_bytes("4096") == 4096
    with pytest.raises(ValueError, match="256KB"):
        micro.parse_bytes("lots")
    f = fits(40_000, 100_000, 32 * 1024, 1 << 20)
    assert f["ram"] == {"need": 40_000, "have": 32768, "ok": False, "short_by": 7232}
    assert f["flash"]["ok"] and not f["ok"]
    assert fits(1, 1, None, None) is None


def test_targets_lists_the_runtime():
    from edgeport.registry import get_runtime, runtimes_table

    r = get_runtime("tflm")
    assert (r.name, r.where, r.formats, r.compare_to) == ("tflite-micro", "mcu", ("tflite",), "ai-edge-litert")
    assert {"arena", "flash"} <= set(r.measures)
    line = next(ln for ln in runtimes_table().splitlines() if ln.startswith("tflite-micro"))
    assert "mcu" in line and "arena,flash" in line


def test_for_mcu_refuses_other_targets_and_recipes_before_loading(tmp_path):
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert

    with pytest.raises(InputError, match=r"drop --to onnx and --quant fp32"):
        convert("builtin:simplecnn-keras", ["tflite", "onnx"], ["int8", "fp32"], tmp_path, ConvertOptions(profile="mcu"))
    with pytest.raises(InputError, match="unknown --for 'phone'"):
        ConvertOptions(profile="phone")


# ------------------------------------------------------------------------------------------------ slow: real models
def kws_data(n: int, seed: int, amplitude: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """A keyword-spotting-like task: 49 frames x 10 filter-bank energies; each class lights its own pair of bands for
    25 frames starting anywhere in the first 20, under unit noise (learnable, not trivially: float is not 100%)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0.0, 1.0, (n, FRAMES, BINS)).astype(np.float32)
    bands = [(0, 1), (3, 4), (6, 7), (8, 9)]
    for i in range(n):
        s = int(rng.integers(0, 20))
        x[i, s : s + 25, list(bands[y[i]])] += amplitude
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    """The trained float model (.keras), its calibration and held-out sets, and the --for mcu conversion."""
    import keras

    from edgeport.config import ConvertOptions
    from edgeport.convert import convert

    d = tmp_path_factory.mktemp("kws")
    keras.utils.set_random_seed(0)
    xt, yt = kws_data(1600, seed=1)
    xh, yh = kws_data(600, seed=2)
    inp = keras.Input((FRAMES, BINS), batch_size=1, name="features")
    h = keras.layers.Conv1D(16, 5, activation="relu", name="conv1")(inp)
    h = keras.layers.Conv1D(16, 5, strides=2, activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    out = keras.layers.Dense(CLASSES, name="logits")(h)
    model = keras.Model(inp, out, name="kws")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(xt, yt, batch_size=32, epochs=8, verbose=0, shuffle=True)
    path = d / "kws.keras"
    model.save(path)
    np.savez(d / "calib.npz", features=xt[:300])
    np.savez(d / "heldout.npz", features=xh, y=yh)
    out_dir = d / "mcu"
    (m,) = convert(str(path), ["tflite"], ["int8"], out_dir,
                   ConvertOptions(profile="mcu", calib=str(d / "calib.npz"), data=str(d / "heldout.npz")),
                   task="classification")
    return {"dir": d, "out": out_dir, "manifest": m, "heldout": str(d / "heldout.npz"), "model": str(path)}


@pytest.mark.slow
def test_kws_converts_for_mcu_and_runs_on_tflm_within_1pp(kws, tmp_path):
    """The CLI path: evaluate --runtime tflite-micro with a board budget; the row has arena, flash, ops and fits."""
    from edgeport.app.cli import main

    m = kws["manifest"]
    assert m.quantization["profile"] == "mcu"
    assert [t.dtype for t in (*m.sig.inputs, *m.sig.outputs)] == ["int8", "int8"]
    rc = main(["evaluate", str(kws["out"]), "--runtime", "tflite-micro", "--data", kws["heldout"], "--quick",
               "--mcu-ram", "64KB", "--mcu-flash", "256KB", "--out", str(tmp_path / "rep")])
    assert rc == 0
    (row,) = json.loads((tmp_path / "rep" / "report.json").read_text())["rows"]
    assert row["runtime"] == "tflite-micro" and row["where"] == "mcu" and row["error"] is None
    assert row["float_accuracy"] >= 0.80, "the float model did not learn the task; the check would mean nothing"
    assert row["float_accuracy"] < 1.0  # a task float solves perfectly could hide a drop
    assert row["accuracy_drop_pp"] <= MAX_DROP_PP
    assert row["flash_bytes"] == m.entry_path.stat().st_size
    assert 1000 < row["arena_bytes"] < 64 * 1024
    assert row["fits"]["ok"] and row["fits"]["ram"]["have"] == 65536 and row["fits"]["flash"]["have"] == 262144
    assert row["vs_host"]["runtime"] == "ai-edge-litert" and row["vs_host"]["agreement"] >= 0.99
    ops = {o["op"]: o for o in row["ops"]}
    assert "CONV_2D" in ops and all(o["tflm"] and o["add"] for o in row["ops"])
    assert "host time" in row["note"]
    # the measured arena is the smallest that allocates: 90% of it does not, all of it does
    data = m.entry_path.read_bytes()
    assert not micro.allocates(data, int(row["arena_bytes"] * 0.9))
    assert micro.allocates(data, row["arena_bytes"])
    # a board too small: the row says by how much
    assert row["arena_bytes"] > 2048
    rc = main(["evaluate", str(kws["out"]), "--runtime", "tflite-micro", "--data", kws["heldout"], "--quick",
               "--mcu-ram", "2KB", "--out", str(tmp_path / "rep2")])
    (row2,) = json.loads((tmp_path / "rep2" / "report.json").read_text())["rows"]
    assert not row2["fits"]["ok"] and row2["fits"]["ram"]["short_by"] == row2["arena_bytes"] - 2048
    assert f"ram short by {row2['arena_bytes'] - 2048:,} B" in row2["note"]


@pytest.mark.slow
def test_builtins_convert_for_mcu_and_hold_accuracy_on_tflm(tmp_path):
    from edgeport.config import ConvertOptions, EvaluateOptions
    from edgeport.convert import convert
    from edgeport.evaluate import evaluate
    from edgeport.errors import QuantizationBudgetError
    from edgeport.tasks import Budget
    from edgeport.testing import QuantizedAccuracyError, assert_fits_mcu, assert_quantized_close

    ms = []
    for spec in ("builtin:simplecnn-keras", "builtin:simplecnn-torch"):
        ms += convert(spec, ["tflite"], ["int8"], tmp_path / "a", ConvertOptions(profile="mcu"))
    for m in ms:
        assert m.quantization["profile"] == "mcu" and m.quantization["arena_bytes_host"] > 0
        assert all(t.dtype == "int8" for t in (*m.sig.inputs, *m.sig.outputs))
    rep = evaluate([tmp_path / "a"], EvaluateOptions(threads=("1",), runtimes=("tflite-micro", "ai-edge-litert")),
                   quick=True)
    mcu = [r for r in rep.rows if r.where == "mcu"]
    assert len(mcu) == 2 and all(r.error is None and r.arena_bytes and r.flash_bytes for r in mcu)
    assert_quantized_close(rep, max_drop=MAX_DROP_PP, runtime="tflite-micro")
    for r in mcu:
        data = Path(next(m for m in ms if m.name == r.artifact).entry_path).read_bytes()
        assert not micro.allocates(data, int(r.arena_bytes * 0.9)) and micro.allocates(data, r.arena_bytes)
        assert r.vs_host["agreement"] >= 0.99  # the same .tflite on LiteRT
    assert_fits_mcu(rep, ram="256KB", flash="1MB")
    with pytest.raises(QuantizedAccuracyError, match=r"ram short by"):
        assert_fits_mcu(rep, ram="16KB")
    # a budget the full-integer model misses on TFLM is refused with the value reached (no float layers on an MCU)
    keras_drop = next(r for r in mcu if r.artifact.startswith("simplecnn-keras")).accuracy_drop_pp
    assert keras_drop > 0.1  # else the refusal below would test nothing
    with pytest.raises(QuantizationBudgetError, match=r"--for mcu: the full-integer model reaches drop_pp .* on TFLite"
                                                      r" Micro, which misses"):
        convert("builtin:simplecnn-keras", ["tflite"], ["int8"], tmp_path / "b",
                ConvertOptions(profile="mcu", budget=Budget(max_drop_pp=0.1)))
    assert not list((tmp_path / "b").glob("*.manifest.json"))


@pytest.mark.slow
def test_what_tflm_cannot_run_is_one_line(kws, tmp_path):
    """A model with an op TFLM lacks is refused at conversion (op and layer named); fp16 and dynamic-int8 artifacts
    of the same model are skipped rows on tflite-micro, with the reason, and the run goes on."""
    import keras

    from edgeport.config import ConvertOptions, EvaluateOptions
    from edgeport.convert import convert
    from edgeport.evaluate import evaluate

    keras.utils.set_random_seed(0)
    inp = keras.Input((FRAMES, BINS), batch_size=1, name="features")
    h = keras.layers.Conv1D(8, 5, name="conv1")(inp)
    h = keras.layers.Activation("gelu", name="gelu_act")(h)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    gelu = keras.Model(inp, keras.layers.Dense(CLASSES, name="logits")(h))
    gelu.save(tmp_path / "gelu.keras")
    with pytest.raises(UnsupportedError) as e:
        convert(str(tmp_path / "gelu.keras"), ["tflite"], ["int8"], tmp_path / "g",
                ConvertOptions(profile="mcu", calib=str(kws["dir"] / "calib.npz")), task="classification")
    msg = str(e.value)
    assert "GELU" in msg and "gelu_act" in msg and "\n" not in msg
    assert not list((tmp_path / "g").glob("*.manifest.json"))  # nothing half-written

    others = convert(kws["model"], ["tflite"], ["fp16", "dynamic-int8"], tmp_path / "o", task="classification",
                     options=ConvertOptions(data=kws["heldout"]))
    for m in others:  # TFLM itself refuses them, naming the op that fails to prepare
        why = micro.refusal(m.entry_path.read_bytes())
        assert why and "TFLite Micro cannot run" in why and "\n" not in why
    # the GELU model as a plain int8 .tflite (no --for mcu): LiteRT runs it, TFLM's row says which op it lacks
    (g8,) = convert(str(tmp_path / "gelu.keras"), ["tflite"], ["int8"], tmp_path / "o", task="classification",
                    options=ConvertOptions(calib=str(kws["dir"] / "calib.npz")))
    rep = evaluate([tmp_path / "o", kws["out"]], EvaluateOptions(threads=("1",), data=kws["heldout"],
                                                                  runtimes=("tflite-micro",)), quick=True)
    by = {r.artifact: r for r in rep.rows}
    for m in others:
        assert by[m.name].skipped and "--for mcu" in by[m.name].skipped and by[m.name].error is None
    assert "GELU" in by[g8.name].skipped and "gelu_act" in by[g8.name].skipped
    assert by[kws["manifest"].name].error is None and by[kws["manifest"].name].accuracy is not None


@pytest.mark.slow
def test_bundle_for_mcu_compiles_and_lists_exactly_the_models_ops(kws, tmp_path):
    from edgeport.app.cli import main
    from edgeport.edge.bundle.mcu import arena_constant, parse_c_array

    m = kws["manifest"]
    out = tmp_path / "fw"
    assert main(["bundle", str(m.path), "--for", "mcu", "--out", str(out)]) == 0
    data = m.entry_path.read_bytes()
    assert parse_c_array((out / "model_data.cc").read_text()) == data
    header = (out / "model_data.h").read_text()
    arena = micro.smallest_arena(data)
    assert f"constexpr size_t kTensorArenaSize = {arena_constant(arena)};" in header
    assert arena_constant(arena) >= arena * 1.10
    q = m.sig.inputs[0].quantization
    scale = float(re.search(r"kInputScale = ([0-9.e+-]+)f;", header).group(1))
    assert scale == pytest.approx(q["scale"], rel=1e-7)
    assert f"kInputZeroPoint = {q['zero_point']};" in header
    # the resolver: exactly the model's distinct ops, each with the Add...() TFLM registers it by
    ops_h = (out / "model_ops.h").read_text()
    adds = re.findall(r"resolver\.(Add\w+)\(\)", ops_h)
    want = list(dict.fromkeys(micro.add_name(o.name) for o in micro.model_ops(data)))
    assert adds == want and len(adds) == len(set(adds))
    assert "MicroMutableOpResolver<kNumModelOps>" in ops_h and f"kNumModelOps = {len(want)};" in ops_h
    assert {"AddConv2D", "AddFullyConnected"} <= set(adds)
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("no g++ here to compile model_data.cc (apt-get install g++)")
    r = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-c", "model_data.cc", "-o", str(tmp_path / "m.o")],
                       cwd=out, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    size = subprocess.run(["size", "-A", str(tmp_path / "m.o")], capture_output=True, text=True)
    if size.returncode == 0:  # the array lands in read-only data, as flash, with the model's length
        ro = sum(int(ln.split()[1]) for ln in size.stdout.splitlines() if ln.startswith(".rodata"))
        assert ro >= len(data)
    readme = (out / "README.md").read_text()
    assert f"{len(data):,} B" in readme and "ESP32-S3" in readme and "Cortex-M4" in readme
    summary = json.loads((out / "bundle.json").read_text())
    assert summary["checks"]["array_matches_model"] and summary["checks"]["arena_constant_runs_on_tflm"]
    from edgeport.convert import convert
    from edgeport.edge.bundle import bundle

    (fp32,) = convert(kws["model"], ["tflite"], ["fp32"], tmp_path / "f", task="classification")
    with pytest.raises(UnsupportedError, match="not int8.*--for mcu"):
        bundle([str(fp32.path)], "mcu", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
