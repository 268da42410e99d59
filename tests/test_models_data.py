import numpy as np
import pytest

from edgeport.demo import datasets as dat


def test_digits_split_is_fixed_and_disjoint():
    tr, held = dat.digits("train"), dat.digits("heldout")
    assert (len(tr.y), len(held.y)) == (1437, 360)
    assert tr.pixels.shape[1:] == (28, 28) and tr.pixels.dtype == np.uint8
    a, b = dat._digits_split_indices()
    assert not set(a) & set(b)
    # Stratified: every class in the held-out set.
    assert set(held.y.tolist()) == set(range(10))
    # The same split every call (and in every process: seeded).
    assert np.array_equal(dat.digits("heldout").pixels, held.pixels)


def test_upsampled_digits_keep_their_ink():
    held = dat.digits("heldout")
    assert held.pixels.max() == 255 and held.pixels.min() == 0
    assert 0.15 < (held.pixels > 64).mean() < 0.6


def test_builtin_layers_are_exactly_the_listings():
    import torch.nn as nn

    from edgeport.demo.models import build_keras, build_torch

    t = build_torch()
    mods = [m for m in t.modules() if not isinstance(m, type(t))]
    assert [type(m).__name__ for m in mods] == ["Conv2d", "ReLU", "MaxPool2d", "Linear"]
    conv, fc = mods[0], mods[3]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (1, 32, (3, 3), (1, 1))
    assert (fc.in_features, fc.out_features) == (32 * 14 * 14, 10)
    assert isinstance(mods[2], nn.MaxPool2d) and mods[2].kernel_size == 2

    k = build_keras()
    assert [type(l).__name__ for l in k.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert k.layers[0].filters == 32 and k.layers[0].kernel_size == (3, 3) and k.layers[0].activation.__name__ == "relu"
    assert k.layers[3].units == 10
    assert tuple(k.inputs[0].shape) == (None, 28, 28, 1)


def test_float_accuracy_at_least_97(float_accuracy):
    for name, acc in float_accuracy.items():
        assert acc >= 0.97, f"{name}: held-out accuracy {acc:.4f} < 0.97"


@pytest.mark.slow
def test_training_is_deterministic(tmp_path, monkeypatch):
    """Retrain both models in an empty cache: the weights are bit-identical to the cached ones."""
    from safetensors.numpy import load_file

    from edgeport.demo import models

    _, cached_t = models.trained_torch()
    cached_k_model, _ = models.trained_keras()
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path))
    _, fresh_t = models.trained_torch()
    assert fresh_t.parent == tmp_path
    a, b = load_file(str(cached_t)), load_file(str(fresh_t))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    fresh_k_model, fresh_k = models.trained_keras()
    assert fresh_k.parent == tmp_path
    for wa, wb in zip(cached_k_model.get_weights(), fresh_k_model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
