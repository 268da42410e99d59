"""The demo server: loopback by default, no traversal, no listings, the right content types."""

import http.client

import pytest

from edgeport.errors import InputError
from edgeport.web.server import make_server, start_background


@pytest.fixture(scope="module")
def server(artifacts):
    srv, url = start_background(artifacts)
    host, port = srv.server_address[:2]
    yield host, port
    srv.shutdown()
    srv.server_close()


def get(server, path):
    c = http.client.HTTPConnection(*server, timeout=10)
    c.request("GET", path)  # sent as-is: no client-side normalisation of '..'
    r = c.getresponse()
    body = r.read()
    return r.status, r.getheader("Content-Type"), body


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/static/../../pyproject.toml", "/artifacts/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/%252e%252e/%252e%252e/pyproject.toml",
    "/vendor/@tensorflow/../../server.py", "/artifacts/..%2f..%2fpyproject.toml", "/static/..\\..\\pyproject.toml",
])
def test_traversal_is_refused(server, path):
    status, _, body = get(server, path)
    assert status in (403, 404), path
    assert b"[project]" not in body and b"root:" not in body


def test_no_directory_listing(server):
    for path in ("/artifacts/", "/static/", "/vendor/@tensorflow/", "/artifacts/simplecnn-keras.fp32.tfjs/"):
        status, _, _ = get(server, path)
        assert status == 404, path


def test_content_types(server):
    status, ctype, body = get(server, "/vendor/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm")
    assert status == 200 and ctype == "application/wasm" and body[:4] == b"\0asm"
    status, ctype, _ = get(server, "/vendor/@litertjs/core/wasm/litert_wasm_internal.wasm")
    assert status == 200 and ctype == "application/wasm"
    status, ctype, body = get(server, "/artifacts/simplecnn-keras.fp32.tfjs/model.json")
    assert status == 200 and ctype == "application/json" and b"graph-model" in body
    status, ctype, _ = get(server, "/api/manifests")
    assert status == 200 and ctype == "application/json"
    status, ctype, _ = get(server, "/")
    assert status == 200 and ctype.startswith("text/html")
    status, _, _ = get(server, "/vendor/left-pad/index.js")
    assert status == 404  # only the vendored runtimes are served from node_modules


def test_loopback_by_default(artifacts):
    srv = make_server(artifacts, port=0)
    assert srv.server_address[0] == "127.0.0.1"
    srv.server_close()
    with pytest.raises(InputError, match="refusing to bind 0.0.0.0: it is not a loopback address; pass --host 0.0.0.0"):
        make_server(artifacts, host="0.0.0.0", port=0)
    srv = make_server(artifacts, host="0.0.0.0", port=0, allow_remote=True)  # what an explicit --host does
    srv.server_close()


def test_explicit_host_warns(artifacts, capsys, monkeypatch):
    from edgeport.web import server as s

    monkeypatch.setattr(s.ThreadingHTTPServer, "serve_forever", lambda self: None)
    assert s.serve(artifacts, host="0.0.0.0", port=0) == 0
    assert "WARNING: serving on 0.0.0.0" in capsys.readouterr().err


def test_missing_chromium_is_a_clear_error(artifacts, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "EDGEPORT_CHROMIUM": "/nonexistent/chrome"}
    p = subprocess.run([sys.executable, "-m", "edgeport", "evaluate", str(artifacts / "simplecnn-keras.fp32.tfjs.manifest.json"),
                        "--browser", "chromium", "--threads", "1", "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=env)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("edgeport:")]
    assert p.returncode == 2
    assert lines == ["edgeport: error: EDGEPORT_CHROMIUM=/nonexistent/chrome does not exist; install Chromium "
                     "(apt-get install chromium, or `playwright install chromium`) or point EDGEPORT_CHROMIUM at its executable"]
