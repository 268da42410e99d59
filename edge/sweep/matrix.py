"""The sweep matrix: a TOML file whose keys are `edgeport convert` / `evaluate` flag names.

```toml
[defaults]                      # merged under every [[model]]
to = ["tflite", "onnx", "pte"]
quant = ["fp32", "int8"]
threads = ["1"]

[[model]]
model = "zoo_models:resnet_like"          # builtin:*, a .keras / .pt2 / SavedModel path, or pkg.mod:factory
input = ["x:float32[1,3,64,64]"]
calib = "calib/images.npz"                # paths are relative to this file
```

A factory module is looked up next to the matrix file first (its folder goes on ``sys.path``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgeport.errors import InputError

# flag -> (expected python type(s), what it is); the CLI's names, so a user who knows the CLI can write a matrix
KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "the --model spec"),
    "name": ((str,), "artifact base name (--name); also the model's label in the report"),
    "input": ((list, str), "model inputs, NAME:DTYPE[D0,...] (--input, a list)"),
    "input-shape": ((str,), "short form for one float32 input named x (--input-shape)"),
    "weights": ((str,), "PyTorch weights file (--weights)"),
    "import": ((list, str), "modules to import first (--import, a list)"),
    "task": ((str,), "classification | embedding | regression (--task)"),
    "calib": ((str,), "calibration data: a named set or an .npz (--calib)"),
    "data": ((str,), "held-out rows: the conversion's parity probe and the evaluation data (--data)"),
    "to": ((list, str), "targets (--to)"),
    "quant": ((list, str), "recipes, or 'all' (--quant)"),
    "int8-io": ((bool,), "full-integer TFLite with int8 input and output (--int8-io)"),
    "strict-parity": ((bool,), "fail an artifact outside its recipe's parity tolerance (--strict-parity)"),
    "timeout": ((int, float), "per-conversion time limit, seconds (--timeout)"),
    "max-drop": ((int, float), "int8 accuracy budget at conversion, pp (convert --max-drop)"),
    "min-cosine": ((int, float), "int8 cosine budget (convert --min-cosine, evaluate --min-cosine)"),
    "budget": ((int, float), "evaluate: classification accuracy-drop budget, pp (--budget)"),
    "min-snr": ((int, float), "evaluate: regression SNR budget, dB (--min-snr)"),
    "threads": ((list, str, int), "evaluate: thread counts (--threads)"),
    "runtime": ((list, str), "where to measure: native, chromium (evaluate's --browser chromium)"),
    "eval-timeout": ((int, float), "evaluate: per-artifact time limit, seconds (evaluate --timeout)"),
    "quick": ((bool,), "evaluate: fewer timed runs (--quick)"),
    "framework": ((str,), "keras | torch, when the spec does not say (a builtin of your own)"),
    "skip": ((list,), "TARGET:RECIPE pairs not to run for this model, e.g. [\"tflite:int8\"]"),
    "notes": ((str,), "free text shown in the report (why this model is here, what its wrapper does)"),
}
PATH_KEYS = ("weights", "calib", "data")  # relative to the matrix file; named sets (builtin:*) stay as they are
LIST_KEYS = ("input", "import", "to", "quant", "threads", "runtime")
RUNTIMES = ("native", "chromium")
DEFAULTS = {"to": ["tflite", "onnx"], "quant": ["fp32"], "threads": ["1"], "runtime": ["native"]}


@dataclass
class Entry:
    """One [[model]] with [defaults] merged under it, paths resolved, lists normalized."""

    label: str  # unique name in the report
    spec: str  # the --model spec as the converter will see it (absolute path for files)
    framework: str  # keras | torch
    opts: dict = field(default_factory=dict)  # every other key, CLI names
    index: int = 0  # position in the matrix

    def get(self, key: str, default=None):
        return self.opts.get(key, default)


@dataclass
class Matrix:
    path: Path
    root: Path  # the matrix file's folder: relative paths and factory modules resolve here
    entries: list[Entry]


def _as_list(key: str, v) -> list:
    if isinstance(v, (str, int, float)):
        v = [t.strip() for t in str(v).split(",") if t.strip()] if key != "input" else [v]
    return [str(x) for x in v]


def _check(where: str, table: dict) -> None:
    for k, v in table.items():
        if k not in KEYS:
            raise InputError(f"{where}: unknown key {k!r}; known: {', '.join(KEYS)}")
        types, what = KEYS[k]
        if isinstance(v, bool) and bool not in types or not isinstance(v, types):
            raise InputError(f"{where}: {k} = {v!r} should be {' or '.join(t.__name__ for t in types)} ({what})")


def _is_path_spec(spec: str) -> bool:
    if spec.startswith("builtin:") or re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        return False
    return True


def framework_of(spec: str, declared: str | None = None) -> str:
    """keras | torch from the spec alone (no model loads): the plan of a sweep is known before any work starts."""
    if declared:
        if declared not in ("keras", "torch"):
            raise InputError(f"framework = {declared!r}; known: keras, torch")
        return declared
    if spec.startswith("builtin:"):
        return "keras" if "keras" in spec else "torch"
    if spec.endswith((".keras", ".h5")) or Path(spec).is_dir():
        return "keras"
    return "torch"  # .pt2 or a factory (factories build torch modules)


def load_matrix(path: str | Path) -> Matrix:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such matrix file; pass a .toml with [defaults] and [[model]] tables")
    try:
        doc = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid TOML ({' '.join(str(e).split())})") from None
    extra = sorted(set(doc) - {"defaults", "model"})
    if extra:
        raise InputError(f"{p}: unknown table {extra[0]!r}; a matrix has [defaults] and [[model]] tables")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InputError(f"{p}: [defaults] must be a table")
    _check(f"{p} [defaults]", defaults)
    models = doc.get("model", [])
    if not isinstance(models, list) or not models:
        raise InputError(f"{p}: no [[model]] tables; add at least one with model = \"...\"")
    root = p.resolve().parent
    entries, labels = [], set()
    for i, m in enumerate(models, 1):
        where = f"{p} [[model]] #{i}"
        if not isinstance(m, dict):
            raise InputError(f"{where}: must be a table")
        _check(where, m)
        merged = {**DEFAULTS, **defaults, **m}
        if "model" not in merged:
            raise InputError(f"{where}: no model key; write model = \"builtin:simplecnn-torch\" or a path or pkg.mod:factory")
        for k in LIST_KEYS:
            if k in merged:
                merged[k] = _as_list(k, merged[k])
        bad = [r for r in merged["runtime"] if r not in RUNTIMES]
        if bad:
            raise InputError(f"{where}: runtime {bad[0]!r} is unknown; known: {', '.join(RUNTIMES)}")
        spec = merged.pop("model")
        if _is_path_spec(spec):
            spec = str((root / spec).resolve())
            if not Path(spec).exists():
                raise InputError(f"{where}: model {m.get('model', spec)!r} not found (paths are relative to {root})")
        for k in PATH_KEYS:
            v = merged.get(k)
            if v and not v.startswith("builtin:"):
                q = (root / v).resolve()
                if not q.exists():
                    raise InputError(f"{where}: {k} {v!r} not found (paths are relative to {root})")
                merged[k] = str(q)
        fw = framework_of(spec, merged.pop("framework", None))
        label = merged.get("name") or _label(spec)
        if label in labels:
            raise InputError(f"{where}: a second model named {label!r}; give one of them name = \"...\"")
        labels.add(label)
        for s in merged.get("skip", []):
            if not re.fullmatch(r"[\w-]+:[\w-]+", str(s)):
                raise InputError(f"{where}: skip entry {s!r} is not TARGET:RECIPE, e.g. \"tflite:int8\"")
        entries.append(Entry(label, spec, fw, merged, i))
    return Matrix(p, root, entries)


def _label(spec: str) -> str:
    if spec.startswith("builtin:"):
        return spec.split(":", 1)[1]
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        return spec.split(":")[1].replace("_", "-")
    return Path(spec.rstrip("/")).stem
