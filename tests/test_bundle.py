"""`edgeport bundle --for android` and `convert --input-format`: the bundled files run under MediaPipe Tasks, LiteRT's
Python CompiledModel and executorch.runtime, and agree with edgeport's own runner; bad requests are one line, exit 2,
and leave no folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeport.app.cli import main
from edgeport.config import ConvertOptions
from edgeport.edge.bundle import BUNDLERS, BundleOptions, bundle, get_bundler
from edgeport.errors import InputError

MOBILENET_INPUT = "x:float32[1,3,64,64]"


# ------------------------------------------------------------------------------------------------ models
def mobilenet_v2_like():
    """A small MobileNetV2-style classifier (inverted residual blocks: 1x1 expand, 3x3 depthwise, 1x1 project,
    residual when the shape allows), random init, seeded; 64x64 RGB in, 12 classes out."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            mid = cin * expand
            self.use_res = stride == 1 and cin == cout
            self.block = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride, groups=mid),
                                       conv_bn(mid, cout, 1, act=False))

        def forward(self, x):
            return x + self.block(x) if self.use_res else self.block(x)

    class MobileNetV2Like(nn.Module):
        def __init__(self, classes=12):
            super().__init__()
            cfg = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (64, 2, 6)]
            layers, c = [conv_bn(3, 16, 3, 2)], 16
            for cout, stride, expand in cfg:
                layers.append(InvertedResidual(c, cout, stride, expand))
                c = cout
            self.features = nn.Sequential(*layers, conv_bn(c, 128, 1))
            self.classifier = nn.Linear(128, classes)

        def forward(self, x):
            return self.classifier(self.features(x).mean((2, 3)))

    m = MobileNetV2Like()
    with torch.no_grad():  # running statistics that are not the identity, as a trained net has
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def tiny_text():
    """A token model (ids and mask in, 8 numbers out) for the refusals."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class TinyText(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)

        def forward(self, input_ids, attention_mask):
            m = attention_mask.unsqueeze(-1).float()
            return (self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1)

    return TinyText().eval()


# ------------------------------------------------------------------------------------------------ fast tier
def test_for_picks_a_bundler_from_the_registry():
    assert "android" in BUNDLERS and callable(get_bundler("android"))
    with pytest.raises(InputError, match="unknown --for 'ios'; known: android, mcu"):
        get_bundler("ios")
    try:
        import edgeport.edge.bundle.mcu  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(InputError, match="--for mcu .* is not available yet"):
            get_bundler("mcu")


def test_bad_requests_are_one_line_exit_2_and_leave_nothing(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bundle", str(tmp_path / "missing.tflite"), "--for", "android", "--out", str(out)]) == 2
    assert main(["bundle", str(tmp_path), "--for", "mcu-or-ios", "--out", str(out)]) == 2
    assert main(["convert", "--model", "builtin:simplecnn-torch", "--to", "tflite", "--input-format", "bgr",
                 "--out", str(tmp_path / "a")]) == 2
    assert main(["convert", "--model", "builtin:simplecnn-torch", "--to", "tflite", "--mean", "127.5",
                 "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("edgeport: error: ") for e in err), err
    assert "unknown --input-format 'bgr'; known: rgb-uint8-nhwc" in err[2]
    assert not out.exists()


def test_an_image_front_on_a_token_model_is_refused(tmp_path, capsys):
    rc = main(["convert", "--model", "tests.test_bundle:tiny_text", "--input", "input_ids:int64[1,8]",
               "--input", "attention_mask:int64[1,8]", "--to", "tflite", "--input-format", "rgb-uint8-nhwc",
               "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "puts an image front on a model with one float image input" in err[0] and "token models keep int ids" in err[0]
    assert not list((tmp_path / "a").glob("*.tflite"))


def test_pixels_become_the_fronts_rgb_or_rgba(tmp_path):
    from edgeport.data import noise_probe, pixels_to_input
    from edgeport.signature import Signature, TensorSpec

    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    rgb = pixels_to_input(gray, {"scale": 1.0, "offset": 0.0, "channels": 3}, "NHWC")
    assert rgb.shape == (2, 4, 4, 3) and np.array_equal(rgb[..., 0], gray) and np.array_equal(rgb[..., 2], gray)
    rgba = pixels_to_input(gray, {"scale": 1.0, "offset": 0.0, "channels": 4}, "NHWC")
    assert rgba.shape == (2, 4, 4, 4) and np.all(rgba[..., 3] == 255)
    probe = noise_probe(Signature((TensorSpec("pixels", "uint8", (1, 4, 4, 3), "image", "NHWC"),)), n=5)
    assert probe["pixels"].dtype == np.uint8 and probe["pixels"].shape == (5, 4, 4, 3) and probe["pixels"].max() > 128


@pytest.mark.slow  # mediapipe's metadata module imports TensorFlow (~25 s here)
def test_metadata_shim_computes_the_parser_version(tmp_path):
    """The stand-in for the wheel's missing native module answers what the C++ answers: 1.0.0 for image
    classifier metadata (normalisation, labels), 1.1.0 once a subgraph has input process units (BERT)."""
    import sys

    from edgeport.edge.bundle import metadata as md
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    md.install_shim()
    assert md.install_shim() is False  # the module is there now: nothing is put in twice
    stub = sys.modules[md._NATIVE]
    assert stub.GetMinimumMetadataParserVersion is md.minimum_parser_version

    def version(meta: fb.ModelMetadataT) -> str:
        import flatbuffers

        b = flatbuffers.Builder(0)
        b.Finish(meta.Pack(b), b"M001")
        return md.minimum_parser_version(bytes(b.Output()))

    meta = fb.ModelMetadataT()
    sg = fb.SubGraphMetadataT()
    t = fb.TensorMetadataT()
    norm = fb.ProcessUnitT()
    norm.optionsType = fb.ProcessUnitOptions.NormalizationOptions
    norm.options = fb.NormalizationOptionsT()
    t.processUnits = [norm]
    labels = fb.AssociatedFileT()
    labels.name, labels.type = "labels.txt", fb.AssociatedFileType.TENSOR_AXIS_LABELS
    t.associatedFiles = [labels]
    sg.inputTensorMetadata, sg.outputTensorMetadata = [t], [fb.TensorMetadataT()]
    meta.subgraphMetadata = [sg]
    assert version(meta) == "1.0.0"
    vocab = fb.AssociatedFileT()
    vocab.name, vocab.type = "vocab.txt", fb.AssociatedFileType.VOCABULARY
    bert = fb.ProcessUnitT()
    bert.optionsType = fb.ProcessUnitOptions.BertTokenizerOptions
    bert.options = fb.BertTokenizerOptionsT()
    bert.options.vocabFile = [vocab]
    sg.inputProcessUnits = [bert]
    assert version(meta) == "1.1.0"
    regex = fb.ProcessUnitT()
    regex.optionsType = fb.ProcessUnitOptions.RegexTokenizerOptions
    regex.options = fb.RegexTokenizerOptionsT()
    sg.inputProcessUnits = [regex]
    assert version(meta) == "1.2.1"


# ------------------------------------------------------------------------------------------------ slow tier
@pytest.fixture(scope="module")
def image_artifacts(tmp_path_factory) -> Path:
    """Both built-ins and a MobileNetV2-like PyTorch model, each with an RGB uint8 front, plus the plain digits
    .tflite (one channel, NCHW float: what MediaPipe cannot take)."""
    from edgeport.convert import convert

    out = tmp_path_factory.mktemp("android-artifacts")
    front = ConvertOptions(input_format="rgb-uint8-nhwc")
    convert("builtin:simplecnn-torch", ["tflite", "pte"], ["fp32"], out, front, isolate=False)
    convert("builtin:simplecnn-keras", ["tflite"], ["fp32"], out, front, isolate=False)
    convert("builtin:simplecnn-torch", ["tflite"], ["fp32"], out, isolate=False)
    from edgeport.signature import parse_input_spec

    convert("tests.test_bundle:mobilenet_v2_like", ["tflite", "pte"], ["fp32"], out,
            ConvertOptions(input_format="rgb-uint8-nhwc", mean=(127.5,), std=(127.5,)),
            inputs=[parse_input_spec(MOBILENET_INPUT)], task="classification", isolate=False)
    return out


def _manifest(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.manifest.json").read_text())


@pytest.mark.slow
def test_fronts_take_raw_pixels_and_keep_parity(image_artifacts):
    for name, model_input in [("simplecnn-torch-rgb8.fp32.tflite", "x:float32[1, 1, 28, 28]"),
                              ("simplecnn-keras-rgb8.fp32.tflite", None),
                              ("mobilenet_v2_like-rgb8.fp32.pte", "x:float32[1, 3, 64, 64]")]:
        m = _manifest(image_artifacts, name)
        i = m["signature"]["inputs"][0]
        assert (i["dtype"], i["shape"], i["layout"]) == ("uint8", [1, 28, 28, 3] if "simplecnn" in name else
                                                         [1, 64, 64, 3], "NHWC"), name
        assert m["preprocessing"]["front"]["format"] == "rgb-uint8-nhwc"
        if model_input:
            assert m["preprocessing"]["front"]["model_input"] == model_input
        par = m["parity"]["outputs"][0]
        assert m["parity"]["within_tolerance"] and par["top1_agreement"] == 1.0 and par["max_abs_diff"] < 1e-3, (name, par)
    mb = _manifest(image_artifacts, "mobilenet_v2_like-rgb8.fp32.tflite")["preprocessing"]["front"]
    assert mb["mean"] == [127.5] * 3 and mb["std"] == [127.5] * 3 and mb["color"] == "RGB"


@pytest.mark.slow
def test_android_bundle_runs_under_mediapipe_litert_and_executorch(image_artifacts, tmp_path, capsys):
    out = tmp_path / "bundle"
    names = ["simplecnn-torch-rgb8.fp32.tflite", "simplecnn-torch-rgb8.fp32.pte", "simplecnn-keras-rgb8.fp32.tflite",
             "mobilenet_v2_like-rgb8.fp32.tflite", "mobilenet_v2_like-rgb8.fp32.pte", "simplecnn-torch.fp32.tflite"]
    assert main(["bundle", *[str(image_artifacts / n) for n in names], "--for", "android", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: simplecnn-torch.fp32.tflite: not for MediaPipe: MediaPipe ImageClassifier needs an RGB NHWC" in printed
    s = json.loads((out / "bundle.json").read_text())
    files = set(s["files"])
    for n in names:
        assert n in files
    assert {"simplecnn-torch-rgb8.labels.txt", "README.md", "kotlin/SimplecnnTorchRgb8Fp32TfliteMediaPipe.kt",
            "kotlin/MobilenetV2LikeRgb8Fp32PteExecuTorch.kt", "simplecnn-torch-rgb8.fp32.pte.preprocessing.json"} <= files
    for n in ("simplecnn-torch-rgb8.fp32.tflite", "simplecnn-keras-rgb8.fp32.tflite", "mobilenet_v2_like-rgb8.fp32.tflite"):
        c = s["checks"][n]
        assert c["mediapipe"]["task"] == "ImageClassifier" and c["mediapipe"]["rows"] == 32
        assert c["mediapipe"]["top1_agreement"] == 1.0, (n, c["mediapipe"])
        assert c["litert_compiled_model"]["top1_agreement"] == 1.0 and c["litert_compiled_model"]["max_abs_diff"] < 1e-5
        meta = json.loads((out / f"{n}.metadata.json").read_text())
        assert meta["min_parser_version"] == "1.0.0"
        assert s["preflight"][n]["gpu"]["tool"].startswith("ai_edge_litert model analyzer")
    for n in ("simplecnn-torch-rgb8.fp32.pte", "mobilenet_v2_like-rgb8.fp32.pte"):
        assert "XnnpackBackend" in s["preflight"][n]["program"]["delegates"]
    pte = s["checks"]["simplecnn-torch-rgb8.fp32.pte"]["executorch_preprocessing_file"]
    assert pte["top1_agreement"] == 1.0 and pte["max_abs_diff"] < 1e-5
    plain = s["checks"]["simplecnn-torch.fp32.tflite"]
    assert "mediapipe" not in plain and plain["litert_compiled_model"]["top1_agreement"] == 1.0
    kt = (out / "kotlin/MobilenetV2LikeRgb8Fp32TfliteLiteRt.kt").read_text()
    assert 'CompiledModel.create(context.assets, "mobilenet_v2_like-rgb8.fp32.tflite"' in kt
    assert "inputs[0].writeInt8(pixels)  // pixels: uint8[1, 64, 64, 3]" in kt and "createScaledBitmap(bitmap, 64, 64" in kt
    readme = (out / "README.md").read_text()
    assert "### Checked here, and not" in readme and "not checked: the Kotlin files were not compiled" in readme
    assert "not for MediaPipe: MediaPipe ImageClassifier needs an RGB NHWC input" in readme


@pytest.mark.slow
def test_refused_bundles_leave_nothing(image_artifacts, tmp_path, capsys):
    plain = str(image_artifacts / "simplecnn-torch.fp32.tflite")
    out = tmp_path / "b"
    assert main(["bundle", plain, "--for", "android", "--out", str(out), "--mediapipe", "image-classifier"]) == 2
    assert main(["bundle", plain, "--for", "android", "--out", str(out), "--labels", str(tmp_path / "none.txt")]) == 2
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    assert main(["bundle", plain, "--for", "android", "--out", str(out), "--labels", str(tmp_path / "three.txt")]) == 2
    # an int8-I/O artifact whose manifest lost its scale and zero point
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in image_artifacts.glob("simplecnn-torch.fp32.tflite*"):
        (broken / f.name).write_bytes(f.read_bytes())
    mp = broken / "simplecnn-torch.fp32.tflite.manifest.json"
    m = json.loads(mp.read_text())
    m["signature"]["inputs"][0].update(dtype="int8", quantization=None)
    mp.write_text(json.dumps(m))
    assert main(["bundle", str(mp), "--for", "android", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("edgeport: error: ") for e in err), err
    assert "MediaPipe image-classifier does not fit this model" in err[0]
    assert "has 3 labels but simplecnn-torch.fp32.tflite's output logits has 10 scores" in err[2]
    assert "int8 but the manifest has no scale/zero point" in err[3]
    assert not out.exists() and not list(tmp_path.glob(".b.part-*"))


@pytest.fixture(scope="module")
def minilm_bert3(tmp_path_factory) -> Path:
    from edgeport.convert import convert

    out = tmp_path_factory.mktemp("minilm-android")
    convert("builtin:minilm", ["tflite"], ["fp32"], out, ConvertOptions(input_format="bert-ids-mask-segments"),
            isolate=False)
    return out


@pytest.mark.slow
def test_minilm_bundle_runs_under_mediapipe_text_embedder(minilm_bert3, tmp_path):
    m = _manifest(minilm_bert3, "minilm-bert3.fp32.tflite")
    assert [(t["name"], t["dtype"]) for t in m["signature"]["inputs"]] == [
        ("input_ids", "int32"), ("attention_mask", "int32"), ("token_type_ids", "int32")]
    assert m["parity"]["outputs"][0]["cosine_min"] > 0.9999
    with pytest.raises(InputError, match="--mean/--std describe image normalisation"):
        bundle([str(minilm_bert3)], "android", tmp_path / "x", BundleOptions(mean=(127.5,), std=(127.5,)))
    s = bundle([str(minilm_bert3)], "android", tmp_path / "b")
    c = s["checks"]["minilm-bert3.fp32.tflite"]
    assert c["mediapipe"]["task"] == "TextEmbedder" and c["mediapipe"]["rows"] == 32
    assert c["mediapipe"]["cosine_min"] >= 0.999, c["mediapipe"]
    assert c["litert_compiled_model"]["cosine_min"] >= 0.99999
    meta = json.loads((tmp_path / "b" / "minilm-bert3.fp32.tflite.metadata.json").read_text())
    assert meta["min_parser_version"] == "1.1.0"
    vocab = (tmp_path / "b" / "minilm-bert3.vocab.txt").read_text().splitlines()
    assert len(vocab) == 30522 and vocab[101] == "[CLS]"
    kt = (tmp_path / "b" / "kotlin" / "MinilmBert3Fp32TfliteMediaPipe.kt").read_text()
    assert "it.embed(stripAccents(text))" in kt and 'Regex("\\\\p{Mn}+")' in kt


def test_a_token_front_needs_a_forward_that_takes_segment_ids(tmp_path, capsys):
    rc = main(["convert", "--model", "tests.test_bundle:tiny_text", "--input", "input_ids:int64[1,8]",
               "--input", "attention_mask:int64[1,8]", "--to", "tflite", "--input-format", "bert-ids-mask-segments",
               "--data", str(_token_data(tmp_path)), "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "forward() has no token_type_ids parameter" in err[0], err


def _token_data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    p = tmp_path / "tokens.npz"
    np.savez(p, input_ids=rng.integers(0, 50, (8, 8)), attention_mask=np.ones((8, 8), np.int64))
    return p



@pytest.mark.slow
def test_a_users_float_rgb_model_takes_mean_std_and_labels_from_flags(tmp_path, capsys):
    """A Keras model with a float NHWC RGB input and no preprocessing recorded: MediaPipe normalises the pixels
    from the metadata written with --mean/--std, and names classes from --labels."""
    import keras

    from edgeport.convert import convert

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp))
    keras.Model(inp, keras.layers.Dense(5, name="scores")(x)).save(tmp_path / "tiny.keras")
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (40, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "data.npz", image=(px - 127.5) / 127.5, y=rng.integers(0, 5, 40))
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    convert(str(tmp_path / "tiny.keras"), ["tflite"], ["fp32"], tmp_path / "art", ConvertOptions(data=str(tmp_path / "data.npz")),
            task="classification", isolate=False)
    art = str(tmp_path / "art" / "tiny.fp32.tflite")
    assert main(["bundle", art, "--for", "android", "--out", str(tmp_path / "x")]) == 2
    assert "normalisation is unknown; pass --mean" in capsys.readouterr().err
    s = bundle([art], "android", tmp_path / "b", BundleOptions(mean=(127.5,), std=(127.5,), labels=str(tmp_path / "labels.txt")))
    c = s["checks"]["tiny.fp32.tflite"]["mediapipe"]
    assert c["task"] == "ImageClassifier" and c["top1_agreement"] == 1.0 and "mapped back to pixels" in c["input"]
    meta = json.loads((tmp_path / "b" / "tiny.fp32.tflite.metadata.json").read_text())
    unit = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"][0]["options"]
    assert unit["mean"] == [127.5] and unit["std"] == [127.5]
    assert (tmp_path / "b" / "tiny.labels.txt").read_text().split() == list("abcde")
