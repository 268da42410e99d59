"""`edgeport serve`: the demo page, the vendored JS runtimes, the artifacts and their evaluation data.

Loopback by default; refuses path traversal (encoded too); no directory listings; `.wasm` as application/wasm;
cross-origin isolated (COOP/COEP). Python's ThreadingHTTPServer is enough: routing is a fixed table of roots, and
every path is resolved and checked against its root before any file is opened.

Endpoints (all GET):

- ``/`` the page; ``/static/...`` its files; ``/artifacts/...`` the artifacts folder; ``/vendor/...`` the npm
  packages of :data:`VENDORED` from ``web/node_modules``.
- ``/api/manifests`` -> ``{"manifests": [manifest + {url, bytes, adapter}], "problems": [{file, error}]}``: every
  manifest of the folder whose target has a browser adapter (``web/static/adapters/<adapter>.js``); manifests that
  cannot be read are listed under ``problems``.
- ``/api/config`` -> ``{"data": spec | null, "bench": {warmup, minRuns, minMs, maxRuns, threads}, "tasks": {name:
  facts}}``: what the page measures; ``threads`` lists the thread counts (positive integers, or ``"all"``: every
  core the browser reports), one benchmark pass each; ``tasks`` is the task registry's facts
  (:meth:`edgeport.tasks.Task.to_dict`: whether outputs score classes against labels, or are vectors compared by
  cosine, the budget flag and its default), so the page never names a task itself.
- ``/api/data/<artifact>`` -> the evaluation data as that artifact's model-ready inputs, packed (see :func:`pack`).
- ``/api/probe/<artifact>`` -> the artifact's parity-probe inputs (its ``.probe.npz`` sidecar), packed the same way.

The packed form: little-endian uint32 header length ``H``, then ``H`` bytes of UTF-8 JSON
``{name, n, tensors: [{name, dtype, shape: [N, ...], offset, bytes}], labels: {offset, bytes, dtype} | null}``,
then the raw little-endian arrays. Offsets count from the start of the body and are multiples of 8, so the page
views each array in place (``new Float32Array(body, offset, bytes / 4)``).
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
import posixpath
import re
import socket
import struct
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from edgeport.errors import EdgeportError, InputError, one_line
from edgeport.manifest import SUFFIX, Manifest
from edgeport.tasks import TASKS

TASK_FACTS = {n: t.to_dict() for n, t in TASKS.items()}

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
NODE_MODULES = WEB / "node_modules"


def _vendored() -> tuple[str, ...]:
    """The npm scopes / packages served under /vendor/ (nothing else in node_modules is reachable): those the page's
    web/package.json depends on, so a new browser adapter adds its runtime there and nowhere else."""
    deps = json.loads((WEB / "package.json").read_text()).get("dependencies", {})
    return tuple(sorted({d.split("/")[0] if d.startswith("@") else d for d in deps}))


VENDORED = _vendored()
# The web platform's own types; an artifact's files (.tflite, .onnx, weight shards ...) are served as bytes.
TYPES = {".wasm": "application/wasm", ".json": "application/json", ".js": "text/javascript", ".mjs": "text/javascript",
         ".html": "text/html; charset=utf-8", ".css": "text/css", ".svg": "image/svg+xml", ".map": "application/json"}
# The page's steady-state timing loop: `warmup` runs, then at least `minRuns` runs and `minMs` ms, at most `maxRuns`;
# once per thread count of `threads` (the evaluator passes its --threads, resolved, so that the browser rows sit at
# the native rows' thread counts).
# fallbacks: also measure the backends no site would ship where a better one runs (WebGL rendered in software by
# SwiftShader or llvmpipe, TF.js's plain-JS cpu kernels); False: a skipped row saying so (an adapter's setup() marks
# them with fallback: true)
BENCH_DEFAULT = {"warmup": 10, "minRuns": 100, "minMs": 2000, "maxRuns": 1000, "threads": [1, "all"], "fallbacks": True}
BENCH_QUICK = {"warmup": 3, "minRuns": 20, "minMs": 200, "maxRuns": 1000, "threads": [1, "all"], "fallbacks": True}
PACKED_TYPE = "application/octet-stream"
_NAME = re.compile(r"^[^/\\\x00]+$")


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------ packed tensors
def pack(name: str, arrays: dict[str, np.ndarray], labels: np.ndarray | None = None) -> bytes:
    """``{input name: (N, ...) array}`` (+ optional (N,) labels, sent as int32) -> the packed binary form."""
    items = [(k, np.ascontiguousarray(v)) for k, v in arrays.items()]
    if labels is not None:
        items.append(("\0labels", np.ascontiguousarray(np.asarray(labels), dtype="<i4")))
    n = len(items[0][1]) if items else 0
    entries, blobs = [], []
    for k, v in items:
        v = v.astype(v.dtype.newbyteorder("<"), copy=False) if v.dtype.byteorder == ">" else v
        entries.append({"name": k, "dtype": _dtype_name(v.dtype), "shape": list(v.shape), "bytes": int(v.nbytes)})
        blobs.append(v.tobytes())

    def header(start: int) -> bytes:
        off = start
        for e in entries:
            e["offset"] = off
            off += -(-e["bytes"] // 8) * 8
        tensors = [e for e in entries if e["name"] != "\0labels"]
        lab = next(({"offset": e["offset"], "bytes": e["bytes"], "dtype": e["dtype"]} for e in entries
                    if e["name"] == "\0labels"), None)
        return json.dumps({"name": name, "n": n, "tensors": tensors, "labels": lab}, separators=(",", ":")).encode()

    start = 0
    while True:  # the header's length depends on the offsets it holds: iterate to a fixed point
        h = header(start)
        h += b" " * (-(4 + len(h)) % 8)
        if 4 + len(h) == start:
            break
        start = 4 + len(h)
    out = bytearray(struct.pack("<I", len(h)) + h)
    for e, b in zip(entries, blobs):
        out += b"\0" * (e["offset"] - len(out)) + b
    return bytes(out)


def unpack(body: bytes) -> tuple[dict, dict[str, np.ndarray], np.ndarray | None]:
    """The inverse of :func:`pack`: (header, {name: array}, labels | None)."""
    (hlen,) = struct.unpack_from("<I", body, 0)
    head = json.loads(body[4 : 4 + hlen].decode())
    arrays = {t["name"]: np.frombuffer(body, np.dtype(t["dtype"]).newbyteorder("<"), int(np.prod(t["shape"])),
                                       t["offset"]).reshape(t["shape"]) for t in head["tensors"]}
    lab = head.get("labels")
    labels = None if lab is None else np.frombuffer(body, np.dtype(lab["dtype"]).newbyteorder("<"),
                                                    lab["bytes"] // np.dtype(lab["dtype"]).itemsize, lab["offset"])
    return head, arrays, labels


def _dtype_name(dt: np.dtype) -> str:
    return "bool" if dt.kind == "b" else dt.name


def artifact_inputs(m: Manifest, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model-ready feeds in the artifact's own input dtypes (int8 I/O quantized exactly as the native runners do)."""
    from edgeport.runtime import quantize_input

    return {s.name: quantize_input(s, feeds[s.name]) for s in m.sig.inputs}


def data_for(m: Manifest, spec: str | None) -> bytes:
    """The evaluation data as the artifact's inputs, packed: ``spec``'s held-out split (a named set) or all of it
    (an .npz). With no spec: the data set the artifact's parity probe came from, else the probe rows themselves."""
    from edgeport.data import PROBE_SPEC, load_dataset, model_inputs

    if spec == PROBE_SPEC:
        return probe_for(m)
    spec = spec or default_data(m)
    if not spec:
        if m.probe_arrays() is None:
            raise InputError(f"{m.name}: no evaluation data; pass --data (a builtin: set or an .npz with one array per input)")
        return probe_for(m)
    ds = load_dataset(spec, "heldout")
    feeds = model_inputs(ds, m.sig, m.preprocessing, root=m.folder)
    return pack(f"{spec}:heldout" if spec.startswith("builtin:") else spec, artifact_inputs(m, feeds), ds.y)


def probe_for(m: Manifest) -> bytes:
    got = m.probe_arrays()
    if got is None:
        raise FileNotFoundError(f"{m.name}: no probe sidecar")
    ins, _ = got
    return pack(f"{m.name} probe ({(m.probe or {}).get('data', '?')})", artifact_inputs(m, ins))


def default_data(m: Manifest) -> str | None:
    """The source's default data set (manifest source.default_data), else the one its parity probe was drawn from:
    a named set (``builtin:digits:heldout`` -> builtin:digits) or an .npz that still exists; None for noise probes."""
    named = (m.source or {}).get("default_data")
    if named:
        return named
    d = (m.probe or {}).get("data") or ""
    if d.startswith("builtin:"):
        return re.sub(r":(heldout|train)$", "", d)
    return d if d.endswith(".npz") and Path(d).is_file() else None


# ------------------------------------------------------------------------------------------------ handler
class Handler(BaseHTTPRequestHandler):
    server_version = "edgeport"
    artifacts: Path = Path("artifacts")
    data: str | None = "builtin:digits"
    bench: dict = BENCH_DEFAULT
    cache: dict  # (kind, manifest path, mtime, data) -> packed bytes, per server
    lock: threading.Lock
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

    def _json(self, obj) -> None:
        self._send(200, json.dumps(obj).encode(), "application/json")

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
        if len(path) > 2048 or any(len(p.encode()) > 255 for p in parts):  # the file system would raise ENAMETOOLONG
            return self._deny(HTTPStatus.REQUEST_URI_TOO_LONG, "path too long")
        if any(p.startswith(".") for p in parts):  # dotfiles (.git, .env, staging .part folders) are never served
            return self._deny(HTTPStatus.NOT_FOUND, "not found")
        if path in ("/", "/index.html"):
            return self._file(STATIC, "index.html")
        if path == "/api/manifests":
            return self._json(self._listing())
        if path == "/api/config":
            return self._json({"data": self.data, "bench": dict(self.bench), "tasks": TASK_FACTS})
        for prefix, kind in (("/api/data/", "data"), ("/api/probe/", "probe")):
            if path.startswith(prefix):
                return self._packed(kind, path[len(prefix):])
        for prefix, root in (("/static/", STATIC), ("/artifacts/", self.artifacts), ("/vendor/", NODE_MODULES)):
            if path.startswith(prefix):
                rel = path[len(prefix):]
                if prefix == "/vendor/" and not any(rel.startswith(v + "/") for v in VENDORED):
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

    # ---------------------------------------------------------------------------------------- api
    def _listing(self) -> dict:
        from edgeport.registry import get_target

        out, problems = [], []
        for p in sorted(self.artifacts.glob("*" + SUFFIX)):
            try:
                m = Manifest.read(p)
                adapter = get_target(m.target).browser
                if adapter is None:
                    continue  # a native-only format (.pte): not a web artifact
                m.check_files(hashes=False)
            except Exception as e:  # noqa: BLE001 - every unreadable manifest is reported, none stops the listing
                problems.append({"file": p.name, "error": one_line(e, 300)})
                continue
            d = json.loads(m.to_json())
            d.update(url="/artifacts/" + quote(m.entry), bytes=m.total_bytes, adapter=adapter)
            out.append(d)
        return {"manifests": out, "problems": problems}

    def _manifest(self, name: str) -> Manifest | None:
        if not _NAME.match(name):
            return None
        p = self.artifacts / (name + SUFFIX)
        if p.parent.resolve() != self.artifacts.resolve() or not p.is_file():
            return None
        return Manifest.read(p)

    def _packed(self, kind: str, name: str) -> None:
        try:
            m = self._manifest(name)
        except EdgeportError as e:
            return self._send(400, (one_line(e) + "\n").encode())
        if m is None:
            return self._deny(HTTPStatus.NOT_FOUND, f"no manifest named {name!r}")
        key = (kind, str(m.path), m.path.stat().st_mtime_ns, self.data)
        with self.lock:  # one build per key, even when the page asks twice at once
            body = self.cache.get(key)
            if body is None:
                try:
                    body = data_for(m, self.data) if kind == "data" else probe_for(m)
                except FileNotFoundError as e:
                    return self._deny(HTTPStatus.NOT_FOUND, one_line(e))
                except EdgeportError as e:
                    return self._send(400, (one_line(e) + "\n").encode())
                self.cache[key] = body
        self._send(200, body, PACKED_TYPE)


def make_server(artifacts: str | Path, host: str = "127.0.0.1", port: int = 8765, *, data: str | None = "builtin:digits",
                bench: dict | None = None, allow_remote: bool = False) -> ThreadingHTTPServer:
    """A server for one artifacts folder. ``data``: the evaluation data spec (None: each artifact's own probe data
    set); ``bench``: the page's timing loop, keys of :data:`BENCH_DEFAULT` (missing keys take the defaults)."""
    art = Path(artifacts)
    if not art.is_dir():
        raise InputError(f"artifacts folder not found: {art}; run `edgeport convert ... --out {art}` or `edgeport demo` first")
    if not is_loopback(host) and not allow_remote:
        raise InputError(f"refusing to bind {host}: it is not a loopback address; pass --host {host} explicitly to expose the demo")
    if not (NODE_MODULES / "@tensorflow" / "tfjs").is_dir():
        raise InputError(f"JS runtimes are not installed in {NODE_MODULES}; run `npm ci --prefix {WEB}` (or ./run test)")
    unknown = sorted(set(bench or {}) - set(BENCH_DEFAULT))
    if unknown:
        raise InputError(f"bench settings {', '.join(unknown)} are unknown; use {', '.join(BENCH_DEFAULT)}")
    b = {**BENCH_DEFAULT, **(bench or {})}
    b["threads"] = bench_threads(b["threads"])
    loop = {k: v for k, v in b.items() if k != "threads"}
    if any(not isinstance(v, (int, float)) or v < 0 for v in loop.values()) or b["maxRuns"] < max(1, b["minRuns"]):
        raise InputError(f"bench settings {loop} must be non-negative numbers with maxRuns >= minRuns >= 1")
    handler = type("BoundHandler", (Handler,), {"artifacts": art.resolve(), "data": data, "bench": b, "cache": {},
                                                "lock": threading.Lock()})
    cls = ThreadingHTTPServer
    if ":" in host:
        cls = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    try:
        return cls((host, port), handler)
    except OSError as e:
        raise InputError(f"cannot bind {host}:{port} ({e.strerror}); pick another --port") from None


def bench_threads(threads) -> list:
    """Thread counts for the page: positive integers (digit strings too) and ``"all"``; order kept, repeats dropped."""
    items = [threads] if isinstance(threads, (int, str)) else list(threads or [])
    out = []
    for t in items:
        v = "all" if str(t).strip() == "all" else (int(t) if str(t).strip().isdigit() else None)
        if v is None or v == 0 or isinstance(t, bool):
            raise InputError(f"bench threads {threads!r}: each must be a positive integer or 'all' (e.g. [1, 'all'])")
        if v not in out:
            out.append(v)
    if not out:
        raise InputError("bench threads is empty; give at least one thread count (e.g. [1])")
    return out


def start_background(artifacts, host="127.0.0.1", port=0, **kw) -> tuple[ThreadingHTTPServer, str]:
    srv = make_server(artifacts, host, port, **kw)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    h, p = srv.server_address[:2]
    return srv, f"http://{'[' + h + ']' if ':' in h else h}:{p}/"


def url(host: str, port: int) -> str:
    """A browsable address: IPv6 hosts in brackets (``http://[::]:8765/``)."""
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(artifacts, host: str | None = None, port: int = 8765, data: str | None = "builtin:digits",
          bench: dict | None = None) -> int:
    """Serve until Ctrl-C; loopback unless ``host`` is given explicitly (then a warning says it is reachable)."""
    explicit = host is not None
    host = host or "127.0.0.1"
    srv = make_server(artifacts, host, port, data=data, bench=bench, allow_remote=explicit)
    h, p = srv.server_address[:2]
    if not is_loopback(host):
        print(f"edgeport: WARNING: serving on {url(h, p)}, reachable from other machines", file=sys.stderr)
    print(f"edgeport: serving {Path(artifacts).resolve()} at {url(h, p)}  (Ctrl-C to stop)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0
