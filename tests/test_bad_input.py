"""Bad input: a one-line error naming the problem and the fix, a non-zero exit, nothing half-written, nothing lost."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeport.app.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, [ln for ln in err if ln.startswith("edgeport:")]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """An output folder that already holds an artifact with its manifest, which no failure may lose (made by ONNX's
    own helper, so that this fast tier runs no converter)."""
    from .tiny import artifact

    d = tmp_path_factory.mktemp("bad")
    artifact(d, "onnx")
    return d


@pytest.fixture(scope="module")
def user_models(tmp_path_factory):
    """A package with a PyTorch model that branches on data, and a Keras file with an unregistered custom layer."""
    d = tmp_path_factory.mktemp("usermodels")
    (d / "badnets.py").write_text(textwrap.dedent("""
        import torch

        class Branchy(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)
            def forward(self, x):
                if x.sum() > 0:          # data-dependent Python control flow
                    return self.fc(x)
                return -self.fc(x)

        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)
            def forward(self, x):
                return self.fc(x)

        def branchy():
            return Branchy()

        class Embedder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(50, 8)
            def forward(self, ids):
                return self.emb(ids).mean(1)

        def embedder():
            return Embedder()

        def broken():
            raise RuntimeError("boom")

        def tiny():
            return Tiny()
    """))
    import keras

    @keras.saving.register_keras_serializable(package="edgeport_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(Doubler()(inp)))
    model.save(d / "custom.keras")
    keras.saving.get_custom_objects().clear()  # a fresh process would not know Doubler either
    import torch

    sys.path.insert(0, str(d))
    from safetensors.torch import save_file

    import badnets

    save_file(badnets.tiny().state_dict(), str(d / "tiny.safetensors"))
    torch.save(badnets.tiny().state_dict(), d / "tiny.pt")
    return d


CASES = [
    ("missing keras file", ["--model", "nope/model.keras", "--to", "tflite"], "not found"),
    ("missing weights", ["--model", "badnets:tiny", "--weights", "missing.safetensors", "--input-shape", "1,4", "--to", "pte"], "not found"),
    ("unknown target", ["--model", "builtin:simplecnn-torch", "--to", "tfl"], "unknown target 'tfl'; known: {targets}"),
    ("unknown recipe", ["--model", "builtin:simplecnn-torch", "--to", "pte", "--quant", "int4"], "unknown recipe 'int4'; known:"),
    ("combination that does not exist", ["--model", "builtin:simplecnn-torch", "--to", "pte", "--quant", "fp16"],
     "recipe 'fp16' does not exist for torch -> pte; supported: fp32, dynamic-int8, int8"),
    ("target that does not take the framework", ["--model", "builtin:simplecnn-torch", "--to", "tfjs"], "does not take torch models"),
    ("int8 without calibration", ["--model", "badnets:tiny", "--weights", "{d}/tiny.safetensors", "--input-shape", "1,4", "--to", "pte", "--quant", "int8"],
     "needs a representative set; pass --calib"),
    ("data-dependent control flow", ["--model", "badnets:branchy", "--input-shape", "1,4", "--to", "pte"], "data-dependent Python control flow"),
    ("custom Keras layer", ["--model", "{d}/custom.keras", "--to", "tflite"], "custom layer"),
    ("calibration of the wrong shape", ["--model", "builtin:simplecnn-keras", "--to", "tflite", "--quant", "int8", "--calib", "{d}/wrong.npz"],
     "has sample shape (28, 28), but the model takes (28, 28, 1)"),
    ("calibration with NaN", ["--model", "builtin:simplecnn-keras", "--to", "tflite", "--quant", "int8", "--calib", "{d}/nan.npz"],
     "NaN/Inf"),
    ("missing calibration file", ["--model", "builtin:simplecnn-keras", "--to", "tflite", "--quant", "int8", "--calib", "{d}/none.npz"],
     "data file not found"),
    ("bad --input spec", ["--model", "badnets:tiny", "--input", "x:float99[1,4]", "--to", "pte"], "dtype 'float99' is not supported"),
    ("--input without brackets", ["--model", "badnets:tiny", "--input", "x:float32", "--to", "pte"], "is not NAME:DTYPE[D0,D1,...]"),
    ("torch model without inputs", ["--model", "badnets:tiny", "--to", "pte"], "needs its inputs: --input NAME:DTYPE"),
    ("integer inputs without data", ["--model", "badnets:embedder", "--input", "ids:int64[1,6]", "--to", "pte"],
     "has integer inputs (ids:int64[1, 6]); pass --data"),
    ("data that lacks an input's array", ["--model", "badnets:embedder", "--input", "ids:int64[1,6]", "--to", "pte",
                                          "--data", "{d}/names.npz"], "lacks array(s) 'ids' (has: mask, tokens)"),
    ("fractional token ids", ["--model", "badnets:embedder", "--input", "ids:int64[1,6]", "--to", "pte",
                              "--data", "{d}/fracids.npz"], "holds fractions"),
    ("factory that raises", ["--model", "badnets:broken", "--input-shape", "1,4", "--to", "pte"], "raised RuntimeError: boom"),
    ("--import of a missing module", ["--model", "badnets:tiny", "--input-shape", "1,4", "--to", "pte", "--import",
                                      "no_such_module_xyz"], "--import no_such_module_xyz: could not import"),
]


@pytest.mark.parametrize("label,args,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(capsys, out, user_models, monkeypatch, label, args, expect):
    monkeypatch.chdir(user_models)
    rng = np.random.default_rng(0)
    np.savez(user_models / "wrong.npz", x=rng.random((8, 28, 28), dtype=np.float32))
    bad = rng.random((8, 28, 28, 1), dtype=np.float32)
    bad[3, 4, 5, 0] = np.nan
    np.savez(user_models / "nan.npz", x=bad)
    np.savez(user_models / "fracids.npz", ids=rng.random((8, 6)) * 10)
    np.savez(user_models / "names.npz", tokens=np.zeros((8, 6), np.int64), mask=np.ones((8, 6), np.int64))
    before = snapshot(out)
    from edgeport.registry import targets

    expect = expect.format(targets=", ".join(targets()))
    code, lines = run_cli(capsys, "convert", *[a.format(d=user_models) for a in args], "--out", str(out))
    assert code == 2
    assert len(lines) == 1, lines
    assert expect in lines[0], lines[0]
    assert snapshot(out) == before  # nothing added, nothing lost, nothing half-written
    assert not [p for p in out.rglob("*.part*")]


@pytest.mark.slow
def test_weights_are_loaded_safely(capsys, out, user_models, monkeypatch):
    """A pickled object (not a state dict) is refused by weights_only=True; a state dict .pt converts."""
    import torch

    monkeypatch.chdir(user_models)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"fc.weight": Evil()}, user_models / "evil.pt")
    code, lines = run_cli(capsys, "convert", "--model", "badnets:tiny", "--weights", "evil.pt", "--input-shape", "1,4",
                          "--to", "pte", "--out", str(out))
    assert code == 2 and "weights_only" in lines[0]
    code, _ = run_cli(capsys, "convert", "--model", "badnets:tiny", "--weights", "tiny.pt", "--input-shape", "1,4",
                      "--to", "pte", "--out", str(out / "tiny"))
    assert code == 0 and (out / "tiny" / "tiny.fp32.pte").is_file()


def test_real_process_exit_code(tmp_path):
    """The console script itself exits non-zero with one line on stderr."""
    p = subprocess.run([sys.executable, "-m", "edgeport", "convert", "--model", str(tmp_path / "x.keras"), "--to", "tflite",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("edgeport:")]
    assert lines == [f"edgeport: error: Keras model not found: {tmp_path / 'x.keras'}; pass an existing .keras file"]
