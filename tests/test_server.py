"""The demo server: loopback by default, no traversal, no listings, the right content types, the page's API."""

import http.client
import json

import numpy as np
import pytest

from edgeport.errors import InputError
from edgeport.manifest import Manifest, file_entries
from edgeport.web.server import BENCH_QUICK, TASK_FACTS, make_server, start_background, unpack


def _manifest(folder, name, target, entry, files, inputs, preprocessing, task="classification"):
    sig = {"inputs": inputs, "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, 10], "role": "logits",
                                          "binding": "Identity:0"}]}
    m = Manifest(name=name, source={"framework": "keras", "model": "test"}, target=target, recipe="fp32", entry=entry,
                 files=file_entries(folder, files), signature=sig, preprocessing=preprocessing,
                 parity={"status": "pending"}, probe={}, task=task)
    m.write(folder)


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    """Hand-written manifests (no conversion): a TF.js image classifier, a .pte (no browser adapter), a broken one."""
    d = tmp_path_factory.mktemp("served")
    (d / "img.fp32.tfjs").mkdir()
    (d / "img.fp32.tfjs" / "model.json").write_text('{"format": "graph-model"}')
    image = [{"name": "image", "dtype": "float32", "shape": [1, 28, 28, 1], "role": "image", "layout": "NHWC",
              "binding": "image"}]
    pre = {"kind": "image", "scale": 1 / 255, "offset": 0.0, "layout": "NHWC", "input": "image"}
    _manifest(d, "img.fp32.tfjs", "tfjs", "img.fp32.tfjs/model.json", ["img.fp32.tfjs/model.json"], image, pre)
    (d / "img.fp32.pte").write_bytes(b"pte")
    _manifest(d, "img.fp32.pte", "pte", "img.fp32.pte", ["img.fp32.pte"], image, pre)
    ids = [{"name": "ids", "dtype": "int64", "shape": [1, 6], "role": "token_ids", "binding": "ids"}]
    (d / "ids.fp32.tfjs.json").write_text("{}")
    _manifest(d, "ids.fp32.tfjs", "tfjs", "ids.fp32.tfjs.json", ["ids.fp32.tfjs.json"], ids, {"kind": "tensor"})
    (d / "broken.fp32.tflite.manifest.json").write_text("{not json")
    return d


@pytest.fixture(scope="module")
def server(art):
    srv, url = start_background(art, bench=BENCH_QUICK)
    host, port = srv.server_address[:2]
    yield host, port
    srv.shutdown()
    srv.server_close()


def get(server, path):
    c = http.client.HTTPConnection(*server, timeout=60)
    c.request("GET", path)  # sent as-is: no client-side normalisation of '..'
    r = c.getresponse()
    body = r.read()
    return r.status, r.getheader("Content-Type"), body


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/static/../../pyproject.toml", "/artifacts/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/%252e%252e/%252e%252e/pyproject.toml",
    "/vendor/@tensorflow/../../server.py", "/artifacts/..%2f..%2fpyproject.toml", "/static/..\\..\\pyproject.toml",
    "/api/data/..%2f..%2fpyproject", "/api/probe/%2e%2e", "/vendor/@tensorflowx/../@tensorflow/tfjs/package.json",
])
def test_traversal_is_refused(server, path):
    status, _, body = get(server, path)
    assert status in (403, 404), path
    assert b"[project]" not in body and b"root:" not in body


def test_no_directory_listing(server):
    for path in ("/artifacts/", "/static/", "/static/adapters/", "/vendor/@tensorflow/", "/artifacts/img.fp32.tfjs/"):
        status, _, _ = get(server, path)
        assert status == 404, path


def test_content_types(server):
    status, ctype, body = get(server, "/vendor/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm")
    assert status == 200 and ctype == "application/wasm" and body[:4] == b"\0asm"
    status, ctype, _ = get(server, "/vendor/@litertjs/core/wasm/litert_wasm_internal.wasm")
    assert status == 200 and ctype == "application/wasm"
    status, ctype, body = get(server, "/artifacts/img.fp32.tfjs/model.json")
    assert status == 200 and ctype == "application/json" and b"graph-model" in body
    for path in ("/static/adapters/tfjs.js", "/static/adapters/litertjs.js", "/static/app.js", "/static/tensors.js"):
        status, ctype, _ = get(server, path)
        assert status == 200 and ctype == "text/javascript", path
    status, ctype, _ = get(server, "/")
    assert status == 200 and ctype.startswith("text/html")
    status, _, _ = get(server, "/vendor/left-pad/index.js")
    assert status == 404  # only the vendored runtimes are served from node_modules


def test_cross_origin_isolation_headers(server):
    c = http.client.HTTPConnection(*server, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    assert r.getheader("Cross-Origin-Opener-Policy") == "same-origin"
    assert r.getheader("Cross-Origin-Embedder-Policy") == "require-corp"


def test_manifest_listing(server):
    status, ctype, body = get(server, "/api/manifests")
    assert status == 200 and ctype == "application/json"
    d = json.loads(body)
    assert sorted(m["name"] for m in d["manifests"]) == ["ids.fp32.tfjs", "img.fp32.tfjs"]  # the .pte has no adapter
    img = next(m for m in d["manifests"] if m["name"] == "img.fp32.tfjs")
    assert img["adapter"] == "tfjs" and img["url"] == "/artifacts/img.fp32.tfjs/model.json" and img["bytes"] > 0
    assert img["signature"]["inputs"][0]["binding"] == "image"
    assert [p["file"] for p in d["problems"]] == ["broken.fp32.tflite.manifest.json"]
    assert "not valid JSON" in d["problems"][0]["error"]


def test_config(server):
    d = json.loads(get(server, "/api/config")[2])
    assert d == {"data": "builtin:digits", "bench": BENCH_QUICK, "tasks": TASK_FACTS}  # tests/test_tasks.py reads tasks
    with pytest.raises(InputError, match="bench settings minruns are unknown"):
        make_server(".", port=0, bench={"minruns": 3})


def test_data_endpoint(server, art):
    status, ctype, body = get(server, "/api/data/img.fp32.tfjs")
    assert status == 200 and ctype == "application/octet-stream"
    head, arrays, labels = unpack(body)
    assert head["name"] == "builtin:digits:heldout" and head["n"] == 360 == len(labels)
    x = arrays["image"]
    assert x.dtype == np.float32 and x.shape == (360, 28, 28, 1) and 0 <= x.min() and x.max() <= 1
    from edgeport.data import load_dataset

    ds = load_dataset("builtin:digits", "heldout")
    np.testing.assert_array_equal(labels, ds.y)
    np.testing.assert_allclose(x[..., 0], ds.pixels.astype(np.float32) * np.float32(1 / 255))
    assert get(server, "/api/data/img.fp32.tfjs")[2] == body  # cached, same bytes
    status, _, body = get(server, "/api/data/ids.fp32.tfjs")  # images for a token model: 400, one line
    assert status == 400 and b"holds images" in body and body.count(b"\n") == 1
    assert get(server, "/api/data/missing.fp32.tfjs")[0] == 404
    assert get(server, "/api/probe/img.fp32.tfjs")[0] == 404  # no probe sidecar


def test_loopback_by_default(art):
    srv = make_server(art, port=0)
    assert srv.server_address[0] == "127.0.0.1"
    srv.server_close()
    with pytest.raises(InputError, match="refusing to bind 0.0.0.0: it is not a loopback address; pass --host 0.0.0.0"):
        make_server(art, host="0.0.0.0", port=0)
    srv = make_server(art, host="0.0.0.0", port=0, allow_remote=True)  # what an explicit --host does
    srv.server_close()


def test_explicit_host_warns(art, capsys, monkeypatch):
    from edgeport.web import server as s

    monkeypatch.setattr(s.ThreadingHTTPServer, "serve_forever", lambda self: None)
    assert s.serve(art, host="0.0.0.0", port=0) == 0
    assert "WARNING: serving on http://0.0.0.0:" in capsys.readouterr().err


def test_missing_chromium_is_a_clear_error(monkeypatch):
    from edgeport.web.browser import find_chromium

    monkeypatch.setenv("EDGEPORT_CHROMIUM", "/nonexistent/chrome")
    with pytest.raises(InputError) as e:
        find_chromium()
    assert str(e.value) == ("EDGEPORT_CHROMIUM=/nonexistent/chrome does not exist; install Chromium (apt-get install"
                            " chromium, or `playwright install chromium`) or point EDGEPORT_CHROMIUM at its executable")
