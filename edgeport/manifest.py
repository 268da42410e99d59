"""One manifest per artifact (``<artifact>.manifest.json``); see shared/ARCHITECTURE.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .fileio import sha256_file, write_text_atomic

SCHEMA = 2
SUFFIX = ".manifest.json"


@dataclass
class Manifest:
    name: str  # artifact name: <model>.<recipe>.<target>
    source: dict  # framework, model (builtin id or absolute path), sha256, weights
    target: str  # tflite | tfjs | pte | ...
    recipe: str  # fp32 | fp16 | dynamic-int8 | int8 | uint8 | uint16
    entry: str  # the file a runtime opens (model.json for TF.js), relative to the manifest
    files: list[dict]  # [{path, bytes, sha256}] relative to the manifest's folder
    signature: dict  # {inputs: [TensorSpec], outputs: [TensorSpec]}, named, with the artifact's bindings
    preprocessing: dict  # how raw data becomes each input: {kind: image|text|tensor, ...}
    parity: dict  # {status: measured|pending, runtime, task, outputs: [{name, max_abs_diff, cosine_mean, ...}]}
    probe: dict  # {data, indices, file, sha256}: the probe rows and the float outputs on them (a .probe.npz sidecar)
    task: str = "classification"  # classification | embedding | regression: chooses metrics and tolerances
    calibration: dict | None = None  # {source, samples} for static quantization
    delegation: dict | None = None  # {delegated, total, unit}
    conversion: dict = field(default_factory=dict)  # {converter, seconds, notes}
    quantization: dict | None = None  # what the recipe quantized and how (per-layer choices, equalization ...)
    tools: dict = field(default_factory=dict)  # package -> version
    schema: int = SCHEMA
    path: Path | None = field(default=None, repr=False, compare=False)  # where it was read from

    # ------------------------------------------------------------------ io
    def to_json(self) -> str:
        d = asdict(self)
        d.pop("path")
        d = {"schema": d.pop("schema"), **d}
        return json.dumps(d, indent=1, sort_keys=False) + "\n"

    def write(self, folder: str | Path) -> Path:
        p = Path(folder) / (self.name + SUFFIX)
        write_text_atomic(p, self.to_json())
        self.path = p
        return p

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        p = Path(path)
        if not p.is_file():
            raise ArtifactError(f"manifest not found: {p}; run `edgeport convert` first or pass an existing *{SUFFIX}")
        try:
            d: dict[str, Any] = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{p}: not valid JSON ({e.msg if hasattr(e, 'msg') else e}); re-run `edgeport convert`") from None
        schema = d.get("schema")
        if not isinstance(schema, int):
            raise ArtifactError(f"{p}: no integer 'schema' field; this is not an edgeport manifest")
        if schema > SCHEMA:
            raise ArtifactError(
                f"{p}: manifest schema {schema} is newer than this edgeport understands ({SCHEMA}); upgrade edgeport"
            )
        if schema < SCHEMA:
            raise ArtifactError(f"{p}: manifest schema {schema} predates named multi-tensor signatures ({SCHEMA});"
                                " re-run `edgeport convert` for this artifact")
        known = set(cls.__dataclass_fields__) - {"path"}
        missing = [k for k in ("name", "source", "target", "recipe", "entry", "files", "signature") if k not in d]
        if missing:
            raise ArtifactError(f"{p}: manifest lacks {', '.join(missing)}; re-run `edgeport convert`")
        m = cls(**{k: v for k, v in d.items() if k in known})
        m.path = p
        return m

    # ------------------------------------------------------------------ helpers
    @property
    def folder(self) -> Path:
        assert self.path is not None
        return self.path.parent

    @property
    def entry_path(self) -> Path:
        return self.folder / self.entry

    @property
    def total_bytes(self) -> int:
        return sum(f["bytes"] for f in self.files)

    def gzip_bytes(self) -> int:
        """What a download costs: every file gzip-compressed at level 9."""
        import gzip

        return sum(len(gzip.compress((self.folder / f["path"]).read_bytes(), 9)) for f in self.files)

    def check_files(self, *, hashes: bool = True) -> None:
        """Raise ArtifactError naming every file that is missing or whose size/hash differs."""
        problems = []
        for f in self.files:
            fp = self.folder / f["path"]
            if not fp.is_file():
                problems.append(f"missing {f['path']}")
            elif fp.stat().st_size != f["bytes"]:
                problems.append(f"{f['path']} has {fp.stat().st_size} bytes, manifest says {f['bytes']}")
            elif hashes and sha256_file(fp) != f["sha256"]:
                problems.append(f"{f['path']} sha256 differs from the manifest")
        if problems:
            raise ArtifactError(f"{self.name}: " + "; ".join(problems) + "; re-run `edgeport convert` for this artifact")

    @property
    def sig(self):
        from .signature import Signature

        return Signature.from_dict(self.signature)

    @property
    def primary_output(self) -> str:
        return self.signature["outputs"][0]["name"]

    def probe_arrays(self) -> tuple[dict, dict] | None:
        """(probe inputs, float outputs) from the sidecar written at convert time, or None when absent."""
        import numpy as np

        f = (self.probe or {}).get("file")
        if not f:
            return None
        p = self.folder / f
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            ins = {k[3:]: z[k] for k in z.files if k.startswith("in:")}
            outs = {k[4:]: z[k] for k in z.files if k.startswith("out:")}
        return ins, outs


def file_entries(folder: Path, rel_paths: list[str]) -> list[dict]:
    return [
        {"path": r, "bytes": (folder / r).stat().st_size, "sha256": sha256_file(folder / r)} for r in sorted(rel_paths)
    ]


def find_manifests(paths: list[str | Path]) -> list[Path]:
    """Manifests named directly, or found (non-recursively, then one level down) in the given folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*" + SUFFIX)) or sorted(p.glob("*/*" + SUFFIX))
            out += found
        else:
            out.append(p)
    return out
