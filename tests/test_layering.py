"""The folder tree is the import tree: the core imports no plugin, plugins never import each other sideways.

Every import statement is read (module level and inside functions, since lazy imports can hide a cycle too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package folder -> the edgeport subpackage it installs as
FOLDERS = {"edgeport": "core", "converters": "converters", "quantization": "quantization", "edge": "edge", "web": "web",
           "demo": "demo", "app": "app"}
# Imports only go down: core < plugins (quantization, converters, edge runtimes, web, demo's built-ins) < app (the
# CLI, the pytest plugin, the demo job, the sweep). No file is exempt.
ALLOWED = {
    "core": {"core"},
    "quantization": {"core", "quantization"},
    "converters": {"core", "quantization", "converters"},
    "edge": {"core", "edge", "quantization"},  # the inspector replays the quantization passes
    "web": {"core", "web"},
    "demo": {"core", "demo"},
    "app": {"core", "quantization", "converters", "edge", "web", "demo", "app"},
}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "edgeport":
        return None
    if len(parts) > 1 and parts[1] in FOLDERS and parts[1] != "edgeport":
        return FOLDERS[parts[1]]
    return "core"


def _imports(path: Path, package: str) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level > 1 else base
                out.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.append(node.module)
    return out


def test_imports_follow_the_layers():
    bad = []
    for folder, layer in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            sub = path.parent.relative_to(ROOT / folder).parts
            package = ".".join(["edgeport"] + ([] if folder == "edgeport" else [folder]) + list(sub))
            for mod in _imports(path, package):
                target = _layer_of(mod)
                if target is not None and target not in ALLOWED[layer]:
                    bad.append(f"{rel} ({layer}) imports {mod} ({target})")
    assert not bad, "\n".join(bad)
