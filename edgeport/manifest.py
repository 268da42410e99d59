"""One manifest per artifact (``<artifact>.manifest.json``); see shared/ARCHITECTURE.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ArtifactError
from .fileio import inside, sha256_file, write_text_atomic

SCHEMA = 2
SUFFIX = ".manifest.json"


# ------------------------------------------------------------------------------------------------ the schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    path: str = Field(min_length=1)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SourceModel(_Strict):
    framework: str
    model: str = Field(min_length=1)
    sha256: str | None = None


class TensorModel(_Strict):
    name: str = Field(min_length=1)
    dtype: str
    shape: list[int]


class SignatureModel(_Strict):
    inputs: list[TensorModel] = Field(min_length=1)
    outputs: list[TensorModel] = Field(min_length=1)


class PreprocessingModel(_Strict):
    kind: str


class ManifestModel(BaseModel):
    """The JSON schema of a manifest (schema 2), checked before any field is used."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)
    schema_: int = Field(alias="schema")
    name: str = Field(min_length=1, pattern=r"^[^/\\\x00]+$")
    source: SourceModel
    target: str = Field(min_length=1)
    recipe: str = Field(min_length=1)
    entry: str = Field(min_length=1)
    files: list[FileEntry] = Field(min_length=1)
    signature: SignatureModel
    preprocessing: PreprocessingModel
    parity: dict
    probe: dict
    task: str = "classification"
    calibration: dict | None = None
    delegation: dict | None = None
    conversion: dict = {}
    quantization: dict | None = None
    weights: dict | None = None
    tools: dict = {}

    def model_dump(self, **kw):  # the dataclass fields, nested models as plain dicts (extra keys kept)
        d = super().model_dump(**kw)
        d.pop("schema_", None)
        d["schema"] = self.schema_
        return d


_FIXES = {"missing": "is missing", "list_type": "must be a list", "dict_type": "must be an object",
          "model_type": "must be an object", "string_type": "must be a string", "int_type": "must be an integer"}


def _first_problem(e: ValidationError) -> str:
    """The first schema violation, as ``field 'files': must be a list (got str)``; the count of the others."""
    errs = e.errors()
    first = errs[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    what = _FIXES.get(first["type"], first["msg"].lower())
    got = "" if first["type"] == "missing" else f" (got {type(first.get('input')).__name__})"
    more = f" and {len(errs) - 1} more problem(s)" if len(errs) > 1 else ""
    return f"field {loc!r} {what}{got}{more}"


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
    # what the artifact holds, read back from it: {bytes_by_dtype, tensors_by_dtype, quantized_layers, float_layers,
    # duplicated_bytes, total_bytes, float_share} (edgeport.weights); None in manifests written before it existed
    weights: dict | None = None
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
        """Read and validate a manifest: its schema (:class:`ManifestModel`), then every file it names must stay
        inside its folder. Any problem is one ArtifactError naming it and the fix."""
        p = Path(path)
        if not p.is_file():
            raise ArtifactError(f"manifest not found: {p}; run `edgeport convert` first or pass an existing *{SUFFIX}")
        try:
            d: Any = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{p}: not valid JSON ({e.msg if hasattr(e, 'msg') else e}); re-run `edgeport convert`") from None
        except OSError as e:
            raise ArtifactError(f"{p}: cannot read ({e.strerror}); check the file's permissions") from None
        m = cls.from_dict(d, where=str(p))
        m.path = p
        m.check_paths()
        return m

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: holds a JSON {type(d).__name__}, not an object; this is not an edgeport"
                                " manifest (re-run `edgeport convert`)")
        schema = d.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise ArtifactError(f"{where}: no integer 'schema' field; this is not an edgeport manifest")
        if schema > SCHEMA:
            raise ArtifactError(
                f"{where}: manifest schema {schema} is newer than this edgeport understands ({SCHEMA}); upgrade edgeport"
            )
        if schema < SCHEMA:
            raise ArtifactError(f"{where}: manifest schema {schema} predates named multi-tensor signatures ({SCHEMA});"
                                " re-run `edgeport convert` for this artifact")
        try:
            v = ManifestModel.model_validate(d)
        except ValidationError as e:
            raise ArtifactError(f"{where}: {_first_problem(e)}; re-run `edgeport convert` for this artifact") from None
        return cls(**v.model_dump(by_alias=False))

    def check_paths(self) -> None:
        """Every file the manifest names (files, entry, probe sidecar, tokenizer) stays inside its folder."""
        self.file_path(self.entry, "entry")
        for f in self.files:
            self.file_path(f["path"], "files entry")
        if (self.probe or {}).get("file"):
            self.file_path(self.probe["file"], "probe file")
        tok = (self.preprocessing.get("tokenizer") or {}).get("file") if isinstance(self.preprocessing, dict) else None
        if tok:
            self.file_path(tok, "tokenizer file")
        if self.entry not in {f["path"] for f in self.files} and not any(
                self.entry.startswith(f["path"].rstrip("/") + "/") for f in self.files):
            raise ArtifactError(f"{self.name}: entry {self.entry!r} is not among its files; re-run `edgeport convert`")

    def file_path(self, rel: str, what: str = "file") -> Path:
        """The absolute path of a file named by this manifest, checked to stay inside the manifest's folder."""
        try:
            return inside(self.folder, rel, what)
        except ArtifactError as e:
            raise ArtifactError(f"{self.path}: {e}") from None

    # ------------------------------------------------------------------ helpers
    @property
    def folder(self) -> Path:
        assert self.path is not None
        return self.path.parent

    @property
    def entry_path(self) -> Path:
        return self.file_path(self.entry, "entry")

    @property
    def total_bytes(self) -> int:
        return sum(f["bytes"] for f in self.files)

    def gzip_bytes(self) -> int:
        """What a download costs: every file gzip-compressed at level 9."""
        import gzip

        return sum(len(gzip.compress(self.file_path(f["path"]).read_bytes(), 9)) for f in self.files)

    def check_files(self, *, hashes: bool = True) -> None:
        """Raise ArtifactError naming every file that is missing or whose size/hash differs."""
        problems = []
        for f in self.files:
            fp = self.file_path(f["path"], "files entry")
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
        p = self.file_path(f, "probe file")
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
