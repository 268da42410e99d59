"""The two SimpleCNNs of the classic TensorFlow-vs-PyTorch comparison, trained on builtin:digits.

Training is deterministic for a seed and cached (safetensors for torch, .keras for Keras) so that a second run
does not retrain.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from edgeport import defaults
from edgeport.fileio import atomic_path
from edgeport.console import log as _log
from edgeport.fileio import sha256_file
from edgeport.registry import register_source
from edgeport.signature import Signature, TensorSpec
from edgeport.sources import Source

from .datasets import DIGITS, DIGITS_PREPROCESSING, digits_as_float, shifted_training_set

TRAIN_CONFIG = {"epochs": 6, "batch": 32, "lr": 1e-3, "shift": 3, "seed": defaults.SEED, "version": 2}



class _TrainLock:
    """One process trains a built-in at a time: two that both found no cached file (a sweep's parallel jobs) would
    each save their own .keras, whose bytes differ (zip timestamps), and a converter worker of one would find the
    other's file under the sha256 it was given."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()  # closing releases the lock


def _cache_key(framework: str, lib_version: str) -> str:
    blob = json.dumps({"fw": framework, "lib": lib_version, **TRAIN_CONFIG}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------- PyTorch
def build_torch():
    import torch.nn as nn

    class SimpleCNN(nn.Module):
        """Conv2d(1,32,3,padding=1), ReLU, MaxPool2d(2), flatten, Linear(32*14*14, 10). Input NCHW 1x28x28."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 32, 3, padding=1)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(32 * 14 * 14, 10)

        def forward(self, x):
            x = self.pool(self.relu(self.conv(x)))
            return self.fc(x.flatten(1))

    return SimpleCNN()


def torch_weights_path() -> Path:
    import torch

    return defaults.cache_dir() / f"simplecnn-torch-{_cache_key('torch', torch.__version__)}.safetensors"


def trained_torch():
    """The trained PyTorch SimpleCNN (eval mode) and the path of its cached safetensors weights."""
    from safetensors.torch import load_file

    path = torch_weights_path()
    model = build_torch()
    with _TrainLock(path):
        if not path.is_file():
            _train_torch(path)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, path


def _train_torch(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    _log("training builtin:simplecnn-torch on builtin:digits ...")
    torch.manual_seed(TRAIN_CONFIG["seed"])
    torch.use_deterministic_algorithms(True)
    model = build_torch()
    tx, ty = shifted_training_set("NCHW", TRAIN_CONFIG["shift"])
    x = torch.from_numpy(tx)
    y = torch.from_numpy(ty)
    opt = torch.optim.Adam(model.parameters(), lr=TRAIN_CONFIG["lr"])
    gen = torch.Generator().manual_seed(TRAIN_CONFIG["seed"])
    model.train()
    for _ in range(TRAIN_CONFIG["epochs"]):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), TRAIN_CONFIG["batch"]):
            b = perm[i : i + TRAIN_CONFIG["batch"]]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            loss.backward()
            opt.step()
    torch.use_deterministic_algorithms(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    _log(f"trained in {time.perf_counter() - t0:.1f}s -> {path}")


# ------------------------------------------------------------------------------------------------- Keras
def build_keras():
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="image"),
            keras.layers.Conv2D(32, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ],
        name="simplecnn_keras",
    )


def keras_model_path() -> Path:
    import tensorflow as tf

    return defaults.cache_dir() / f"simplecnn-keras-{_cache_key('keras', tf.__version__)}.keras"


def trained_keras():
    """The trained Keras SimpleCNN and the path of its cached .keras file (loaded with safe_mode=True)."""
    import keras
    import tensorflow as tf

    path = keras_model_path()
    with _TrainLock(path):
        if not path.is_file():
            _train_keras(path)
    return keras.models.load_model(str(path), safe_mode=True, compile=False), path


def _train_keras(path: Path) -> None:
    import keras
    import tensorflow as tf

    t0 = time.perf_counter()
    _log("training builtin:simplecnn-keras on builtin:digits ...")
    keras.utils.set_random_seed(TRAIN_CONFIG["seed"])
    tf.config.experimental.enable_op_determinism()
    model = build_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(TRAIN_CONFIG["lr"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    tx, ty = shifted_training_set("NHWC", TRAIN_CONFIG["shift"])
    model.fit(tx, ty, epochs=TRAIN_CONFIG["epochs"], batch_size=TRAIN_CONFIG["batch"],
              shuffle=True, verbose=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(str(tmp))
    _log(f"trained in {time.perf_counter() - t0:.1f}s -> {path}")


def heldout_accuracy_torch(model) -> float:
    import torch

    x, y = digits_as_float("heldout", "NCHW")
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    return float((logits.argmax(1) == y).mean())


def heldout_accuracy_keras(model) -> float:
    x, y = digits_as_float("heldout", "NHWC")
    logits = np.asarray(model(x, training=False))
    return float((logits.argmax(1) == y).mean())


# ------------------------------------------------------------------------------------------ registration
def _digits_source(framework: str, spec: str, model, path: Path, shape: tuple, layout: str, input_name: str) -> Source:
    sig = Signature((TensorSpec(input_name, "float32", shape, "image", layout),),
                    (TensorSpec("logits", "float32", (1, 10), "logits", labels=list(defaults.LABELS)),))
    return Source(framework, spec, spec.split(":")[1], sha256_file(path), model, sig, task="classification",
                  preprocessing={**DIGITS_PREPROCESSING, "layout": layout, "input": input_name}, default_data=DIGITS)


@register_source("builtin:simplecnn-torch")
def simplecnn_torch(spec: str) -> Source:
    m, path = trained_torch()
    return _digits_source("torch", spec, m, path, (1, 1, 28, 28), "NCHW", "x")


@register_source("builtin:simplecnn-keras")
def simplecnn_keras(spec: str) -> Source:
    m, path = trained_keras()
    return _digits_source("keras", spec, m, path, (1, 28, 28, 1), "NHWC", "image")
