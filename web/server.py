"""`edgeport serve`: the demo page, the vendored JS runtimes, the artifacts and the held-out data.

Loopback by default; refuses path traversal (encoded too); no directory listings; `.wasm` as application/wasm.
Python's ThreadingHTTPServer is enough: routing is a fixed table of roots, and every path is resolved and
checked against its root before any file is opened.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import mimetypes
import posixpath
import socket
import sys
import threading
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgeport.errors import InputError
from edgeport.manifest import SUFFIX, Manifest

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
NODE_MODULES = WEB / "node_modules"
# Only these npm packages are served.
VENDORED = ("@tensorflow", "@litertjs")
TYPES = {".wasm": "application/wasm", ".json": "application/json", ".js": "text/javascript", ".mjs": "text/javascript",
         ".html": "text/html; charset=utf-8", ".css": "text/css", ".tflite": "application/octet-stream",
         ".bin": "application/octet-stream", ".pte": "application/octet-stream", ".svg": "image/svg+xml",
         ".map": "application/json"}


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=4)
def _heldout_json(data: str) -> bytes:
    from edgeport import data as dat

    if not dat.is_builtin(data):
        raise InputError(f"serve --data {data!r}: the page's benchmark mode takes builtin:digits only")
    held = dat.digits("heldout")
    return json.dumps({
        "name": f"{dat.BUILTIN_DIGITS}:heldout", "n": int(len(held.y)), "shape": list(held.pixels.shape[1:]),
        "pixels_b64": base64.b64encode(held.pixels.tobytes()).decode(), "y": held.y.tolist(),
    }).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "edgeport"
    artifacts: Path = Path("artifacts")
    data: str = "builtin:digits"
    quiet = True

    def log_message(self, fmt, *args):  # noqa: N802
        if not self.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # Cross-origin isolation: finer performance.now() for latency figures, and SharedArrayBuffer for wasm threads.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _deny(self, status=HTTPStatus.FORBIDDEN, why="forbidden") -> None:
        self._send(status, (why + "\n").encode())

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def do_GET(self):  # noqa: N802
        raw = urlsplit(self.path).path
        # Decode until stable, so %252e%252e and friends cannot smuggle '..' past the check.
        path = raw
        for _ in range(3):
            path = unquote(path)
        parts = path.split("/")
        if ".." in parts or "\\" in path or "\x00" in path:
            return self._deny()
        if path in ("/", "/index.html"):
            return self._file(STATIC, "index.html")
        if path == "/api/manifests":
            return self._manifests()
        if path == "/api/heldout":
            try:
                return self._send(200, _heldout_json(self.data), "application/json")
            except InputError as e:
                return self._send(400, str(e).encode())
        for prefix, root in (("/static/", STATIC), ("/artifacts/", self.artifacts), ("/vendor/", NODE_MODULES)):
            if path.startswith(prefix):
                rel = path[len(prefix):]
                if prefix == "/vendor/" and not rel.startswith(VENDORED):
                    return self._deny(HTTPStatus.NOT_FOUND, "not found")
                return self._file(root, rel)
        return self._deny(HTTPStatus.NOT_FOUND, "not found")

    def _file(self, root: Path, rel: str) -> None:
        root = root.resolve()
        target = (root / posixpath.normpath(rel).lstrip("/")).resolve()
        if target != root and root not in target.parents:
            return self._deny()
        if not target.is_file():  # directories are never listed
            return self._deny(HTTPStatus.NOT_FOUND, "not found")
        ctype = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), ctype)

    def _manifests(self) -> None:
        out = []
        for p in sorted(self.artifacts.glob("*" + SUFFIX)):
            try:
                m = Manifest.read(p)
            except Exception:
                continue
            d = json.loads(m.to_json())
            d["url"] = "/artifacts/" + m.entry
            d["bytes"] = m.total_bytes
            out.append(d)
        self._send(200, json.dumps(out).encode(), "application/json")


def make_server(artifacts: str | Path, host: str = "127.0.0.1", port: int = 8765, *, data: str = "builtin:digits",
                allow_remote: bool = False) -> ThreadingHTTPServer:
    art = Path(artifacts)
    if not art.is_dir():
        raise InputError(f"artifacts folder not found: {art}; run `edgeport convert ... --out {art}` or `edgeport demo` first")
    if not is_loopback(host) and not allow_remote:
        raise InputError(f"refusing to bind {host}: it is not a loopback address; pass --host {host} explicitly to expose the demo")
    if not (NODE_MODULES / "@tensorflow" / "tfjs").is_dir():
        raise InputError(f"JS runtimes are not installed in {NODE_MODULES}; run `npm ci --prefix {WEB}` (or ./run test)")
    handler = type("BoundHandler", (Handler,), {"artifacts": art.resolve(), "data": data})
    cls = ThreadingHTTPServer
    if ":" in host:
        cls = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    try:
        return cls((host, port), handler)
    except OSError as e:
        raise InputError(f"cannot bind {host}:{port} ({e.strerror}); pick another --port") from None


def start_background(artifacts, host="127.0.0.1", port=0, **kw) -> tuple[ThreadingHTTPServer, str]:
    srv = make_server(artifacts, host, port, **kw)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    h, p = srv.server_address[:2]
    return srv, f"http://{'[' + h + ']' if ':' in h else h}:{p}/"


def serve(artifacts, host: str | None = None, port: int = 8765, data: str = "builtin:digits") -> int:
    explicit = host is not None
    host = host or "127.0.0.1"
    srv = make_server(artifacts, host, port, data=data, allow_remote=explicit)
    if not is_loopback(host):
        print(f"edgeport: WARNING: serving on {host}:{port}, reachable from other machines", file=sys.stderr)
    h, p = srv.server_address[:2]
    print(f"edgeport: serving {Path(artifacts).resolve()} at http://{h}:{p}/  (Ctrl-C to stop)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0
