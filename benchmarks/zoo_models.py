"""The public zoo's models (benchmarks/zoo.toml): public architectures at small sizes with random, seeded weights.
Nothing downloads.

- PyTorch factories (``zoo_models:resnet_like`` ...), referenced from zoo.toml with ``--input``. torchvision and
  timm are not used: PyPI's torchvision fails to import beside this lock's torch 2.13.0+cpu ('operator
  torchvision::nms does not exist'), and timm requires torchvision; the classic blocks are written here instead
  (BasicBlock, inverted residual, SE, fire, channel shuffle, dense block, ConvNeXt block, U-Net, a one-stage
  detector head).
- Hugging Face encoders, decoders and audio encoders built from tiny configs (``transformers`` builds them with
  random weights offline).
- Keras models are files: ``python benchmarks/zoo_models.py`` writes ``benchmarks/zoo_keras/*.keras`` (Keras
  applications with ``weights=None``, LSTM/GRU, 1-D conv audio) and ``benchmarks/zoo_data/tokens.npz`` (token ids for
  the text models) once; ``./run bench`` does it before the sweep.

Every factory seeds torch first, so the same code builds the same weights in every process (the sweep's cache and
the conversion worker both rely on it).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERAS_DIR = HERE / "zoo_keras"
DATA_DIR = HERE / "zoo_data"
VOCAB = 1000  # every text config below; tokens.npz draws ids under it
SEQ = 32


def _seeded():
    import torch

    torch.manual_seed(0)
    return torch


def _nn():
    return _seeded().nn


# ------------------------------------------------------------------------------------------ CNN classifiers
def _conv_bn(nn, cin, cout, k=3, s=1, groups=1, act=None):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act() if act else nn.ReLU(inplace=True))


def resnet_like():
    """ResNet-18-like: BasicBlocks [2, 2, 2, 2] at widths 16-128."""
    nn = _nn()

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.a = _conv_bn(nn, cin, cout, 3, s)
            self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = nn.Identity() if s == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return (self.b(self.a(x)) + self.skip(x)).relu()

    layers, cin = [_conv_bn(nn, 3, 16, 3, 1)], 16
    for cout, s in ((16, 1), (32, 2), (64, 2), (128, 2)):
        layers += [Block(cin, cout, s), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def _inverted(nn, cin, cout, s, t, act=None, se=False):
    class IR(nn.Module):
        def __init__(self):
            super().__init__()
            hid = cin * t
            self.body = nn.Sequential(
                *([_conv_bn(nn, cin, hid, 1, act=act)] if t != 1 else []),
                _conv_bn(nn, hid, hid, 3, s, groups=hid, act=act),
                *([SE(nn, hid)] if se else []),
                nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    return IR()


def SE(nn, c, r=4):
    class _SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, max(8, c // r), 1), nn.ReLU(),
                                    nn.Conv2d(max(8, c // r), c, 1), nn.Hardsigmoid())

        def forward(self, x):
            return x * self.fc(x)

    return _SE()


def mobilenetv2_like():
    """MobileNetV2-like: inverted residuals with linear bottlenecks, ReLU6, width 0.5."""
    nn = _nn()
    cfg = ((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2), (6, 32, 2, 2), (6, 48, 1, 1), (6, 80, 2, 2))
    layers, cin = [_conv_bn(nn, 3, 16, 3, 2, act=nn.ReLU6)], 16
    for t, c, n, s in cfg:
        for i in range(n):
            layers.append(_inverted(nn, cin, c, s if i == 0 else 1, t, act=nn.ReLU6))
            cin = c
    return nn.Sequential(*layers, _conv_bn(nn, cin, 320, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(320, 10))


def mobilenetv3_like():
    """MobileNetV3-small-like: hardswish, squeeze-excitation with hardsigmoid."""
    nn = _nn()
    cfg = ((1, 16, 2, True), (4, 24, 2, False), (3, 24, 1, False), (4, 40, 2, True), (6, 40, 1, True), (6, 48, 1, True),
           (6, 96, 2, True))
    layers, cin = [_conv_bn(nn, 3, 16, 3, 2, act=nn.Hardswish)], 16
    for t, c, s, se in cfg:
        layers.append(_inverted(nn, cin, c, s, t, act=nn.Hardswish, se=se))
        cin = c
    return nn.Sequential(*layers, _conv_bn(nn, cin, 288, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(288, 128), nn.Hardswish(), nn.Linear(128, 10))


def efficientnet_like():
    """EfficientNet-B0-like: MBConv with SE and SiLU."""
    nn = _nn()
    cfg = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 40, 2, 2), (6, 80, 2, 2), (6, 112, 1, 1))
    layers, cin = [_conv_bn(nn, 3, 24, 3, 2, act=nn.SiLU)], 24
    for t, c, n, s in cfg:
        for i in range(n):
            layers.append(_inverted(nn, cin, c, s if i == 0 else 1, t, act=nn.SiLU, se=True))
            cin = c
    return nn.Sequential(*layers, _conv_bn(nn, cin, 320, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(320, 10))


def vgg_like():
    """VGG-11-like at widths 16-64, with max pooling and a two-layer head."""
    nn = _nn()
    layers, cin = [], 3
    for v in (16, "M", 32, "M", 64, 64, "M", 64, 64, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))


def densenet_like():
    """DenseNet-like: dense blocks (concatenation) and transitions, growth 12."""
    torch = _seeded()
    nn = torch.nn

    class Dense(nn.Module):
        def __init__(self, cin, g=12, n=4):
            super().__init__()
            self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(cin + i * g), nn.ReLU(),
                                                      nn.Conv2d(cin + i * g, g, 3, padding=1, bias=False)) for i in range(n))

        def forward(self, x):
            for layer in self.layers:
                x = torch.cat([x, layer(x)], 1)
            return x

    def trans(c, co):
        return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, co, 1, bias=False), nn.AvgPool2d(2))

    return nn.Sequential(nn.Conv2d(3, 24, 3, padding=1, bias=False), Dense(24), trans(72, 36), Dense(36), trans(84, 42),
                         Dense(42), nn.BatchNorm2d(90), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(90, 10))


def squeezenet_like():
    """SqueezeNet-like: fire modules (squeeze 1x1, expand 1x1 and 3x3 concatenated)."""
    torch = _seeded()
    nn = torch.nn

    class Fire(nn.Module):
        def __init__(self, cin, s, e):
            super().__init__()
            self.s = nn.Sequential(nn.Conv2d(cin, s, 1), nn.ReLU())
            self.e1 = nn.Sequential(nn.Conv2d(s, e, 1), nn.ReLU())
            self.e3 = nn.Sequential(nn.Conv2d(s, e, 3, padding=1), nn.ReLU())

        def forward(self, x):
            x = self.s(x)
            return torch.cat([self.e1(x), self.e3(x)], 1)

    return nn.Sequential(nn.Conv2d(3, 32, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2), Fire(32, 8, 32), Fire(64, 8, 32),
                         nn.MaxPool2d(3, 2), Fire(64, 16, 64), Fire(128, 16, 64), nn.Dropout(0.5), nn.Conv2d(128, 10, 1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def shufflenet_like():
    """ShuffleNetV2-like: channel split, depthwise conv and channel shuffle (reshape/transpose)."""
    torch = _seeded()
    nn = torch.nn

    class Unit(nn.Module):
        def __init__(self, c):
            super().__init__()
            h = c // 2
            self.branch = nn.Sequential(_conv_bn(nn, h, h, 1), nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False),
                                        nn.BatchNorm2d(h), _conv_bn(nn, h, h, 1))

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.branch(b)], 1)
            n, c, hh, w = y.shape
            return y.reshape(n, 2, c // 2, hh, w).transpose(1, 2).reshape(n, c, hh, w)

    return nn.Sequential(_conv_bn(nn, 3, 48, 3, 2), nn.MaxPool2d(3, 2, 1), Unit(48), Unit(48), _conv_bn(nn, 48, 96, 3, 2),
                         Unit(96), Unit(96), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 10))


def convnext_like():
    """ConvNeXt-like: 7x7 depthwise conv, LayerNorm over channels (channels-last permute), GELU MLP, layer scale."""
    torch = _seeded()
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
            self.norm = nn.LayerNorm(c)
            self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))
            self.gamma = nn.Parameter(torch.full((c,), 0.1))

        def forward(self, x):
            y = self.dw(x).permute(0, 2, 3, 1)
            y = self.gamma * self.mlp(self.norm(y))
            return x + y.permute(0, 3, 1, 2)

    class Down(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.norm = nn.LayerNorm(cin)
            self.conv = nn.Conv2d(cin, cout, 2, 2)

        def forward(self, x):
            return self.conv(self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 32, 4, 4)
            self.body = nn.Sequential(Block(32), Down(32, 64), Block(64), Down(64, 128), Block(128))
            self.head = nn.Sequential(nn.LayerNorm(128), nn.Linear(128, 10))

        def forward(self, x):
            return self.head(self.body(self.stem(x)).mean((2, 3)))

    return Net()


def vit_like():
    """A hand-written ViT-tiny: 8x8 patches, class token, 4 pre-norm encoder layers (nn.TransformerEncoder)."""
    torch = _seeded()
    nn = torch.nn

    class ViT(nn.Module):
        def __init__(self, d=64, n=64):
            super().__init__()
            self.patch = nn.Conv2d(3, d, 8, 8)
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True,
                                               activation="gelu")
            self.enc = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, 10)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
            return self.head(self.norm(self.enc(t))[:, 0])

    return ViT()


# --------------------------------------------------------------------------------- dense prediction
def unet_like():
    """U-Net-like segmentation: 3 levels down, transposed-conv up, skip concatenation; 4 classes per pixel."""
    torch = _seeded()
    nn = torch.nn

    def block(cin, cout):
        return nn.Sequential(_conv_bn(nn, cin, cout), _conv_bn(nn, cout, cout))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.d1, self.d2, self.d3 = block(3, 16), block(16, 32), block(32, 64)
            self.pool = nn.MaxPool2d(2)
            self.u2, self.c2 = nn.ConvTranspose2d(64, 32, 2, 2), block(64, 32)
            self.u1, self.c1 = nn.ConvTranspose2d(32, 16, 2, 2), block(32, 16)
            self.out = nn.Conv2d(16, 4, 1)

        def forward(self, x):
            a = self.d1(x)
            b = self.d2(self.pool(a))
            c = self.d3(self.pool(b))
            b = self.c2(torch.cat([self.u2(c), b], 1))
            return self.out(self.c1(torch.cat([self.u1(b), a], 1)))

    return UNet()


def tiny_detector():
    """A one-stage detector (SSD/YOLO-like head on a small backbone) whose forward returns two tensors, ``boxes``
    [1, A, 4] and ``scores`` [1, A, C], the raw head before NMS: what a wrapper around a detector returning a list of
    dicts should return (NMS runs in the app)."""
    torch = _seeded()
    nn = torch.nn

    class Det(nn.Module):
        def __init__(self, classes=5, anchors=3):
            super().__init__()
            self.backbone = nn.Sequential(_conv_bn(nn, 3, 16, 3, 2), _conv_bn(nn, 16, 32, 3, 2), _conv_bn(nn, 32, 64, 3, 2),
                                          _conv_bn(nn, 64, 64, 3, 2))
            self.box = nn.Conv2d(64, anchors * 4, 3, padding=1)
            self.cls = nn.Conv2d(64, anchors * classes, 3, padding=1)
            self.c = classes

        def forward(self, x):
            f = self.backbone(x)
            n = f.shape[0]
            boxes = self.box(f).permute(0, 2, 3, 1).reshape(n, -1, 4)
            scores = self.cls(f).permute(0, 2, 3, 1).reshape(n, -1, self.c).sigmoid()
            return boxes, scores

    return Det()


def dict_detector():
    """What torchvision's detectors return, a list of per-image dicts (``[{"boxes": ..., "scores": ...}]``), whose
    tensors have no batch axis. edgeport refuses it at load time in one line (an output whose first axis is not the
    batch cannot be stacked or compared per sample; found by this zoo, which first saw it convert and then fail
    parity). :func:`tiny_detector` is the wrapper's answer (the raw head's tensors with the batch axis first, NMS in
    the app)."""
    torch = _seeded()
    det = tiny_detector()

    class Raw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.det = det

        def forward(self, x):
            b, s = self.det(x)
            return [{"boxes": b[0], "scores": s[0]}]

    return Raw()


# ------------------------------------------------------------------------------------------ audio and sequences
def m5_audio():
    """M5-like raw-waveform classifier: 1-D convs with large strides over 4,000 samples."""
    nn = _nn()
    return nn.Sequential(nn.Conv1d(1, 32, 80, 4), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4),
                         nn.Conv1d(32, 32, 3), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4),
                         nn.Conv1d(32, 64, 3), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(4),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, 12))


def gru_torch():
    """A two-layer GRU over 20 steps of 16 features, classifying from the last step."""
    torch = _seeded()
    nn = torch.nn

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(16, 32, num_layers=2, batch_first=True)
            self.fc = nn.Linear(32, 5)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    return G()


# ------------------------------------------------------------------------------------------ Hugging Face
def _hf(cls_name: str, cfg_name: str, **cfg):
    _seeded()
    import transformers

    config = getattr(transformers, cfg_name)(**cfg)
    model = getattr(transformers, cls_name)(config)
    return model.eval()


_TEXT = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=64)


def hf_bert():
    return _hf("BertModel", "BertConfig", **_TEXT)


def hf_distilbert():
    return _hf("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
               max_position_embeddings=64)


def hf_roberta():
    return _hf("RobertaModel", "RobertaConfig", **{**_TEXT, "max_position_embeddings": 66})


def hf_gpt2():
    """A GPT-2 decoder (language-model head: logits per token)."""
    return _hf("GPT2LMHeadModel", "GPT2Config", vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64,
               use_cache=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def hf_t5_encoder():
    return _hf("T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)


def hf_vit():
    return _hf("ViTModel", "ViTConfig", image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=128)


def hf_mobilevit():
    return _hf("MobileViTForImageClassification", "MobileViTConfig", image_size=64, num_labels=10,
               hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 16, 24, 32, 48, 64, 160], num_attention_heads=2)


def hf_whisper_encoder():
    """Whisper's audio encoder: 80 log-mel bins x 128 frames (max_source_positions 64, after the stride-2 conv)."""
    return _hf("WhisperModel", "WhisperConfig", vocab_size=VOCAB, d_model=64, encoder_layers=2,
               encoder_attention_heads=4, encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=4,
               decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=64, max_target_positions=64,
               pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1).get_encoder()


def hf_wav2vec2():
    """A Wav2Vec2 encoder on 4,000 raw samples (conv feature extractor + 2 transformer layers)."""
    return _hf("Wav2Vec2Model", "Wav2Vec2Config", vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32, 32), conv_stride=(5, 4, 4),
               conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
               do_stable_layer_norm=True, feat_extract_norm="layer")


# ------------------------------------------------------------------------------------------ Keras files
def keras_models() -> dict:
    """name -> builder of each Keras model in the zoo (random weights, seeded)."""
    import keras

    A = keras.applications

    def rnn(layer):
        def build():
            return keras.Sequential([keras.Input((20, 16), name="x"), layer(32), keras.layers.Dense(5)], name="rnn")
        return build

    def conv1d():
        L = keras.layers
        return keras.Sequential([keras.Input((4000, 1), name="wave"), L.Conv1D(32, 80, strides=4, activation="relu"),
                                 L.MaxPooling1D(4), L.Conv1D(32, 3, activation="relu"), L.MaxPooling1D(4),
                                 L.Conv1D(64, 3, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(12)],
                                name="conv1d_audio")

    def app(fn, **kw):
        return lambda: fn(weights=None, input_shape=(64, 64, 3), classes=10, **kw)

    return {
        "keras-mobilenetv2": app(A.MobileNetV2, alpha=0.35),
        "keras-mobilenetv3small": app(A.MobileNetV3Small, alpha=0.75, include_preprocessing=False),
        "keras-efficientnetb0": app(A.EfficientNetB0, include_top=True),
        "keras-resnet50": app(A.ResNet50),
        "keras-densenet121": app(A.DenseNet121),
        "keras-nasnetmobile": app(A.NASNetMobile),
        "keras-lstm": rnn(keras.layers.LSTM),
        "keras-gru": rnn(keras.layers.GRU),
        "keras-conv1d-audio": conv1d,
    }


def write_keras(folder: Path = KERAS_DIR) -> list[Path]:
    """Write each Keras model once (a rewrite would change the file's bytes, and with them the sweep's cache keys)."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, build in keras_models().items():
        p = folder / f"{name}.keras"
        if not p.is_file():
            keras.utils.set_random_seed(0)
            tmp = p.with_name(p.stem + ".part.keras")
            build().save(str(tmp))
            tmp.replace(p)
            print(f"wrote {p}", file=sys.stderr)
        out.append(p)
    return out


def write_tokens(folder: Path = DATA_DIR, n: int = 96) -> Path:
    """tokens.npz: input_ids and attention_mask, n rows of SEQ tokens under VOCAB (the last quarter of each row
    padded), for every text model of the zoo; split by convert into calibration and probe rows."""
    import numpy as np

    p = folder / "tokens.npz"
    if p.is_file():
        return p
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, VOCAB, (n, SEQ)).astype(np.int64)
    mask = np.ones((n, SEQ), np.int64)
    lens = rng.integers(SEQ // 2, SEQ + 1, n)
    for i, k in enumerate(lens):
        ids[i, k:], mask[i, k:] = 0, 0
    np.savez(p, input_ids=ids, attention_mask=mask)
    return p


# calibration sets of random normal rows (seeded) for the float-input models; convert gives each file's last
# quarter to the parity probe and calibrates on the rest
FLOAT_SETS = {"img_nchw": (3, 64, 64), "img_nhwc": (64, 64, 3), "wave_1x4000": (1, 4000), "wave_4000": (4000,),
              "wave_4000x1": (4000, 1), "seq_20x16": (20, 16), "mel_80x128": (80, 128)}


def write_data(folder: Path = DATA_DIR, n: int = 80) -> list[Path]:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    out = [write_tokens(folder)]
    for i, (name, shape) in enumerate(FLOAT_SETS.items()):
        p = folder / f"{name}.npz"
        if not p.is_file():
            np.savez(p, x=np.random.default_rng(i).standard_normal((n, *shape)).astype(np.float32))
        out.append(p)
    return out


if __name__ == "__main__":
    write_data()
    write_keras()
