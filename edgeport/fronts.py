"""Input fronts: preprocessing put inside the model at conversion (``convert --input-format``).

An Android ``Bitmap`` gives uint8 RGBA/RGB pixels, height x width x channels; most models take float NCHW or NHWC,
normalised. A front is a wrapper model in the source's own framework (a torch ``nn.Module`` / a Keras functional
model around the original) so that every converter sees one model and no converter needs to know about it:

- ``rgb-uint8-nhwc`` / ``rgba-uint8-nhwc``: uint8 ``[1, H, W, 3|4]`` pixels in (alpha dropped), then RGB-to-gray for
  a one-channel model, ``(x - mean) / std`` per channel (0-255 units, MediaPipe's convention) and the model's
  layout, all inside the graph;
- ``bert-ids-mask-segments``: a token model gets a third input ``token_type_ids`` (segment ids), because MediaPipe's
  BERT preprocessor (TextEmbedder, TextClassifier) feeds exactly three int32 tensors; ids stay ids (tokenization
  stays in the app, with the vocabulary in the bundle).

The front is applied after the source loads, in the parent and in every conversion worker alike (it holds no random
weights, so both build the same model). The manifest's signature then names the new inputs and ``preprocessing``
says what the front does.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np

from .errors import InputError, UnsupportedError
from .signature import Signature, TensorSpec

# ITU-R BT.601 luma weights: what an RGB-to-gray conversion on Android (ColorMatrix saturation 0) uses too.
LUMA = (0.299, 0.587, 0.114)
IMAGE_FORMATS = {"rgb-uint8-nhwc": 3, "rgba-uint8-nhwc": 4}
TOKEN_FORMATS = ("bert-ids-mask-segments",)
INPUT_FORMATS = (*IMAGE_FORMATS, *TOKEN_FORMATS)


def parse_norm(text: str | None, flag: str) -> tuple[float, ...] | None:
    """``--mean 127.5`` or ``--mean 123.7,116.3,103.5`` -> floats (0-255 pixel units)."""
    if text is None:
        return None
    try:
        vals = tuple(float(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise InputError(f"{flag} {text!r} is not a number or a comma list of 3; write e.g. {flag} 127.5") from None
    if len(vals) not in (1, 3) or not all(np.isfinite(vals)):
        raise InputError(f"{flag} {text!r} must be one value or three (R,G,B), in 0-255 pixel units; e.g. {flag} 127.5")
    if flag == "--std" and any(v <= 0 for v in vals):
        raise InputError(f"--std {text!r} must be positive (0-255 units: 127.5 maps pixels to [-1, 1])")
    return vals


def normalisation(pre: dict, mean: tuple | None, std: tuple | None, where: str) -> tuple[tuple, tuple]:
    """Mean/std in 0-255 units: from --mean/--std, else from the manifest's ``x * scale + offset``."""
    if (mean is None) != (std is None):
        raise InputError(f"{where}: give --mean and --std together (0-255 units, e.g. --mean 127.5 --std 127.5)")
    if mean is not None:
        return tuple(mean), tuple(std)
    if (pre or {}).get("kind") == "image" and "scale" in pre:
        scale, offset = float(pre["scale"]), float(pre.get("offset", 0.0))
        return (-offset / scale + 0.0,), (1.0 / scale,)
    raise InputError(f"{where}: the model's pixel normalisation is unknown; pass --mean M[,M,M] --std S[,S,S] in 0-255"
                     " pixel units (127.5/127.5 maps pixels to [-1, 1]; 0/255 to [0, 1])")


def apply_front(src, fmt: str | None, mean: tuple | None = None, std: tuple | None = None):
    """The Source with ``fmt``'s front in front of its model (None: the source unchanged)."""
    if not fmt:
        return src
    if fmt not in INPUT_FORMATS:
        raise InputError(f"unknown --input-format {fmt!r}; known: {', '.join(INPUT_FORMATS)}")
    if src.saved_model_dir is not None:
        raise UnsupportedError(f"{src.model_id}: --input-format needs a Keras model (.keras) or a PyTorch model, not a"
                               " SavedModel folder; convert the .keras file instead")
    if fmt in TOKEN_FORMATS:
        return _token_front(src, fmt)
    return _image_front(src, fmt, mean, std)


def _image_front(src, fmt: str, mean, std):
    img = src.signature.single_image
    if img is None or not img.is_float or img.shape[1 if img.layout == "NCHW" else 3] not in (1, 3):
        raise UnsupportedError(f"{src.model_id}: --input-format {fmt} puts an image front on a model with one float"
                               f" image input ([1,C,H,W] or [1,H,W,C], C 1 or 3); this one takes"
                               f" {src.signature.describe_inputs()}; token models keep int ids (use"
                               f" --input-format bert-ids-mask-segments for MediaPipe's BERT inputs)")
    nchw = img.layout == "NCHW"
    c_out, h, w = (img.shape[1], img.shape[2], img.shape[3]) if nchw else (img.shape[3], img.shape[1], img.shape[2])
    c_in = IMAGE_FORMATS[fmt]
    m, s = normalisation(src.preprocessing, mean, std, src.model_id)
    m3, s3 = (tuple(m) * 3)[:3] if len(m) == 1 else tuple(m), (tuple(s) * 3)[:3] if len(s) == 1 else tuple(s)
    if c_out == 1 and (len(set(m3)) > 1 or len(set(s3)) > 1):
        raise InputError(f"{src.model_id}: a one-channel model gets an RGB-to-gray front, so --mean/--std take one value,"
                         f" got mean {m} std {s}")
    # One affine map per output channel from the (alpha-dropped) RGB pixel: y_c = sum_i W[i, c] * x_i + b_c.
    if c_out == 1:
        weight = np.asarray(LUMA, np.float32)[:, None] / np.float32(s3[0])
        bias = np.asarray([-m3[0] / s3[0]], np.float32)
    else:
        weight = np.diag(1.0 / np.asarray(s3, np.float32)).astype(np.float32)
        bias = (-np.asarray(m3, np.float32) / np.asarray(s3, np.float32)).astype(np.float32)
    name = "pixels"
    spec = TensorSpec(name, "uint8", (1, h, w, c_in), "image", "NHWC")
    if src.framework == "torch":
        model = _TorchPixelFront.build(src.torch_module(), weight, bias, c_in, nchw)
    else:
        model = _keras_pixel_front(src.model, weight, bias, (h, w, c_in), nchw, name)
    pre = {"kind": "image", "pixels": f"uint8 {'RGBA' if c_in == 4 else 'RGB'} {h}x{w}, HWC (an Android Bitmap's bytes)",
           "scale": 1.0, "offset": 0.0, "layout": "NHWC", "channels": c_in, "dtype": "uint8", "input": name,
           "front": {"format": fmt, "mean": list(m3[: 1 if c_out == 1 else 3]), "std": list(s3[: 1 if c_out == 1 else 3]),
                     "color": "RGB-to-gray (BT.601 luma)" if c_out == 1 else "RGB", "model_layout": img.layout,
                     "model_input": f"{img.name}:{img.dtype}{list(img.shape)}"}}
    if (src.preprocessing or {}).get("kind") == "image" and "pixels" in src.preprocessing:
        pre["source_pixels"] = src.preprocessing["pixels"]
    return _with(src, model, Signature((spec,), src.signature.outputs), pre, f"input front {fmt}: uint8 pixels"
                 f" [1,{h},{w},{c_in}] in; {'gray, ' if c_out == 1 else ''}(x - {list(m3)}) / {list(s3)} and the"
                 f" {img.layout} layout inside the model")


def _token_front(src, fmt: str):
    names = src.signature.input_names
    roles = {t.role: t for t in src.signature.inputs}
    if set(roles) - {"token_ids", "attention_mask", "token_type_ids"} or "token_ids" not in roles or "attention_mask" not in roles:
        raise UnsupportedError(f"{src.model_id}: --input-format {fmt} is for a token model with input_ids and"
                               f" attention_mask; this one takes {src.signature.describe_inputs()}")
    if "token_type_ids" in roles:
        return src  # already the three BERT tensors
    if src.framework != "torch":
        raise UnsupportedError(f"{src.model_id}: --input-format {fmt} is implemented for PyTorch token models; add a"
                               " token_type_ids input to the Keras model instead")
    module = src.torch_module()
    params = inspect.signature(module.forward).parameters
    if "token_type_ids" not in params:
        raise UnsupportedError(f"{src.model_id}: its forward() has no token_type_ids parameter, so a segment-ids input"
                               " would be ignored; add `token_type_ids=None` to forward() and pass it to the encoder")
    ids = roles["token_ids"]
    spec = TensorSpec("token_type_ids", ids.dtype, ids.shape, "token_type_ids")
    from .binding import KeywordCall

    model = KeywordCall(module, [*names, "token_type_ids"])  # positional in, keywords to forward()
    pre = dict(src.preprocessing or {})
    if pre.get("kind") == "text":
        pre["inputs"] = {**pre.get("inputs", {}), "token_type_ids": "token_type_ids"}
    pre["front"] = {"format": fmt, "inputs": [*names, "token_type_ids"]}
    return _with(src, model, Signature((*src.signature.inputs, spec), src.signature.outputs), pre,
                 f"input front {fmt}: a token_type_ids input (segment ids, zeros for one sentence) beside"
                 f" {', '.join(names)}, the three tensors MediaPipe's BERT preprocessor feeds")


# The artifact name says which front it has, so that it never replaces the plain artifact of the same model.
NAME_SUFFIX = {"rgb-uint8-nhwc": "rgb8", "rgba-uint8-nhwc": "rgba8", "bert-ids-mask-segments": "bert3"}


def _with(src, model, sig: Signature, pre: dict, note: str):
    extras = {k: v for k, v in src.extras.items() if k != "exported_module"}
    return replace(src, model=model, signature=sig, preprocessing=pre, notes=[*src.notes, note], extras=extras,
                   name=f"{src.name}-{NAME_SUFFIX[pre['front']['format']]}")


class _TorchPixelFront:
    """Built lazily so that importing this module needs no torch."""

    @staticmethod
    def build(inner, weight: np.ndarray, bias: np.ndarray, c_in: int, nchw: bool):
        import torch

        class PixelFront(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner
                self.register_buffer("front_weight", torch.from_numpy(weight.copy()))
                self.register_buffer("front_bias", torch.from_numpy(bias.copy()))

            def forward(self, pixels):
                x = pixels[..., :3].to(torch.float32) if c_in == 4 else pixels.to(torch.float32)
                x = torch.matmul(x, self.front_weight) + self.front_bias
                if nchw:
                    x = x.permute(0, 3, 1, 2)
                return self.inner(x)

        return PixelFront().eval()


def _keras_pixel_front(inner, weight: np.ndarray, bias: np.ndarray, hwc: tuple, nchw: bool, name: str):
    import keras

    inp = keras.Input(hwc, batch_size=1, dtype="uint8", name=name)
    x = keras.layers.Rescaling(1.0, name="front_to_float")(inp)  # casts uint8 to float32
    # Keras has no channel-slicing layer that safe_mode loads: one 1x1 convolution with fixed weights drops alpha
    # (zero weights), makes gray and normalises.
    w = np.zeros((hwc[2], weight.shape[1]), np.float32)
    w[:3] = weight
    conv = keras.layers.Conv2D(weight.shape[1], 1, use_bias=True, name="front_normalise")
    y = conv(x)
    conv.set_weights([w[None, None], bias])
    if nchw:
        y = keras.layers.Permute((3, 1, 2), name="front_to_nchw")(y)
    return keras.Model(inp, inner(y), name=f"{inner.name}_front")
