"""One report schema (report.json): each row is one artifact x runtime x backend x threads.

Written by the native and the browser evaluators; read by the terminal table, report.html, the demo page and
the tests.
"""

from __future__ import annotations

import html
import io
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .fileio import write_text_atomic
from .weights import short as short_weights
from .tasks import Budget, get_task

__all__ = ["Budget", "Report", "Row", "SCHEMA"]  # Budget lives with the tasks (edgeport.tasks); kept importable here

SCHEMA = 2


@dataclass
class Row:
    artifact: str  # manifest name, e.g. simplecnn-torch.int8.pte
    target: str
    recipe: str
    source: str  # source model id
    runtime: str  # ai-edge-litert | executorch.runtime | tfjs | litert.js | benchmark_model ...
    backend: str  # xnnpack | cpu | wasm | webgl | webgpu
    threads: int | None
    device: str  # local | chromium | adb:<serial>
    manifest: str = ""  # path of the manifest, as given
    task: str = "classification"  # classification | embedding | regression (from the manifest)
    bytes: int | None = None
    gzip_bytes: int | None = None
    load_ms: float | None = None
    latency_ms: dict | None = None  # {p50, p90, p99, mean, std}
    runs: int | None = None
    peak_rss_delta_bytes: int | None = None
    # classification
    accuracy: float | None = None  # top-1 on labels, 0..1
    float_accuracy: float | None = None  # the float original's accuracy on the same data
    accuracy_drop_pp: float | None = None  # (float - this) in percentage points
    agreement: float | None = None  # top-1 agreement with the float original
    # embedding
    cosine_mean: float | None = None  # against the float original, per sample
    cosine_min: float | None = None
    nn_agreement: float | None = None  # nearest-neighbour agreement over the evaluation set
    # every task (primary output against the float original)
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    snr_db: float | None = None
    outputs: list | None = None  # per output: {name, max_abs_diff, max_rel_diff, snr_db, cosine_mean, ...}
    samples: int | None = None
    delegated: int | None = None
    ops_total: int | None = None
    runtime_version: str = ""
    build: str | None = None  # browser runtime build (simd, threaded ...)
    skipped: str | None = None  # set when the backend is not available here (not an error)
    error: str | None = None
    norm_ratio: float | None = None  # ||outputs|| / ||float outputs|| of the primary output (1: the scale is right)
    flags: list | None = None  # what is wrong with the outputs whatever the metrics say: all-zero, nan, inf, scale
    weights: dict | None = None  # the manifest's weights block: what the artifact stores, by dtype (edgeport.weights)

    def failing_flags(self) -> list[str]:
        from .metrics import failing_flags

        return failing_flags(self.flags)

    # where the runtime ran it: host | emulated | browser | device | mcu | app (the runtime registry's `where`)
    where: str = "host"
    cpu: str | None = None  # the CPU it ran on: the host's model, or the emulated core (qemu's -cpu name)
    note: str | None = None  # what the row does not measure and why ("emulated: latency not measured")
    # the same artifact on the host runtime of its format, on the same inputs: {runtime, max_abs_diff, agreement,
    # cosine_mean, snr_db} (the "ARM vs x86" and "TFLM vs LiteRT" column)
    vs_host: dict | None = None
    arena_bytes: int | None = None  # microcontroller: smallest tensor arena that allocates, measured
    flash_bytes: int | None = None  # microcontroller: model bytes as a C array
    fits: dict | None = None  # microcontroller budget: {ram: {need, have, ok}, flash: {...}}
    # per distinct op, what the runtime says of it: {op, count, ...} (microcontroller: its TFLM kernel and Add...() name)
    ops: list | None = None

    def key(self) -> tuple:
        return (self.artifact, self.runtime, self.backend, self.threads, self.device, self.cpu)

    def quality(self) -> float | None:
        """The task's headline number: accuracy (%), cosine mean, or SNR (dB)."""
        return get_task(self.task).quality(self)

    def within(self, budget: "Budget | float") -> bool:
        """A row that ran and stays within the task's budget against float."""
        b = budget if isinstance(budget, Budget) else Budget(max_drop_pp=float(budget))
        if self.error is not None or self.skipped or self.failing_flags():
            return False
        return get_task(self.task).within(self, b.threshold(self.task))


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: str = "builtin:digits"
    float_baseline: dict = field(default_factory=dict)  # source id -> float accuracy (classification)
    host: dict = field(default_factory=lambda: host_facts())
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    extra: dict = field(default_factory=dict)  # run facts: wall time, data per source, browser capabilities ...
    budget: Budget = field(default_factory=Budget)
    schema: int = SCHEMA

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict:
        return {"schema": self.schema, "created": self.created, "data": self.data, "host": self.host,
                "budget": asdict(self.budget.filled()), "float_baseline": self.float_baseline, "extra": self.extra,
                "rows": [asdict(r) for r in self.rows]}

    def write(self, folder: str | Path) -> Path:
        folder = Path(folder)
        p = folder / "report.json"
        write_text_atomic(p, json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        write_text_atomic(folder / "report.html", render_html(self))
        return p

    @classmethod
    def read(cls, path: str | Path) -> "Report":
        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        d = json.loads(p.read_text())
        if d.get("schema", 0) > SCHEMA:
            raise ArtifactError(f"{p}: report schema {d['schema']} is newer than this edgeport ({SCHEMA}); upgrade edgeport")
        known = set(Row.__dataclass_fields__)
        rows = [Row(**{k: v for k, v in r.items() if k in known}) for r in d.get("rows", [])]
        return cls(rows=rows, data=d.get("data", ""), float_baseline=d.get("float_baseline", {}), host=d.get("host", {}),
                   created=d.get("created", ""), extra=d.get("extra", {}), budget=Budget(**d.get("budget", {})),
                   schema=d.get("schema", SCHEMA))

    def merge(self, rows: list[Row]) -> None:
        """Add rows, replacing rows with the same key (artifact x runtime x backend x threads x device)."""
        new = {r.key(): r for r in rows}
        self.rows = [r for r in self.rows if r.key() not in new] + list(new.values())

    # ------------------------------------------------------------------ choices
    def sources(self) -> list[str]:
        return sorted({r.source for r in self.rows if r.source != "?"})

    def picks(self, budget: Budget | None = None) -> dict[str, dict[str, Row | None]]:
        """Per source model: the smallest and the fastest row within the task's budget against float."""
        b = budget or self.budget
        out = {}
        for src in self.sources():
            # an emulated core or a microcontroller interpreter answers for the same file as a host row: the picks are
            # among the places one ships to (host, browser, device)
            ok = [r for r in self.rows if r.source == src and r.within(b) and r.where not in ("emulated", "mcu")]
            timed = [r for r in ok if _p50(r) != float("inf")]
            out[src] = {"smallest": min(ok, key=lambda r: (r.bytes or 0, _p50(r)), default=None),
                        "fastest": min(timed, key=_p50, default=None)}
        return out

    def best_per_target(self, budget: Budget | None = None) -> dict[str, Row]:
        """Per (source, target, device): the smallest, then fastest, row within budget."""
        b = budget or self.budget
        out: dict[str, Row] = {}
        for r in self.rows:
            if not r.within(b):
                continue
            key = f"{r.source} {r.target}" + (f" ({r.device})" if r.device != "local" else "")
            cur = out.get(key)
            if cur is None or (r.bytes or 0, _p50(r)) < (cur.bytes or 0, _p50(cur)):
                out[key] = r
        return out


def host_facts() -> dict:
    """The machine the figures come from: CPU model and its SIMD extensions matter for int8 speed and accuracy."""
    cpu, flags = platform.processor() or "", ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not cpu.strip():
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1]
                break
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f" {f}" in f" {flags}"]
    import os

    return {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "simd": simd,
            "python": platform.python_version(), "system": platform.platform(terse=True)}


def _p50(r: Row) -> float:
    """p50, or the mean where a tool reports only a mean (executor_runner)."""
    lat = r.latency_ms or {}
    v = lat.get("p50", lat.get("mean"))
    return float("inf") if v is None else v


# ---------------------------------------------------------------------------------------------- text
def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:,.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def flag_note(r: Row) -> str:
    """The row's failing flags as a note ("FLAGGED: outputs all zero"), empty when none."""
    from .metrics import describe_flags

    return f"FLAGGED: {describe_flags(r.flags, r.norm_ratio)}" if r.failing_flags() else ""


def _source_rows(report: Report, src: str) -> list[Row]:
    b = report.budget

    def order(r: Row):
        return (r.error is not None, bool(r.skipped), not r.within(b), r.bytes or 0, _p50(r))

    return sorted((r for r in report.rows if r.source == src), key=order)


def _marks(report: Report) -> dict:
    mark: dict = {}
    for p in report.picks().values():
        for what in ("smallest", "fastest"):
            if p[what]:
                mark[p[what].key()] = (mark.get(p[what].key(), "") + " " + what).strip()
    return mark


# Browser rows beside native ones: the same artifact at the same thread count, browser p50 / native p50.
def _native_p50(report: Report) -> dict:
    """(artifact, threads) -> the native (device "local") p50 of that artifact at that thread count."""
    out = {}
    for r in report.rows:
        if r.device == "local" and r.error is None and not r.skipped and _p50(r) != float("inf"):
            out.setdefault((r.artifact, r.threads), _p50(r))
    return out


def _is_browser(r: Row) -> bool:
    return r.device == "chromium"


def _ratio(r: Row, native: dict) -> float | None:
    """Browser p50 over native p50 of the same artifact at the same threads; None for other rows."""
    base = native.get((r.artifact, r.threads)) if _is_browser(r) and not (r.error or r.skipped) else None
    return _p50(r) / base if base and _p50(r) != float("inf") else None


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _not_deployable(r: Row) -> str:
    """Why a browser row is a reference, not a way to ship (TF.js cpu: plain JS; WebGL on a software rasterizer)."""
    if not _is_browser(r):
        return ""
    if r.runtime == "tfjs" and r.backend == "cpu":
        return "TF.js cpu (plain JS): reference only, not a deployment choice"
    if r.backend == "webgl" and "software" in (r.build or "").lower():
        return f"{r.build}: CPU-emulated WebGL, not a deployment choice"
    return ""


def mcu_note(r: Row) -> str:
    """A microcontroller row's own figures: arena and flash, whether they fit the board given, host-time latency."""
    if r.where != "mcu" or r.error or r.skipped or r.arena_bytes is None:
        return ""
    s = f"MCU: arena {r.arena_bytes:,} B, flash {r.flash_bytes:,} B"
    if r.fits:
        short = [f"{k} short by {v['short_by']:,} B" for k, v in r.fits.items() if isinstance(v, dict) and not v["ok"]]
        s += "; " + ("; ".join(short) if short else "fits " + " / ".join(
            f"{_fmt_bytes(v['have'])} {k}" for k, v in r.fits.items() if isinstance(v, dict)))
    return s + "; host time, not board time"


def vs_host_divergence(r: Row) -> str:
    """Where the row's outputs leave the host runtime's on the same artifact beyond the task's parity tolerance for
    the recipe's family (agreement / cosine / SNR), e.g. an ARM kernel against x86's; empty when within it."""
    v = r.vs_host or {}
    if not v or v.get("error") or r.error or r.skipped:
        return ""
    from edgeport.recipes import get_recipe

    try:
        tol = get_task(r.task).tolerance.get(get_recipe(r.recipe).family, {})
    except Exception:  # an unknown task / recipe in an old report: nothing to judge against
        return ""
    out = v.get("output", "output")
    worst = [f"agreement {v['agreement']:.1%} < {tol['min_agreement']:.0%}"
             for _ in [0] if v.get("agreement") is not None and "min_agreement" in tol and v["agreement"] < tol["min_agreement"]]
    if v.get("cosine_mean") is not None and "min_cosine" in tol and v["cosine_mean"] < tol["min_cosine"]:
        worst.append(f"cosine {v['cosine_mean']:.5f} < {tol['min_cosine']}")
    if v.get("snr_db") is not None and "min_snr_db" in tol and v["snr_db"] < tol["min_snr_db"]:
        worst.append(f"SNR {v['snr_db']:.1f} dB < {tol['min_snr_db']:g}")
    if not worst:
        return ""
    return f"DIVERGES from {v.get('runtime', 'host')}: {out} max|d| {v.get('max_abs_diff', float('nan')):.3g}, " + ", ".join(worst)


def emulated_note(r: Row) -> str:
    """An emulated row: the core it emulated and its distance from the host runtime's outputs (ARM vs x86)."""
    if r.where != "emulated" or r.error or r.skipped:
        return ""
    v = r.vs_host or {}
    if v.get("error"):
        vs = f"vs {v.get('runtime', 'host')}: {v['error']}"
    elif v:
        vs = f"vs {v.get('runtime', 'host')} (x86) max|d| {v.get('max_abs_diff', float('nan')):.2g}" + (
            f" agree {v['agreement']:.1%}" if v.get("agreement") is not None else f" cos {v.get('cosine_mean', float('nan')):.5f}")
    else:
        vs = ""
    return "; ".join(x for x in (f"ARM {r.cpu} (emulated)", vs, vs_host_divergence(r), r.note) if x)


def _short_build(b: str | None) -> str:
    """A build without its trailing parenthesis (the wasm file), for the terminal."""
    if not b:
        return "-"
    return b[: b.rindex(" (")] if b.endswith(")") and " (" in b and not b.startswith("software GL") else b


def _arranged(rows: list[Row]) -> list[Row]:
    """Rows grouped by artifact (artifacts in the given order), each group by thread count, the native row first
    and the browser rows of the same thread count right after it (fastest first)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.artifact, []).append(r)

    def order(r: Row):
        return (r.error is not None or bool(r.skipped), r.threads is None, r.threads or 0, _is_browser(r), _p50(r))

    return [r for g in groups.values() for r in sorted(g, key=order)]


def browser_fastest(report: Report, budget: Budget | None = None) -> dict[str, Row]:
    """Per source model: the fastest browser setup (runtime, backend, build, threads) within the budget."""
    b = budget or report.budget
    out: dict[str, Row] = {}
    for r in report.rows:
        if _is_browser(r) and r.within(b) and _p50(r) != float("inf") and not _not_deployable(r):
            if r.source not in out or _p50(r) < _p50(out[r.source]):
                out[r.source] = r
    return out


def _describe_setup(r: Row, native: dict) -> str:
    ratio = _ratio(r, native)
    return (f"{r.artifact} {r.runtime}/{r.backend}" + (f" [{_short_build(r.build)}]" if r.build else "")
            + f" @{r.threads}t ({_p50(r):.3f} ms" + (f", {ratio:.2f}x native" if ratio else "") + ")")


def capabilities_line(report: Report) -> str | None:
    """What the browser offered, from report.extra["browser_capabilities"], as one line."""
    c = report.extra.get("browser_capabilities")
    if not c:
        return None
    yes = lambda v: "yes" if v is True else ("no" if not v else str(v))  # noqa: E731
    gl = c.get("webgl")
    gl = ("software (SwiftShader)" if "swiftshader" in str(gl).lower() else yes(gl)) if gl is not None else "?"
    ua = str(c.get("userAgent", ""))
    name = next((t for t in ua.split() if t.startswith(("HeadlessChrome/", "Chrome/", "Firefox/"))), "browser")
    return (f"{name}: cross-origin isolated {yes(c.get('crossOriginIsolated'))}, SIMD {yes(c.get('simd'))},"
            f" relaxed SIMD {yes(c.get('relaxedSimd'))}, threads {yes(c.get('threads'))}"
            f" ({c.get('hardwareConcurrency', '?')} cores), WebGPU {yes(c.get('webgpu'))}, WebNN {yes(c.get('webnn'))},"
            f" WebGL {gl}")


def table(report: Report, budget: Budget | None = None) -> str:
    """Terminal tables, one per source model with its task's metrics: rows within budget first, smallest first."""
    if budget is not None:
        report.budget = budget
    b, mark, out, native = report.budget, _marks(report), [], _native_p50(report)
    for src in report.sources() + (["?"] if any(r.source == "?" for r in report.rows) else []):
        rows = _arranged(_source_rows(report, src)) if src != "?" else [r for r in report.rows if r.source == "?"]
        task = rows[0].task if rows else "classification"
        cols = get_task(task).columns
        head = ("artifact", "runtime/backend", "build", "thr", "size", "gzip", *[c[0] for c in cols], "p50 ms",
                "x native", "p90 ms", "load ms", "deleg", "note")
        lines = [head]
        for r in rows:
            if r.error or r.skipped:
                why = ("ERROR: " + r.error[:100]) if r.error else "skipped: " + r.skipped[:100]
                lines.append((r.artifact, f"{r.runtime}/{r.backend}", _short_build(r.build), _fmt(r.threads, "d"),
                              _fmt_bytes(r.bytes), "", *[""] * len(cols), "", "", "", "", "", why))
                continue
            lat = r.latency_ms or {}
            note = "; ".join(x for x in (flag_note(r), mark.get(r.key(), "") or ("" if r.within(b) else f"over budget ({b.describe(r.task)})"),
                                         _not_deployable(r), mcu_note(r), emulated_note(r)) if x)
            lines.append((r.artifact, f"{r.runtime}/{r.backend}", _short_build(r.build), _fmt(r.threads, "d"),
                          _fmt_bytes(r.bytes), _fmt_bytes(r.gzip_bytes), *[c[1](r) for c in cols],
                          _fmt(lat.get("p50"), ".3f"), _fmt_ratio(_ratio(r, native)), _fmt(lat.get("p90"), ".3f"),
                          _fmt(r.load_ms, ".1f"), f"{r.delegated}/{r.ops_total}" if r.ops_total else "-", note))
        widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
        body = ["  ".join(str(c).ljust(w) for c, w in zip(l, widths)).rstrip() for l in lines]
        body.insert(1, "  ".join("-" * w for w in widths))
        base = report.float_baseline.get(src)
        data = report.extra.get("data_by_source", {}).get(src, report.data)
        title = f"{src} ({task}; data {data}" + (f"; float accuracy {100 * base:.2f}%" if base is not None else "") + ")"
        out += [title, *body, ""]
    out.append(f"budget: {b.describe()}")
    fastest_browser = browser_fastest(report)
    for src, p in report.picks().items():
        s, f = p["smallest"], p["fastest"]
        out.append(f"{src}: smallest within budget: {s.artifact if s else '-'}; fastest: "
                   + (f"{f.artifact} @{f.threads}t {f.runtime}/{f.backend} ({_p50(f):.3f} ms)" if f else "-")
                   + (f"; fastest in the browser: {_describe_setup(fastest_browser[src], native)}"
                      if src in fastest_browser else ""))
    h = report.host
    out.append(f"host: {h.get('cpu', '?')} ({h.get('cores', '?')} cores; {', '.join(h.get('simd', [])) or 'no AVX2'})")
    caps = capabilities_line(report)
    if caps:
        out.append(f"browser: {caps}")
    return "\n".join(out)


def parity_text(task: str, o: dict) -> str:
    """One compared output in the task's terms (conversion log and table), its failing flags first."""
    from .metrics import describe_flags

    flagged = describe_flags(o.get("flags"), o.get("norm_ratio"))
    return (f"FLAGGED {flagged}; " if flagged else "") + get_task(task).parity_text(o)


def artifact_table(manifests) -> str:
    """The table printed after `edgeport convert`: bytes, ratio to fp32, parity in the task's terms."""
    fp32 = {(m.source["model"], m.target): m.total_bytes for m in manifests if m.recipe == "fp32"}
    from .weights import short

    rows = [("artifact", "target", "recipe", "bytes", "x fp32", "parity (primary output)", "status", "delegated",
             "weights as stored")]
    for m in manifests:
        base = fp32.get((m.source["model"], m.target))
        p = (m.parity.get("outputs") or [{}])[0]
        status = m.parity.get("status")
        if status == "measured":
            status = "ok" if m.parity.get("within_tolerance") else "OUT OF TOLERANCE"
        par = parity_text(m.task, p) if p else "-"
        d = m.delegation
        rows.append((m.name, m.target, m.recipe, f"{m.total_bytes:,}", f"{m.total_bytes / base:.2f}" if base else "-",
                     par, status or "-", f"{d['delegated']}/{d['total']} {d['unit']}" if d else "-",
                     short(getattr(m, "weights", None))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- html
def _pareto(points: list[tuple[float, float, Any]]) -> list[Any]:
    """Points not dominated when minimising x and maximising y."""
    front, best = [], -float("inf")
    for x, y, k in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append(k)
            best = y
    return front


def _target_colors() -> dict[str, str]:
    """One colour per registered target, in registry order (a new target gets the next one)."""
    from .registry import targets

    palette = ["#9467bd", "#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    return {t: palette[i % len(palette)] for i, t in enumerate(targets())}


def _plots(report: Report) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in report.rows if r.error is None and not r.skipped and r.quality() is not None]
    imgs = []
    # quality vs bytes, one panel per source model (one point per artifact: runtimes share its size)
    by_art: dict[str, Row] = {}
    for r in ok:
        by_art.setdefault(r.artifact, r)
    sources = sorted({r.source for r in by_art.values()})
    if sources:
        fig, axes = plt.subplots(1, len(sources), figsize=(6 * len(sources), 4.4), squeeze=False)
        for ax, src in zip(axes[0], sources):
            pts = [(r.bytes, r.quality(), r.artifact) for r in by_art.values() if r.source == src and r.bytes]
            task = by_art[pts[0][2]].task if pts else "classification"
            front = set(_pareto(pts))
            for n, (x, y, k) in enumerate(sorted(pts)):
                r = by_art[k]
                ax.scatter(x / 1024, y, s=70 if k in front else 35, c=_target_colors().get(r.target, "gray"),
                           edgecolors="black" if k in front else "none", zorder=3)
                ax.annotate(f"{r.target} {r.recipe}", (x / 1024, y), fontsize=7, rotation=30,
                            xytext=(3, 4 + 9 * (n % 3)), textcoords="offset points")
            fr = sorted((p for p in pts if p[2] in front), key=lambda p: p[0])
            ax.plot([p[0] / 1024 for p in fr], [p[1] for p in fr], "k--", lw=0.8, label="Pareto front")
            if get_task(task).labels and src in report.float_baseline:
                ax.axhline(100 * report.float_baseline[src], color="gray", lw=0.9, ls=":", label="float baseline")
            _log_x(ax)
            ax.set_xlabel("artifact size (KiB, log)")
            ax.set_ylabel(get_task(task).quality_label)
            ax.set_title(src, fontsize=10)
            ax.grid(alpha=0.3)
            for t, c in _target_colors().items():
                ax.scatter([], [], c=c, label=t)
            ax.legend(fontsize=7, loc="lower right")
        fig.suptitle("Quality vs size (outlined: Pareto front)")
        fig.tight_layout()
        imgs.append(_svg(fig))
        plt.close(fig)

    # latency per artifact x backend x threads
    timed = sorted([r for r in ok if r.latency_ms and "p50" in r.latency_ms], key=lambda r: (r.source, r.artifact, r.device, r.backend, r.threads or 0))
    if timed:
        fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(timed) + 1)))
        labels = [f"{r.artifact} | {r.device}/{r.backend} | {r.threads}t" for r in timed]
        p50 = [r.latency_ms["p50"] for r in timed]
        p90 = [r.latency_ms["p90"] for r in timed]
        lat_front = set(_pareto([(r.latency_ms["p50"], r.quality(), i) for i, r in enumerate(timed)]))
        ys = range(len(timed))
        ax.barh(ys, p90, color="#cccccc", label="p90")
        ax.barh(ys, p50, color=["#ff7f0e" if i in lat_front else _target_colors().get(r.target, "gray") for i, r in enumerate(timed)], label="p50")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=6)
        ax.invert_yaxis()
        _log_x(ax)
        ax.set_xlabel("latency per inference (ms, log)")
        ax.set_title("Latency (orange: Pareto front of latency vs quality)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        imgs.append(_svg(fig))
        plt.close(fig)
    return imgs


def _log_x(ax) -> None:
    """A log x axis labelled 1, 2, 5 x 10^k in plain numbers: matplotlib's default labels every minor tick in
    mathtext when the data span less than a decade, and they run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    s = buf.getvalue()
    return s[s.index("<svg"):]


def render_html(report: Report) -> str:
    """Self-contained HTML (inline SVG plots, no network): one table per source model in its task's metrics."""
    try:
        plots = _plots(report)
    except Exception as e:  # plotting must never cost the report
        plots = [f"<p>plots unavailable: {html.escape(str(e))}</p>"]
    mark, b, native, fastest_browser = _marks(report), report.budget, _native_p50(report), browser_fastest(report)
    sections = []
    for src in report.sources():
        rows = _arranged(_source_rows(report, src))
        task = rows[0].task
        cols = get_task(task).columns
        head = ["artifact", "device", "runtime/backend", "build", "threads", "bytes", "gzip", *[c[0] for c in cols],
                "p50 ms", "x native", "p90 ms", "p99 ms", "load ms", "peak RSS", "delegated", "weights as stored", "note"]
        body = []
        for r in rows:
            lat = r.latency_ms or {}
            cls = "err" if r.error else ("skip" if r.skipped else ("pick" if r.key() in mark else ("" if r.within(b) else "over")))
            cls += " browser" if _is_browser(r) else ""
            cls += " emulated" if r.where == "emulated" else ""
            note = r.error or (f"skipped: {r.skipped}" if r.skipped else "; ".join(x for x in (
                flag_note(r), mark.get(r.key(), "") or ("" if r.within(b) else f"over budget ({b.describe(task)})"),
                "fastest browser setup" if fastest_browser.get(src) is r else "", _not_deployable(r), mcu_note(r),
                emulated_note(r)) if x))
            cells = [r.artifact, r.device, f"{r.runtime}/{r.backend}", r.build or "-", _fmt(r.threads, "d"),
                     _fmt(r.bytes, ","), _fmt_bytes(r.gzip_bytes),
                     *[c[1](r) if not (r.error or r.skipped) else "" for c in cols],
                     _fmt(lat.get("p50"), ".3f"), _fmt_ratio(_ratio(r, native)), _fmt(lat.get("p90"), ".3f"),
                     _fmt(lat.get("p99"), ".3f"), _fmt(r.load_ms, ".1f"), _fmt_bytes(r.peak_rss_delta_bytes),
                     f"{r.delegated}/{r.ops_total}" if r.ops_total else "-", short_weights(r.weights), note]
            body.append(f"<tr class='{cls.strip()}'>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        base = report.float_baseline.get(src)
        data = report.extra.get("data_by_source", {}).get(src, report.data)
        ref = report.extra.get("reference_by_source", {}).get(src)
        p = report.picks().get(src, {})
        pick = " ".join(f"<b>{k}</b>: {html.escape(v.artifact)} ({html.escape(v.device)}/{html.escape(v.backend)}, {v.threads}t)."
                        for k, v in p.items() if v)
        if src in fastest_browser:
            pick += f" <b>fastest in the browser</b>: {html.escape(_describe_setup(fastest_browser[src], native))}."
        sections.append(
            f"<h2>{html.escape(src)} <small>({task})</small></h2><p>Data: {html.escape(str(data))}."
            + (f" Float accuracy {100 * base:.2f}%." if base is not None else "")
            + (f" Reference: {html.escape(str(ref))}." if ref else "")
            + f" Budget: {html.escape(b.describe(task))}. {pick or 'Nothing within budget.'}</p>"
            + f"<table><thead><tr>{''.join(f'<th>{html.escape(c)}</th>' for c in head)}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    orphans = [r for r in report.rows if r.source == "?"]
    if orphans:
        sections.append("<h2>Unreadable artifacts</h2><ul>" + "".join(
            f"<li>{html.escape(r.manifest)}: {html.escape(r.error or '')}</li>" for r in orphans) + "</ul>")
    h = report.host
    hosttxt = f"{h.get('cpu', '?')}, {h.get('cores', '?')} cores, {', '.join(h.get('simd', [])) or 'no AVX2'}; {h.get('system', '')}"
    caps = capabilities_line(report)
    capstxt = (f"<p id='browser-capabilities'>Browser: {html.escape(caps)}. Browser rows sit under the native row of the"
               " same artifact at the same thread count; <i>x native</i> is browser p50 / native p50.</p>") if caps else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgeport report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ddd;padding:3px 6px;text-align:right}} td:first-child,td:last-child{{text-align:left}}
tr.err{{background:#fde8e8}} tr.pick{{background:#e8f6e8}} tr.browser td:nth-child(2){{font-style:italic}} tr.skip{{color:#888}} tr.over{{color:#a60}} tr.emulated td:nth-child(3){{color:#05a;font-weight:bold}}
.plots svg{{max-width:100%;height:auto}} small{{color:#666;font-weight:normal}}</style></head>
<body><h1>edgeport report</h1>
<p>Created {html.escape(report.created)} on {html.escape(hosttxt)}. Budget: {html.escape(b.describe())}.</p>
{capstxt}
<div class="plots">{''.join(plots)}</div>
{''.join(sections)}
<script type="application/json" id="report-json">{html.escape(json.dumps(report.to_dict(), default=str))}</script>
</body></html>
"""
