"""Session fixtures: artifacts and reports are built once per session, not once per test."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgeport.registry import matrix  # noqa: E402

# Built-in model of each framework, and its input shape: the one table of shapes.
BUILTIN = {"torch": ("builtin:simplecnn-torch", (1, 1, 28, 28)), "keras": ("builtin:simplecnn-keras", (1, 28, 28, 1))}


def heldout_digits(layout: str):
    """(x in the model layout, y) of the held-out digits, preprocessed as the manifests say."""
    from edgeport.demo.datasets import digits_as_float

    return digits_as_float("heldout", layout)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Every registered (framework, target, recipe) converted from its built-in model, once."""
    from edgeport.convert import convert

    out = tmp_path_factory.mktemp("artifacts")
    by_fw: dict[str, list[str]] = {}
    for t, c in matrix():
        by_fw.setdefault(c.framework, []).append(t.name)
    for fw, targets in sorted(by_fw.items()):
        convert(BUILTIN[fw][0], sorted(targets), ["all"], out)
    return out


@pytest.fixture(scope="session")
def manifests(artifacts):
    from edgeport.manifest import Manifest, find_manifests

    return {m.name: m for m in (Manifest.read(p) for p in find_manifests([artifacts]))}


@pytest.fixture(scope="session")
def native_report(artifacts, tmp_path_factory):
    from edgeport.config import EvaluateOptions
    from edgeport.evaluate import evaluate

    out = tmp_path_factory.mktemp("report")
    return evaluate([artifacts], EvaluateOptions(threads=("1", "all")), out=out, quick=True), out


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Playwright's sync API allows one driver per thread)."""
    from playwright.sync_api import sync_playwright

    from edgeport.web.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def browser_report(artifacts, browser):
    """The page's own benchmark mode in headless Chromium, over every web artifact (quick timing)."""
    from edgeport.web.browser import run_page_benchmark

    return run_page_benchmark(artifacts, quick=True, backends="cpu,wasm,webgl,webgpu", browser=browser)


@pytest.fixture(scope="session")
def float_accuracy():
    from edgeport.demo import models

    return {
        "builtin:simplecnn-torch": models.heldout_accuracy_torch(models.trained_torch()[0]),
        "builtin:simplecnn-keras": models.heldout_accuracy_keras(models.trained_keras()[0]),
    }
