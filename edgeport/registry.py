"""The registries: target formats, runtimes, model sources and data sets. Plugins register; the core only looks up.

A **target** is a format (one plugin folder, ``converters/<target>/``): its converters, recipes, browser adapter name
and tool versions. A **runtime** is a place that runs one or more formats: the host's LiteRT / executorch.runtime /
ONNX Runtime, a browser runtime in Chromium, a phone over adb, an emulated ARM core, a microcontroller interpreter.
The two are separate registries, so a second runtime of ``.tflite`` is one more :func:`register_runtime` call and
touches no target. Plugins are found through the ``edgeport.plugins`` entry point group (``pyproject.toml``).

Example::

    register_target("onnx", suffix=".onnx", browser="ort", versions=("onnx",))
    register_runtime("onnxruntime", formats=("onnx",), where="host", runner=OrtRunner, default=True)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from .errors import InputError, UnsupportedError

PLUGIN_GROUP = "edgeport.plugins"
FRAMEWORKS = ("keras", "torch")


@dataclass(frozen=True)
class Converter:
    framework: str  # source framework: keras | torch
    recipes: tuple[str, ...]  # supported recipes, in table order
    fn: Callable  # fn(job) -> Produced
    tool: str  # the official tool that does the work
    budget: tuple[str, ...] = ()  # recipes it runs an accuracy-budget search for (job.budget), each a budget recipe


@dataclass
class Target:
    name: str  # artifact format: tflite | tfjs | pte | onnx ...
    suffix: str  # file suffix of the entry file (".tflite"); a folder target names its entry file
    browser: str | None  # name of the page adapter (web/static/adapters/<name>.js), None when not a web format
    versions: tuple[str, ...]  # packages whose versions go into the manifest
    converters: dict[str, Converter] = field(default_factory=dict)
    # `edgeport inspect`'s per-layer capture: fn(manifest, float source, feeds) -> rows; None: not inspectable
    inspect: Callable | None = None

    @property
    def host_runtime(self) -> "Runtime | None":
        """The default runtime of this format on this host (the first registered), None for a browser-only format."""
        return next((r for r in runtimes().values() if r.where == "host" and r.default and self.name in r.formats), None)

    @property
    def native(self) -> bool:
        return self.host_runtime is not None

    @property
    def runner(self) -> type | None:
        h = self.host_runtime
        return h.runner if h else None

    @property
    def runtime(self) -> str:
        """The host runtime's name, for tables ("browser" for a browser-only format)."""
        h = self.host_runtime
        return h.name if h else "browser"


# Where a runtime runs an artifact. Rows carry it, so reports and assertions can tell an emulated ARM row from a
# host row of the same artifact.
WHERE = ("host", "emulated", "browser", "device", "mcu", "app")
# How the evaluator starts it: "worker" = its Runner in a crash-isolated worker process of the evaluator;
# "browser" = a Chromium tab through the page adapter of the artifact's format; "remote" = its own ``evaluate``
# function (a device over adb), called with the manifests, the evaluation context and the options.
STARTED = ("worker", "browser", "remote")
MEASURES = ("accuracy", "latency", "memory", "arena", "flash")


@dataclass(frozen=True)
class RuntimeFlag:
    """A command-line flag a runtime adds to ``edgeport evaluate`` (``--arm-cpu``); its value lands in
    ``EvaluateOptions.runtime_options[runtime][key]``."""

    flag: str  # e.g. "--arm-cpu"
    key: str  # key in the runtime's options, e.g. "cpu"
    help: str
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # str -> value (a comma list, a byte size ...); None keeps the string


@dataclass(frozen=True)
class Runtime:
    name: str  # what --runtime takes and rows carry, e.g. "onnxruntime", "tflite-micro", "arm64"
    formats: tuple[str, ...]  # target names it runs
    where: str  # one of WHERE
    runner: type | None = None  # a Runner subclass (started="worker")
    started: str = "worker"  # one of STARTED
    default: bool = False  # in evaluate's default set when available (the host runtimes)
    measures: tuple[str, ...] = ("accuracy", "latency", "memory")
    # None when it can run here, else one line: why not, and the command that fixes it. Called lazily, once.
    available: Callable[[], str | None] | None = None
    # The runtime whose outputs on the same artifact go into the row's vs_host fields (the "ARM vs x86" column);
    # "host": the artifact format's host runtime (a runtime of several formats); None: no such comparison.
    compare_to: str | None = None
    evaluate: Callable | None = None  # started="remote": fn(manifests, ctx, options, prepared) -> list[Row]
    flags: tuple[RuntimeFlag, ...] = ()
    aliases: tuple[str, ...] = ()  # other names --runtime accepts
    versions: tuple[str, ...] = ()  # packages whose versions describe it
    description: str = ""
    # One-time set-up in the evaluator's process before its workers start (a rootfs to build, with progress on the
    # terminal); raises EdgeportError with the fix, which makes this runtime's rows skipped rows.
    setup: Callable[[], None] | None = None

    def unavailable(self) -> str | None:
        """Why this runtime cannot run here (one line with the fix), or None. Cached per process."""
        if self.available is None and self.started == "browser":
            ev = _BROWSERS.get("chromium")  # the web plugin says whether a browser and the JS runtimes are here
            return ev.unavailable() if ev is not None else "the web plugin (edgeport.web) is not installed"
        if self.available is None:
            return None
        if self.name not in _AVAILABILITY:
            try:
                _AVAILABILITY[self.name] = self.available()
            except Exception as e:  # a probe that breaks is a reason, not a crash
                _AVAILABILITY[self.name] = f"availability check failed: {type(e).__name__}: {e}"
        return _AVAILABILITY[self.name]


_TARGETS: dict[str, Target] = {}
_RUNTIMES: dict[str, Runtime] = {}
_AVAILABILITY: dict[str, str | None] = {}
_SOURCES: list[tuple[str, Callable]] = []  # (prefix or predicate name, loader)
_DATASETS: dict[str, Callable] = {}
_BROWSERS: dict[str, Any] = {}  # browser name -> module with evaluate_in_browser / browser_capabilities
_loaded = False
_loading = False
_load_lock = threading.RLock()


def register_target(name: str, *, suffix: str, browser: str | None, versions: tuple[str, ...] = (),
                    inspect: Callable | None = None) -> Target:
    """Declare a target format (once, in its plugin's ``__init__``); converters attach with :func:`converter`,
    runtimes with :func:`register_runtime`; ``inspect``: its per-layer capture for `edgeport inspect`."""
    if name in _TARGETS:
        raise RuntimeError(f"target {name!r} registered twice")
    t = Target(name, suffix, browser, tuple(versions), inspect=inspect)
    _TARGETS[name] = t
    return t


def register_runtime(name: str, *, formats: tuple[str, ...], where: str, runner: type | None = None,
                     started: str = "worker", default: bool = False,
                     measures: tuple[str, ...] = ("accuracy", "latency", "memory"),
                     available: Callable[[], str | None] | None = None, compare_to: str | None = None,
                     evaluate: Callable | None = None, flags: tuple[RuntimeFlag, ...] = (),
                     aliases: tuple[str, ...] = (), versions: tuple[str, ...] = (), description: str = "",
                     setup: Callable[[], None] | None = None) -> Runtime:
    """Declare a place that runs artifacts of ``formats``; one call per runtime, in the module that implements it::

        register_runtime("tflite-micro", formats=("tflite",), where="mcu", runner=MicroRunner,
                         measures=("accuracy", "latency", "arena", "flash"), available=_check, compare_to="ai-edge-litert")
    """
    if name in _RUNTIMES or any(name in r.aliases for r in _RUNTIMES.values()):
        raise RuntimeError(f"runtime {name!r} registered twice")
    if where not in WHERE:
        raise RuntimeError(f"runtime {name!r}: where={where!r} is not one of {', '.join(WHERE)}")
    if started not in STARTED:
        raise RuntimeError(f"runtime {name!r}: started={started!r} is not one of {', '.join(STARTED)}")
    if started == "worker" and runner is None:
        raise RuntimeError(f"runtime {name!r}: a worker runtime needs a Runner subclass")
    if started == "remote" and evaluate is None:
        raise RuntimeError(f"runtime {name!r}: a remote runtime needs an evaluate function")
    unknown = set(measures) - set(MEASURES)
    if unknown:
        raise RuntimeError(f"runtime {name!r}: unknown measures {sorted(unknown)}; known: {', '.join(MEASURES)}")
    r = Runtime(name, tuple(formats), where, runner, started, default, tuple(measures), available, compare_to,
                evaluate, tuple(flags), tuple(aliases), tuple(versions), description, setup=setup)
    _RUNTIMES[name] = r
    if runner is not None:
        runner.runtime_name = name
        if not runner.runtime:
            runner.runtime = name
        if not runner.target:
            runner.target = formats[0]
    return r


def converter(target: str, framework: str, *, recipes: tuple[str, ...], tool: str, budget: tuple[str, ...] = ()):
    """Decorator: ``@converter("pte", "torch", recipes=("fp32", "int8"), tool="executorch.exir", budget=("int8",))``.
    ``budget``: the recipes for which the converter holds an accuracy budget (``job.budget``); a budget flag on any
    other (target, recipe) is refused rather than ignored."""
    from edgeport.recipes import get_recipe

    def deco(fn):
        for r in recipes:
            get_recipe(r)
        for r in budget:
            if r not in recipes or not get_recipe(r).budget:
                raise RuntimeError(f"converter {framework} -> {target}: budget recipe {r!r} must be one of its recipes"
                                   " that can hold a budget (Recipe.budget)")
        t = _TARGETS[target]
        if framework in t.converters:
            raise RuntimeError(f"converter {framework} -> {target} registered twice")
        t.converters[framework] = Converter(framework, tuple(recipes), fn, tool, tuple(budget))
        return fn

    return deco


def register_source(prefix: str):
    """Decorator for a model-source loader: ``@register_source("builtin:simplecnn-torch")``. A prefix ending in ':'
    matches every spec starting with it."""

    def deco(fn):
        _SOURCES.append((prefix, fn))
        return fn

    return deco


def register_dataset(name: str):
    """Decorator for a named data set loader: ``@register_dataset("builtin:digits")``."""

    def deco(fn):
        _DATASETS[name] = fn
        return fn

    return deco


def register_browser(name: str, evaluator) -> None:
    """A browser evaluator (the web plugin registers "chromium"): an object with ``evaluate_in_browser`` and
    ``browser_capabilities``. The native evaluator finds it here instead of importing the web side."""
    _BROWSERS[name] = evaluator


def browser_evaluator(name: str):
    load_plugins()
    if name not in _BROWSERS:
        raise InputError(f"unknown browser {name!r}; known: {', '.join(sorted(_BROWSERS)) or 'none (install edgeport.web)'}")
    return _BROWSERS[name]


def load_plugins() -> None:
    """Import every plugin named in the ``edgeport.plugins`` entry point group (once). Thread-safe: another thread
    waits until every plugin has registered; a plugin that looks something up while it loads gets what is there."""
    global _loaded, _loading
    if _loaded:
        return
    with _load_lock:
        if _loaded or _loading:  # done meanwhile, or a re-entrant call from a plugin being imported
            return
        _loading = True
        try:
            for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
                ep.load()
        finally:
            _loaded, _loading = True, False


# ------------------------------------------------------------------------------------------------ lookups
def targets() -> dict[str, Target]:
    load_plugins()
    return dict(sorted(_TARGETS.items()))


def get_target(name: str) -> Target:
    ts = targets()
    if name not in ts:
        raise UnsupportedError(f"unknown target {name!r}; known: {', '.join(ts)}")
    return ts[name]


def get_converter(framework: str, target: str) -> Converter:
    if framework not in FRAMEWORKS:
        raise UnsupportedError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    t = get_target(target)
    if framework not in t.converters:
        able = sorted(t.converters)
        mine = [n for n, x in targets().items() if framework in x.converters]
        raise UnsupportedError(f"target {target!r} does not take {framework} models; it takes: {', '.join(able)}"
                               f" (targets for {framework}: {', '.join(mine)})")
    return t.converters[framework]


def check_recipe(framework: str, target: str, recipe: str) -> None:
    from edgeport.recipes import get_recipe

    get_recipe(recipe)
    c = get_converter(framework, target)
    if recipe not in c.recipes:
        raise UnsupportedError(f"recipe {recipe!r} does not exist for {framework} -> {target}; supported: {', '.join(c.recipes)}")


def matrix() -> list[tuple[Target, Converter]]:
    return [(t, c) for t in targets().values() for _, c in sorted(t.converters.items())]


def _columns(rows: list[tuple]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def matrix_table() -> str:
    rows = [("framework", "target", "recipes", "converter", "native runtime", "browser")]
    rows += [(c.framework, t.name, ",".join(c.recipes), c.tool, t.runtime, t.browser or "-") for t, c in matrix()]
    return _columns(rows)


def runtimes_table() -> str:
    """Every registered runtime: what it runs, where, what it measures, and whether it can run here (or why not)."""
    rows = [("runtime", "formats", "where", "measures", "default", "available here")]
    for r in sorted(runtimes().values(), key=lambda r: (WHERE.index(r.where), r.name)):
        why = r.unavailable()
        rows.append((r.name, ",".join(r.formats), r.where, ",".join(r.measures), "yes" if r.default else "-",
                     "yes" if why is None else f"no: {why}"))
    return _columns(rows)


def runtimes() -> dict[str, Runtime]:
    load_plugins()
    return dict(_RUNTIMES)


def get_runtime(name: str) -> Runtime:
    rs = runtimes()
    for r in rs.values():
        if name == r.name or name in r.aliases:
            return r
    raise UnsupportedError(f"unknown runtime {name!r}; known: {', '.join(rs)}")


def runtimes_for(target: str) -> list[Runtime]:
    return [r for r in runtimes().values() if target in r.formats]


def runner_for(target: str, runtime: str | None = None) -> type:
    """The Runner class of ``runtime`` (default: the format's host runtime) for artifacts of ``target``."""
    t = get_target(target)
    if runtime is not None:
        r = get_runtime(runtime)
        if target not in r.formats or r.runner is None:
            raise UnsupportedError(f"runtime {r.name!r} does not run {target!r} artifacts in a worker; it runs"
                                   f" {', '.join(r.formats)}")
        return r.runner
    if t.runner is None:
        native = [n for n, x in targets().items() if x.native]
        raise UnsupportedError(f"no native runtime for target {target!r} (native: {', '.join(native)});"
                               " evaluate it with --browser chromium")
    return t.runner


def source_loader(spec: str) -> Callable | None:
    load_plugins()
    for prefix, fn in _SOURCES:
        if spec == prefix or (prefix.endswith(":") and spec.startswith(prefix)):
            return fn
    return None


def builtin_sources() -> list[str]:
    load_plugins()
    return [p for p, _ in _SOURCES if p.startswith("builtin:")]


def dataset_loader(name: str) -> Callable:
    load_plugins()
    if name not in _DATASETS:
        raise InputError(f"unknown data set {name!r}; known: {', '.join(sorted(_DATASETS))}, or a .npz file")
    return _DATASETS[name]


def datasets() -> list[str]:
    load_plugins()
    return sorted(_DATASETS)


def versions_for(target: str) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in ("edgeport", *get_target(target).versions):
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out
