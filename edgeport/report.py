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

SCHEMA = 1


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
    bytes: int | None = None
    gzip_bytes: int | None = None
    load_ms: float | None = None
    latency_ms: dict | None = None  # {p50, p90, p99, mean, std}
    runs: int | None = None
    peak_rss_delta_bytes: int | None = None
    accuracy: float | None = None  # top-1 on labels, 0..1
    float_accuracy: float | None = None  # the float original's accuracy on the same data
    accuracy_drop_pp: float | None = None  # (float - this) in percentage points
    agreement: float | None = None  # top-1 agreement with the float original
    max_abs_diff: float | None = None  # of the logits against the float original
    samples: int | None = None
    delegated: int | None = None
    ops_total: int | None = None
    runtime_version: str = ""
    error: str | None = None

    def key(self) -> tuple:
        return (self.artifact, self.runtime, self.backend, self.threads, self.device)

    def within(self, budget_pp: float) -> bool:
        """A row that ran and lost at most `budget_pp` points of accuracy against float."""
        return self.error is None and self.accuracy_drop_pp is not None and self.accuracy_drop_pp <= budget_pp


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: str = "builtin:digits"
    float_baseline: dict = field(default_factory=dict)  # source id -> accuracy
    host: dict = field(default_factory=lambda: {"machine": platform.machine(), "python": platform.python_version(),
                                                "system": platform.platform(terse=True)})
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    extra: dict = field(default_factory=dict)  # run facts: wall time, ...
    schema: int = SCHEMA

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict:
        return {"schema": self.schema, "created": self.created, "data": self.data, "host": self.host,
                "float_baseline": self.float_baseline, "extra": self.extra, "rows": [asdict(r) for r in self.rows]}

    def write(self, folder: str | Path) -> Path:
        folder = Path(folder)
        p = folder / "report.json"
        write_text_atomic(p, json.dumps(self.to_dict(), indent=1) + "\n")
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
                   created=d.get("created", ""), extra=d.get("extra", {}), schema=d.get("schema", SCHEMA))

    def merge(self, rows: list[Row]) -> None:
        """Add rows, replacing rows with the same key (artifact x runtime x backend x threads x device)."""
        new = {r.key(): r for r in rows}
        self.rows = [r for r in self.rows if r.key() not in new] + list(new.values())

    # ------------------------------------------------------------------ choices
    def picks(self, budget_pp: float) -> dict[str, Row | None]:
        """Smallest and fastest artifact whose accuracy drop stays within the budget."""
        ok = [r for r in self.rows if r.within(budget_pp)]
        timed = [r for r in ok if _p50(r) != float("inf")]
        return {
            "smallest": min(ok, key=lambda r: (r.bytes or 0, _p50(r)), default=None),
            "fastest": min(timed, key=_p50, default=None),
        }

    def best_per_target(self, budget_pp: float) -> dict[str, Row]:
        out = {}
        for r in self.rows:
            if not r.within(budget_pp):
                continue
            key = f"{r.target} ({r.device})" if r.device != "local" else r.target
            cur = out.get(key)
            if cur is None or (r.bytes or 0, _p50(r)) < (cur.bytes or 0, _p50(cur)):
                out[key] = r
        return out


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


def table(report: Report, budget_pp: float = 0.5) -> str:
    """Terminal table: rows within the budget first, smallest first; picks are marked."""
    picks = report.picks(budget_pp)
    mark = {}
    if picks["smallest"]:
        mark[picks["smallest"].key()] = "smallest"
    if picks["fastest"]:
        mark[picks["fastest"].key()] = (mark.get(picks["fastest"].key(), "") + " fastest").strip()

    def order(r: Row):
        return (r.error is not None, not r.within(budget_pp), r.bytes or 0, _p50(r))

    head = ("artifact", "runtime/backend", "thr", "size", "gzip", "acc %", "drop pp", "agree %", "p50 ms", "p90 ms", "p99 ms", "load ms", "deleg", "note")
    lines = [head]
    for r in sorted(report.rows, key=order):
        if r.error:
            lines.append((r.artifact, f"{r.runtime}/{r.backend}", _fmt(r.threads, "d"), _fmt_bytes(r.bytes), "", "", "", "", "", "", "", "", "", "ERROR: " + r.error[:90]))
            continue
        lat = r.latency_ms or {}
        note = mark.get(r.key(), "") or ("" if r.within(budget_pp) else f"over {budget_pp:g} pp budget")
        lines.append((
            r.artifact, f"{r.runtime}/{r.backend}", _fmt(r.threads, "d"), _fmt_bytes(r.bytes), _fmt_bytes(r.gzip_bytes),
            _fmt(None if r.accuracy is None else 100 * r.accuracy, ".2f"), _fmt(r.accuracy_drop_pp, "+.2f"),
            _fmt(None if r.agreement is None else 100 * r.agreement, ".1f"),
            _fmt(lat.get("p50"), ".3f"), _fmt(lat.get("p90"), ".3f"), _fmt(lat.get("p99"), ".3f"), _fmt(r.load_ms, ".1f"),
            f"{r.delegated}/{r.ops_total}" if r.ops_total else "-", note,
        ))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(l, widths)).rstrip() for l in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    base = ", ".join(f"{k}: {100 * v:.2f}%" for k, v in report.float_baseline.items())
    out.append(f"\nfloat baseline ({report.data}): {base or '-'}; budget {budget_pp:g} pp;"
               f" smallest within budget: {picks['smallest'].artifact if picks['smallest'] else '-'};"
               f" fastest within budget: {picks['fastest'].artifact + ' @' + str(picks['fastest'].threads) + 't ' + picks['fastest'].backend if picks['fastest'] else '-'}")
    return "\n".join(out)


def artifact_table(manifests) -> str:
    """The table printed after `edgeport convert`: bytes, ratio to fp32, parity."""
    fp32 = {(m.source["model"], m.target): m.total_bytes for m in manifests if m.recipe == "fp32"}
    rows = [("artifact", "target", "recipe", "bytes", "x fp32", "max |diff|", "top-1 agree", "parity", "delegated")]
    for m in manifests:
        base = fp32.get((m.source["model"], m.target))
        p = (m.parity.get("outputs") or [{}])[0]
        status = m.parity.get("status")
        if status == "measured":
            status = "ok" if m.parity.get("within_tolerance") else "OUT OF TOLERANCE"
        d = m.delegation
        rows.append((m.name, m.target, m.recipe, f"{m.total_bytes:,}", f"{m.total_bytes / base:.2f}" if base else "-",
                     _fmt(p.get("max_abs_diff"), ".2g"), _fmt(p.get("top1_agreement"), ".3f"), status or "-",
                     f"{d['delegated']}/{d['total']} {d['unit']}" if d else "-"))
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


def _plots(report: Report) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in report.rows if r.error is None and r.accuracy is not None]
    imgs = []
    # accuracy vs bytes, one panel per source model (one point per artifact: runtimes share its size)
    colors = {"tflite": "#1f77b4", "pte": "#d62728", "tfjs": "#2ca02c"}
    by_art: dict[str, Row] = {}
    for r in ok:
        by_art.setdefault(r.artifact, r)
    sources = sorted({r.source for r in by_art.values()})
    if sources:
        fig, axes = plt.subplots(1, len(sources), figsize=(6 * len(sources), 4.4), squeeze=False)
        for ax, src in zip(axes[0], sources):
            pts = [(r.bytes, 100 * r.accuracy, r.artifact) for r in by_art.values() if r.source == src and r.bytes]
            front = set(_pareto(pts))
            for n, (x, y, k) in enumerate(sorted(pts)):
                r = by_art[k]
                ax.scatter(x / 1024, y, s=70 if k in front else 35, c=colors.get(r.target, "gray"),
                           edgecolors="black" if k in front else "none", zorder=3)
                ax.annotate(f"{r.target} {r.recipe}", (x / 1024, y), fontsize=7, rotation=30,
                            xytext=(3, 4 + 9 * (n % 3)), textcoords="offset points")
            fr = sorted((p for p in pts if p[2] in front), key=lambda p: p[0])
            ax.plot([p[0] / 1024 for p in fr], [p[1] for p in fr], "k--", lw=0.8, label="Pareto front")
            if src in report.float_baseline:
                ax.axhline(100 * report.float_baseline[src], color="gray", lw=0.9, ls=":", label="float baseline")
            ys = [p[1] for p in pts] + [100 * report.float_baseline.get(src, pts[0][1] / 100 if pts else 0)]
            ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
            ax.set_xscale("log")
            ax.set_xlabel("artifact size (KiB, log)")
            ax.set_ylabel("held-out top-1 accuracy (%)")
            ax.set_title(src, fontsize=10)
            ax.grid(alpha=0.3)
            for t, c in colors.items():
                ax.scatter([], [], c=c, label=t)
            ax.legend(fontsize=7, loc="lower right")
        fig.suptitle("Accuracy vs size (outlined: Pareto front)")
        fig.tight_layout()
        imgs.append(_svg(fig))
        plt.close(fig)

    # latency per artifact x backend x threads
    timed = sorted([r for r in ok if r.latency_ms and "p50" in r.latency_ms], key=lambda r: (r.artifact, r.device, r.backend, r.threads or 0))
    if timed:
        fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(timed) + 1)))
        labels = [f"{r.artifact} | {r.device}/{r.backend} | {r.threads}t" for r in timed]
        p50 = [r.latency_ms["p50"] for r in timed]
        p90 = [r.latency_ms["p90"] for r in timed]
        lat_front = set(_pareto([(r.latency_ms["p50"], r.accuracy, i) for i, r in enumerate(timed)]))
        ys = range(len(timed))
        ax.barh(ys, p90, color="#cccccc", label="p90")
        ax.barh(ys, p50, color=["#ff7f0e" if i in lat_front else colors.get(r.target, "gray") for i, r in enumerate(timed)], label="p50")
        floats = [r.latency_ms["p50"] for r in timed if r.recipe == "fp32"]
        if floats:
            ax.axvline(min(floats), color="gray", ls=":", lw=0.8, label="fastest fp32 (float baseline)")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("latency per inference (ms, log)")
        ax.set_title("Latency (orange: Pareto front of latency vs accuracy)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        imgs.append(_svg(fig))
        plt.close(fig)
    return imgs


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    s = buf.getvalue()
    return s[s.index("<svg"):]


def render_html(report: Report, budget_pp: float = 0.5) -> str:
    """Self-contained HTML (inline SVG plots, no network)."""
    try:
        plots = _plots(report)
    except Exception as e:  # plotting must never cost the report
        plots = [f"<p>plots unavailable: {html.escape(str(e))}</p>"]
    cols = ["artifact", "device", "runtime", "backend", "threads", "bytes", "gzip_bytes", "accuracy", "accuracy_drop_pp",
            "agreement", "max_abs_diff", "p50", "p90", "p99", "load_ms", "peak_rss_delta_bytes", "delegated", "error"]
    picks = report.picks(budget_pp)
    body = []
    for r in report.rows:
        d = asdict(r)
        d.update({k: (r.latency_ms or {}).get(k) for k in ("p50", "p90", "p99")})
        cls = "err" if r.error else ("pick" if any(p is r for p in picks.values()) else "")
        cells = []
        for c in cols:
            v = d.get(c)
            if c == "delegated" and r.ops_total:
                v = f"{r.delegated}/{r.ops_total}"
            if isinstance(v, float):
                v = f"{100 * v:.2f}%" if c in ("accuracy", "agreement") else f"{v:.4g}"
            cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        body.append(f"<tr class='{cls}'>" + "".join(cells) + "</tr>")
    pick_txt = " ".join(f"<b>{k}</b> within {budget_pp:g} pp: {html.escape(v.artifact)} ({v.device}/{v.backend}, {v.threads}t)."
                        for k, v in picks.items() if v)
    base = ", ".join(f"{html.escape(k)}: {100 * v:.2f}%" for k, v in report.float_baseline.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgeport report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ddd;padding:3px 6px;text-align:right}} td:first-child{{text-align:left}}
tr.err{{background:#fde8e8}} tr.pick{{background:#e8f6e8}} .plots svg{{max-width:100%;height:auto}}</style></head>
<body><h1>edgeport report</h1>
<p>Data: {html.escape(report.data)}. Float baseline: {base or '-'}. Created {html.escape(report.created)} on {html.escape(json.dumps(report.host))}.</p>
<p>{pick_txt}</p>
<div class="plots">{''.join(plots)}</div>
<h2>All rows ({len(report.rows)})</h2>
<table id="rows"><thead><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr></thead><tbody>
{''.join(body)}
</tbody></table>
<script type="application/json" id="report-json">{html.escape(json.dumps(report.to_dict()))}</script>
</body></html>
"""


