"""pytest plugin: quantized accuracy in your own tests (the app layer: it converts and evaluates).

Registered through the ``pytest11`` entry point, so it loads whenever edgeport is installed (``-p no:edgeport``
turns it off). It adds two session-scoped fixtures; the assertion is :mod:`edgeport.testing`::

    from edgeport.testing import assert_quantized_close

    def test_int8_stays_close(edgeport_convert, edgeport_evaluate):
        manifests = edgeport_convert("builtin:simplecnn-torch", to=["tflite", "pte"], quant=["int8"])
        report = edgeport_evaluate(manifests)
        assert_quantized_close(report, max_drop=0.5)

- ``edgeport_convert(model, to=[...], quant=[...], calib=None, **options) -> list[Manifest]`` takes the same
  models and options as ``edgeport convert`` and builds each artifact once per test session, keyed by the source's
  hash (file / weights sha256, or the parameter hash of an in-memory model), target, recipe and options.
- ``edgeport_evaluate(artifacts, data=None, threads=1, browser=None, task=None) -> Report`` measures them with their
  real runtimes, once per (artifact, data, threads, browser); the float reference of an in-memory model comes from
  the convert cache.
- ``--edgeport-report DIR`` writes every row the session measured to DIR/report.json and DIR/report.html.

Importing this module is light: TensorFlow and PyTorch load only when a fixture converts or evaluates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import pytest

from edgeport.testing import QuantizedAccuracyError, assert_fits_mcu, assert_quantized_close  # noqa: F401

__all__ = ["EdgeportSession", "assert_quantized_close", "assert_fits_mcu", "QuantizedAccuracyError"]

# edgeport_convert's keyword options: how the source is loaded, and ConvertOptions (the CLI's flags).
_SOURCE_OPTIONS = ("weights", "inputs", "input_shape", "task", "imports", "name")
_CONVERT_OPTIONS = ("data", "int8_io", "calib_samples", "strict_parity")
_CALL_OPTIONS = ("isolate", "timeout_s", "quiet")


# ------------------------------------------------------------------------------------------------- the session
class EdgeportSession:
    """Per-pytest-session caches: sources, artifacts and evaluated rows; the merged report of the session."""

    def __init__(self, root_factory):
        self._root_factory = root_factory
        self._root: Path | None = None
        self._sources: dict = {}  # load key -> Source (specs: loaded once per session)
        self._known: dict = {}  # (model id, sha256) -> Source, the float reference for the evaluator
        self._artifacts: dict = {}  # (group key, target, recipe) -> Manifest | (artifact name, reason, error)
        self._rows: dict = {}  # evaluation key -> (rows, facts)
        self.report = None  # the merged Report of everything evaluated (created on first use)
        self.report_path: Path | None = None
        self.stats = {"converted": 0, "conversion_hits": 0, "failed": 0, "evaluated": 0, "evaluation_hits": 0}

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(self._root_factory())
            self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    # ------------------------------------------------------------------------------------------- convert
    def convert(self, model: Any, to: str | Iterable[str], quant: str | Iterable[str], calib: Any = None,
                **options) -> list:
        """Artifacts of ``model`` for every (target, recipe); each one converted once per session."""
        __tracebackhide__ = True
        import edgeport.convert as conv
        from edgeport.config import ConvertOptions

        unknown = sorted(set(options) - set(_SOURCE_OPTIONS + _CONVERT_OPTIONS + _CALL_OPTIONS))
        if unknown:
            raise TypeError(f"edgeport_convert() got unknown option(s) {', '.join(unknown)}; known: calib, "
                            + ", ".join(_SOURCE_OPTIONS + _CONVERT_OPTIONS + _CALL_OPTIONS))
        targets, recipes = _names(to, "to"), _names(quant, "quant")
        src_kw = {k: options[k] for k in _SOURCE_OPTIONS if k in options}
        # quiet: the converters' own output (C++ included) goes to the run's edgeport-<time>-<pid>.log beside the
        # artifacts, so that a
        # failing test shows its table rather than pages of MLIR passes; quiet=False leaves it in pytest's capture
        call_kw = {"quiet": True, **{k: options[k] for k in _CALL_OPTIONS if k in options}}
        opts = ConvertOptions(calib=self._data(calib, "calib"), data=self._data(options.get("data"), "data"),
                              **{k: options[k] for k in _CONVERT_OPTIONS if k in options and k != "data"})
        spec, src, load_kw = self._source(model, src_kw)
        pairs = conv.plan(src.framework, targets, recipes).pairs
        group = _key([src.framework, src.model_id, src.sha256, src.name, src.task,
                      [s.to_dict() for s in src.signature.inputs],
                      {**dataclasses.asdict(opts), "calib": _content_key(opts.calib), "data": _content_key(opts.data)}])
        out = self.root / f"{src.name}-{group[:10]}"
        missing = [p for p in pairs if (group, *p) not in self._artifacts]
        self.stats["conversion_hits"] += len(pairs) - len(missing)
        if missing:
            ts, rs = list(dict.fromkeys(t for t, _ in missing)), list(dict.fromkeys(r for _, r in missing))
            full = [(t, r) for t in ts for r in rs]
            calls = [(ts, rs)] if sorted(full) == sorted(missing) else \
                [([t], [r for tt, r in missing if tt == t]) for t in ts]
            for call_targets, call_recipes in calls:
                self._convert(conv, spec if spec is not None else src, src, call_targets, call_recipes, out, opts,
                              group, {**call_kw, **(load_kw if spec is not None else {})})
        got = [self._artifacts[(group, *p)] for p in pairs]
        failed = [g for g in got if isinstance(g, tuple)]
        if failed:
            from edgeport.errors import ConversionError

            typed = {id(f[2]): f[2] for f in failed}
            if len(typed) == 1 and failed[0][2] is not None:  # one cause (bad calibration, unsupported op ...)
                raise failed[0][2]
            raise ConversionError(f"{len(failed)} of {len(got)} conversion(s) failed: "
                                  + "; ".join(why if why.startswith(n) else f"{n}: {why}" for n, why, _ in failed))
        return got

    def _convert(self, conv, model, src, targets, recipes, out, opts, group, call_kw) -> None:
        done: dict = {}

        def on_done(m):
            done[(m.target, m.recipe)] = m

        error = None
        try:
            conv.convert(model, targets, recipes, out, opts, on_done=on_done, **call_kw)
        except Exception as e:  # a failed conversion is cached too: other tests asking for it get the same error
            error = e
        reasons = {name: why for name, why in getattr(error, "failures", None) or []}
        for t in targets:
            for r in recipes:
                if (t, r) in done:
                    self._artifacts[(group, t, r)] = done[(t, r)]
                    self.stats["converted"] += 1
                    continue
                name = f"{src.name}.{r}.{t}"
                typed = None if error is None or hasattr(error, "failures") else error
                why = reasons.get(name) or (" ".join(str(error).split()) if error is not None else "no manifest written")
                self._artifacts[(group, t, r)] = (name, why, typed)
                self.stats["failed"] += 1

    def _source(self, model: Any, kw: dict):
        """(spec or None, Source, load keywords). Specs load once per session per content; in-memory models are
        hashed on each call (a test may train them further)."""
        from edgeport.signature import TensorSpec, parse_input_spec
        from edgeport.sources import Source, load_source, parse_shape

        given = kw.get("inputs") or []
        given = [given] if isinstance(given, (str, TensorSpec)) else given
        inputs = [i if isinstance(i, TensorSpec) else parse_input_spec(str(i)) for i in given]
        if kw.get("input_shape") is not None:
            shape = kw["input_shape"]
            inputs = [parse_shape(shape if isinstance(shape, str) else ",".join(str(int(d)) for d in shape))]
        imports = list(kw.get("imports") or [])
        load_kw = dict(weights=None if kw.get("weights") is None else str(Path(kw["weights"]).resolve()),
                       inputs=inputs or None, task=kw.get("task"), imports=imports or None, name=kw.get("name"))
        if isinstance(model, Source):
            src = model
        elif isinstance(model, (str, os.PathLike)):
            spec = os.fspath(model)
            if not spec.startswith("builtin:") and (Path(spec).exists() or spec.endswith((".keras", ".pt2"))):
                spec = str(Path(spec).resolve())
            key = _key([spec, _content_key(spec), load_kw["weights"], _content_key(load_kw["weights"]),
                        [s.to_dict() for s in inputs], load_kw["task"], imports, load_kw["name"]])
            if key not in self._sources:
                self._sources[key] = load_source(spec, **load_kw)
            src = self._sources[key]
            self._known[(src.model_id, src.sha256)] = src
            return spec, src, load_kw
        else:
            src = load_source(model, **load_kw)
            # Two in-memory models of one class would share "python:ClassName"; the hash tells them apart in the
            # report and in the evaluator's float references.
            src.model_id = f"{src.model_id}@{src.sha256.split(':')[-1][:8]}"
        self._known[(src.model_id, src.sha256)] = src
        return None, src, load_kw

    def _data(self, value: Any, what: str) -> str | None:
        """A data spec (builtin:*, an .npz path) or arrays (x; (x, y); {name: array}) saved as an .npz here."""
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            s = os.fspath(value)
            return s if s.startswith("builtin:") else str(Path(s).resolve())
        import numpy as np

        if isinstance(value, dict):
            arrays = {str(k): np.asarray(v) for k, v in value.items()}
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            arrays = {"x": np.asarray(value[0]), "y": np.asarray(value[1])}
        elif isinstance(value, np.ndarray):
            arrays = {"x": value}
        else:
            raise TypeError(f"{what}= takes a data spec (builtin:NAME or an .npz path), an array x, a tuple (x, y) or"
                            f" a dict of named arrays; got {type(value).__name__}")
        h = hashlib.sha256()
        for k in sorted(arrays):
            h.update(k.encode() + str(arrays[k].dtype).encode() + str(arrays[k].shape).encode())
            h.update(np.ascontiguousarray(arrays[k]).tobytes())
        p = self.root / "data" / f"{what}-{h.hexdigest()[:16]}.npz"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".part.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, p)
        return str(p)

    # ------------------------------------------------------------------------------------------ evaluate
    def evaluate(self, artifacts: Any, data: Any = None, threads: int | str | Iterable = 1, browser: str | None = None,
                 task: str | None = None, quick: bool = True, timeout_s: float | None = None,
                 runtime: str | Iterable[str] | None = None, runtime_options: dict | None = None):
        """A Report for ``artifacts`` (manifests, manifest paths or folders); each row measured once per session.
        ``runtime``: registry names (``"tflite-micro"``), default the host runtimes; ``runtime_options``: their flags'
        values, e.g. ``{"tflite-micro": {"ram": 262144}}``."""
        __tracebackhide__ = True
        from edgeport.config import EvaluateOptions
        from edgeport.errors import InputError
        from edgeport.manifest import Manifest, find_manifests
        from edgeport.report import Report

        paths = _manifest_paths(artifacts, find_manifests, Manifest)
        if not paths:
            raise InputError(f"edgeport_evaluate: no artifacts in {artifacts!r}; pass the manifests edgeport_convert"
                             " returned, or a folder of *.manifest.json")
        spec = self._data(data, "data")
        ths = tuple(str(threads).split(",") if isinstance(threads, (int, str)) else (str(t) for t in threads))
        rts = None if runtime is None else ((runtime,) if isinstance(runtime, str) else tuple(runtime))
        opts = EvaluateOptions(threads=ths, data=spec, runtimes=rts, runtime_options=dict(runtime_options or {}),
                               **({"timeout_s": float(timeout_s)} if timeout_s is not None else {}))
        metas = {}
        for p in paths:
            try:
                metas[p] = Manifest.read(p)
            except Exception:
                metas[p] = None  # the evaluator turns it into an error row
        if task is not None:
            wrong = [f"{m.name} ({m.task})" for m in metas.values() if m is not None and m.task != task]
            if wrong:
                raise InputError(f"edgeport_evaluate(task={task!r}): {', '.join(wrong)} were converted for another"
                                 f" task; pass task={task!r} to edgeport_convert to measure them as {task}")
        content = _content_key(spec)
        keys = {p: _key([str(p), _content_key(str(p)), content, ths, browser, bool(quick), opts.timeout_s]
                        + ([rts, opts.runtime_options] if rts else [])) for p in paths}
        todo = [p for p in paths if keys[p] not in self._rows]
        self.stats["evaluation_hits"] += len(paths) - len(todo)
        groups: dict = {}
        for p in todo:
            m = metas[p]
            groups.setdefault((m.source.get("model"), m.source.get("sha256")) if m else None, []).append(p)
        for sk, ps in groups.items():
            self._evaluate(ps, sk, opts, browser, quick, keys)
        rows, facts = [], {"float_baseline": {}, "data_by_source": {}, "reference_by_source": {}}
        for p in paths:
            r, f = self._rows[keys[p]]
            rows += r
            for k in facts:
                facts[k].update(f.get(k, {}))
        report = Report(rows=rows, data=spec or "each model's default data", float_baseline=facts["float_baseline"],
                        extra={"data_by_source": facts["data_by_source"],
                               "reference_by_source": facts["reference_by_source"]})
        self._merge(report)
        return report

    def _evaluate(self, paths, source_key, opts, browser, quick, keys) -> None:
        import edgeport.evaluate as ev

        src = self._known.get(source_key) if source_key else None
        sources = {src.model_id: dataclasses.replace(src)} if src is not None else None
        rep = ev.evaluate([str(p) for p in paths], opts, browser=browser, quick=quick, sources=sources)
        self.stats["evaluated"] += len(paths)
        for p in paths:
            rows = [r for r in rep.rows if Path(r.manifest).resolve() == p]
            srcs = {r.source for r in rows}
            facts = {"float_baseline": {s: v for s, v in rep.float_baseline.items() if s in srcs}}
            for k in ("data_by_source", "reference_by_source"):
                facts[k] = {s: v for s, v in (rep.extra.get(k) or {}).items() if s in srcs}
            self._rows[keys[p]] = (rows, facts)

    def _merge(self, report) -> None:
        from edgeport.report import Report

        if self.report is None:
            self.report = Report(data="per artifact (see data_by_source)")
        # keyed by manifest path: two models may both be named "mlp" (their artifacts live in different folders)
        new = {(r.manifest, *r.key()[1:]): r for r in report.rows}
        self.report.rows = [r for r in self.report.rows if (r.manifest, *r.key()[1:]) not in new] + list(new.values())
        self.report.float_baseline.update(report.float_baseline)
        for k in ("data_by_source", "reference_by_source"):
            self.report.extra.setdefault(k, {}).update(report.extra.get(k) or {})

    # ---------------------------------------------------------------------------------------- summary
    def summary(self) -> str | None:
        s = self.stats
        built = s["converted"] + s["conversion_hits"] + s["failed"]
        rows = self.report.rows if self.report is not None else []
        if not built and not rows:
            return None
        arts = {r.manifest or r.artifact for r in rows}
        parts = [f"{len(arts)} artifacts evaluated" if rows else "no artifacts evaluated",
                 f"{s['converted']} converted, {s['conversion_hits']} reused"
                 + (f", {s['failed']} failed" if s["failed"] else "")]
        parts += _worst(rows)
        errors = [r for r in rows if r.error]
        if errors:
            parts.append(f"{len(errors)} row(s) with errors")
        return "edgeport: " + "; ".join(parts)


def _worst(rows) -> list[str]:
    """Per task, the quantized row furthest from the float model, in the task's words."""
    import math

    from edgeport.tasks import TASKS

    ok = [r for r in rows if r.error is None and not r.skipped and r.recipe != "fp32"]
    out = []
    for t in TASKS.values():
        mine = [r for r in ok if r.task == t.name and t.value(r) is not None and math.isfinite(t.value(r))]
        if mine:
            out.append(t.worst(max(mine, key=lambda r: t.excess(r, 0.0))))
    return out


# ------------------------------------------------------------------------------------------------- helpers
def _names(v: str | Iterable[str], what: str) -> list[str]:
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    out = [str(s) for s in v]
    if not out:
        raise TypeError(f"edgeport_convert({what}=...) is empty; name at least one")
    return out


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _content_key(spec: str | None) -> str | None:
    """What a spec holds, so that one file under two paths (a test's tmp_path) is one cache entry."""
    if not spec or spec.startswith("builtin:"):
        return spec
    p = Path(spec)
    if p.is_file():
        from edgeport.fileio import sha256_file

        return "sha256:" + sha256_file(p)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(p.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns};".encode())
        return "tree:" + h.hexdigest()
    return spec


def _manifest_paths(artifacts: Any, find_manifests, Manifest) -> list[Path]:
    items = artifacts if isinstance(artifacts, (list, tuple, set)) else [artifacts]
    paths: list[Path] = []
    for a in items:
        if isinstance(a, Manifest):
            if a.path is None:
                raise TypeError(f"manifest {a.name} has no path; pass manifests written by edgeport_convert")
            paths.append(Path(a.path).resolve())
        elif isinstance(a, (str, os.PathLike)):
            p = Path(a)
            if not p.exists():
                from edgeport.errors import InputError

                raise InputError(f"edgeport_evaluate: {p} does not exist; pass manifests, manifest files or folders")
            paths += [Path(f).resolve() for f in find_manifests([p])]
        else:
            raise TypeError(f"edgeport_evaluate() takes manifests, manifest paths or folders, not {type(a).__name__}")
    return list(dict.fromkeys(paths))


_SESSION = pytest.StashKey[EdgeportSession]()


def pytest_addoption(parser):
    group = parser.getgroup("edgeport", "edgeport: quantized accuracy in your tests")
    group.addoption("--edgeport-report", metavar="DIR", default=None,
                    help="write the session's edgeport report (every artifact a test evaluated) to DIR/report.json"
                         " and DIR/report.html")


def _session(config, tmp_path_factory) -> EdgeportSession:
    sess = config.stash.get(_SESSION, None)
    if sess is None:
        sess = EdgeportSession(lambda: tmp_path_factory.getbasetemp() / "edgeport")
        config.stash[_SESSION] = sess
    return sess


class _Fixture:
    """A fixture's callable, with a short repr (pytest prints fixture values in tracebacks)."""

    def __init__(self, fn, usage: str):
        self._fn, self._usage = fn, usage
        self.__doc__ = fn.__doc__

    def __call__(self, *args, **kwargs):
        __tracebackhide__ = True
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._usage}>"


@pytest.fixture(scope="session")
def edgeport_convert(request, tmp_path_factory):
    """``edgeport_convert(model, to=[...], quant=[...], calib=None, **options) -> list[Manifest]``: convert once per
    session (cached by source hash, target, recipe and options) into the session's temporary folder."""
    return _Fixture(_session(request.config, tmp_path_factory).convert,
                    "edgeport_convert(model, to, quant, calib=None, **options)")


@pytest.fixture(scope="session")
def edgeport_evaluate(request, tmp_path_factory):
    """``edgeport_evaluate(artifacts, data=None, threads=1, browser=None, task=None) -> Report``: measure with the
    real runtimes, once per session for each (artifact, data, threads, browser)."""
    return _Fixture(_session(request.config, tmp_path_factory).evaluate,
                    "edgeport_evaluate(artifacts, data=None, threads=1, browser=None, task=None)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """The short summary (-ra) and JUnit XML show the table's first line, not the exception's type name."""
    rep = yield
    exc = call.excinfo
    if exc is not None and rep.failed and isinstance(exc.value, QuantizedAccuracyError):
        crash = getattr(rep.longrepr, "reprcrash", None)
        if crash is not None and hasattr(crash, "message"):
            crash.message = str(exc.value).splitlines()[0]
    return rep


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    out = config.getoption("edgeport_report", None)
    if not out or hasattr(config, "workerinput"):  # pytest-xdist workers: the controller writes
        return
    from edgeport.report import Report

    sess = config.stash.get(_SESSION, None)
    if sess is None:
        sess = config.stash[_SESSION] = EdgeportSession(lambda: None)
    report = sess.report if sess.report is not None else Report(data="nothing evaluated")
    sess.report_path = report.write(_mkdir(out))


def _mkdir(p) -> Path:
    p = Path(p)
    p.mkdir(parents=True, exist_ok=True)
    return p


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    sess = config.stash.get(_SESSION, None)
    if sess is None:
        return
    line = sess.summary()
    where = getattr(sess, "report_path", None)
    if line is None and where is None:
        return
    line = line or "edgeport: nothing converted or evaluated"
    if where is not None:
        line += f"; report: {where} (+ report.html)"
    terminalreporter.write_line(line)
