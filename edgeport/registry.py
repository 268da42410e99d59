"""The registries: target formats, model sources and data sets. Plugins register themselves; the core only looks up.

A target is one plugin folder (``converters/<target>/``) whose ``__init__`` makes one :func:`register_target` call
tying its parts together: the converter of each source framework, the native runner, the tool versions and the
name of its browser adapter. Plugins are found through the ``edgeport.plugins`` entry point group
(``pyproject.toml``), so adding a target changes no other file of the core.

Example::

    @register_target("onnx", runner=OrtRunner, browser="onnxruntime-web", versions=("onnx", "onnxruntime"))
    ...
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
    runner: type | None  # native Runner subclass, or None when the format runs only in the browser
    runtime: str  # the runtime that runs the artifact natively, for the table ("browser" when none)
    browser: str | None  # name of the page adapter (web/static/adapters/<name>.js), None when not a web format
    versions: tuple[str, ...]  # packages whose versions go into the manifest
    converters: dict[str, Converter] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        return self.runner is not None


_TARGETS: dict[str, Target] = {}
_SOURCES: list[tuple[str, Callable]] = []  # (prefix or predicate name, loader)
_DATASETS: dict[str, Callable] = {}
_BROWSERS: dict[str, Any] = {}  # browser name -> module with evaluate_in_browser / browser_capabilities
_loaded = False
_loading = False
_load_lock = threading.RLock()


def register_target(name: str, *, suffix: str, runner: type | None, runtime: str, browser: str | None,
                    versions: tuple[str, ...] = ()) -> Target:
    """Declare a target format (once, in its plugin's ``__init__``); converters attach with :func:`converter`."""
    if name in _TARGETS:
        raise RuntimeError(f"target {name!r} registered twice")
    t = Target(name, suffix, runner, runtime, browser, tuple(versions))
    _TARGETS[name] = t
    if runner is not None:
        runner.target = name
    return t


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


def matrix_table() -> str:
    rows = [("framework", "target", "recipes", "converter", "native runtime", "browser")]
    rows += [(c.framework, t.name, ",".join(c.recipes), c.tool, t.runtime, t.browser or "-") for t, c in matrix()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def runner_for(target: str) -> type:
    t = get_target(target)
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
