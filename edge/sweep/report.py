"""The sweep's report: every row (report.json, the one report schema plus a ``coverage`` block), the coverage table
(coverage.md, coverage.json) and report.html, built to stay readable at a thousand rows: the coverage grid first,
then failures by group, plots per runtime with the budget drawn, one sortable and filterable table, one folded
section per model."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

from edgeport.fileio import write_text_atomic
from edgeport.report import Budget, Report, Row, _svg

from .limits import GROUPS, classify

_TARGET_ORDER = ["tflite", "onnx", "pte", "tfjs"]
_RECIPE_ORDER = ["fp32", "fp16", "dynamic-int8", "int8", "uint8", "uint16"]
MARK = {"ok": "✓", "drift": "≈", "failed": "✗", "pending": "…", "not run": "?", "n/a": "–"}


def _order(t: str, r: str) -> tuple:
    return (_TARGET_ORDER.index(t) if t in _TARGET_ORDER else 99, t,
            _RECIPE_ORDER.index(r) if r in _RECIPE_ORDER else 99, r)


def _headline(task: str, o: dict | None) -> dict:
    """The parity numbers of a primary output that say most about its task."""
    if not o:
        return {}
    keep = {"agreement": o.get("top1_agreement"), "cosine": o.get("cosine_mean"), "snr_db": o.get("snr_db"),
            "max_abs_diff": o.get("max_abs_diff")}
    return {k: v for k, v in keep.items() if v is not None}


def _short(task: str, p: dict) -> str:
    if task == "classification" and "agreement" in p:
        return f"agree {100 * p['agreement']:.1f}%"
    if task == "regression" and "snr_db" in p:
        return f"SNR {p['snr_db']:.1f} dB"
    if "cosine" in p:
        return f"cos {p['cosine']:.4f}"
    return ""


def build_report(plan, cache, where: dict) -> tuple[Report, dict]:
    rows: list[Row] = []
    baseline: dict = {}
    extra: dict = {"data_by_source": {}, "reference_by_source": {}}
    cells = []
    known = set(Row.__dataclass_fields__)
    for job in plan.converts:
        e, t, r = job.entry, job.target, job.recipe
        res = cache.get(job)
        cell = {"model": e.label, "framework": e.framework, "target": t, "recipe": r}
        if res is None:
            cell.update(status="not run", reason="no result yet (the sweep stopped, or is still running, before this job)")
            cells.append(cell)
            continue
        cell["seconds"] = res.get("seconds")
        if res.get("status") != "ok":
            c = classify(res.get("error", {}), t)
            cell.update(status="failed", **c)
            rows.append(Row(artifact=f"{e.label}.{r}.{t}", target=t, recipe=r, source=e.label, runtime="converter",
                            backend="-", threads=None, device="local", task=e.get("task") or "classification",
                            error=f"conversion failed: {c['reason']}"))
            cells.append(cell)
            continue
        m = json.loads((cache.convert_dir(job.key) / res["manifest"]).read_text())
        task = m.get("task", "classification")
        par = m.get("parity") or {}
        cell.update(task=task, artifact=m["name"], bytes=sum(f.get("bytes", 0) for f in m.get("files", [])),
                    parity=_headline(task, (par.get("outputs") or [None])[0]))
        if par.get("status") == "measured":
            within = par.get("within_tolerance")
            cell["status"] = "ok" if within else "drift"
            if not within:
                cell.update(group="parity", reason="; ".join(par.get("failures") or []) or "outside tolerance")
        else:
            cell["status"] = "pending"  # TF.js: parity is measured in the browser
            cell["reason"] = "parity measured in the browser only (runtime = [\"native\", \"chromium\"])"
        measured = {}
        for mj in plan.measures.get(job.key, []):
            mres = cache.get(mj)
            if mres is None:
                continue
            if mres.get("status") != "ok":
                c = classify(mres.get("error", {}), t)
                rows.append(Row(artifact=m["name"], target=t, recipe=r, source=e.label, runtime=mj.runtime, backend="-",
                                threads=None, device="chromium" if mj.runtime == "chromium" else "local", task=task,
                                manifest=str(where.get(job.key, "")), error=f"measurement failed: {c['reason']}"))
                measured[mj.runtime] = {"error": c["reason"], "group": c["group"]}
                continue
            for d in mres.get("rows", []):
                row = Row(**{k: v for k, v in d.items() if k in known})
                row.source, row.manifest = e.label, str(where.get(job.key, ""))
                rows.append(row)
                q = {k: getattr(row, k) for k in ("accuracy", "accuracy_drop_pp", "agreement", "cosine_mean", "snr_db")
                     if getattr(row, k) is not None}
                if row.latency_ms:
                    q["p50_ms"] = row.latency_ms.get("p50")
                if row.skipped:
                    q["skipped"] = row.skipped
                if row.error:
                    q["error"] = row.error
                measured.setdefault(f"{mj.runtime} {row.backend}" + (f" {row.threads}t" if row.threads else ""), q)
            for src, v in (mres.get("float_baseline") or {}).items():
                baseline[e.label] = v
            for k in ("data_by_source", "reference_by_source"):
                for v in (mres.get("extra", {}).get(k) or {}).values():
                    extra[k][e.label] = v
            if mres.get("extra", {}).get("browser_capabilities"):
                extra["browser_capabilities"] = mres["extra"]["browser_capabilities"]
            if cell["status"] == "pending" and mj.runtime == "chromium":
                brows = [Row(**{k: v for k, v in d.items() if k in known}) for d in mres.get("rows", [])]
                if any(b.error is None and not b.skipped for b in brows):
                    b = _budget(e)
                    cell["status"] = "ok" if any(x.within(b) for x in brows) else "drift"
                    cell.pop("reason", None)
        if measured:
            cell["measured"] = measured
        cells.append(cell)
    for e, t, r, why in plan.not_applicable:
        cells.append({"model": e.label, "framework": e.framework, "target": t, "recipe": r, "status": "n/a", "reason": why})
    order = {e.label: i for i, e in enumerate(plan.matrix.entries)}
    cells.sort(key=lambda c: (order[c["model"]], _order(c["target"], c["recipe"])))
    report = Report(rows=rows, data="each model's --data, else its probe rows", float_baseline=baseline, extra=extra)
    return report, coverage(cells, plan)


def _budget(e) -> Budget:
    from edgeport import defaults

    return Budget(max_drop_pp=float(e.get("budget", defaults.ACCURACY_BUDGET_PP)),
                  min_cosine=float(e.get("min-cosine", defaults.MIN_COSINE)),
                  min_snr_db=float(e.get("min-snr", defaults.MIN_SNR_DB)))


def coverage(cells: list[dict], plan) -> dict:
    summary: dict = {}
    for c in cells:
        if c["status"] == "n/a":
            continue
        s = summary.setdefault(f"{c['target']} {c['recipe']}", Counter())
        s["total"] += 1
        s[c["status"]] += 1
    summary = {k: dict(v) for k, v in sorted(summary.items(), key=lambda kv: _order(*kv[0].split(" ")))}
    groups: dict = {g: [] for g in GROUPS}
    limitations: dict = {}
    for c in cells:
        if c["status"] in ("failed", "drift", "not run") and c.get("group"):
            groups[c["group"]].append({k: c[k] for k in ("model", "target", "recipe", "reason") if k in c})
        if c.get("converter"):
            lim = limitations.setdefault(c["what"], {k: c.get(k) for k in ("converter", "what", "upstream", "workaround")} | {"cells": []})
            lim["cells"].append(f"{c['model']} {c['target']} {c['recipe']}")
        for rt, q in (c.get("measured") or {}).items():
            if q.get("skipped"):
                groups["runtime"].append({"model": c["model"], "target": c["target"], "recipe": c["recipe"],
                                          "reason": f"{rt}: {q['skipped']}"})
    return {"matrix": str(plan.matrix.path), "models": [e.label for e in plan.matrix.entries],
            "notes": {e.label: e.get("notes") for e in plan.matrix.entries if e.get("notes")},
            "summary": summary, "summary_lines": [f"{k}: {v.get('ok', 0)}/{v['total']}" for k, v in summary.items()],
            "cells": cells, "failures": {g: v for g, v in groups.items() if v}, "limitations": list(limitations.values())}


# ----------------------------------------------------------------------------------------------------- markdown
def _columns(cov: dict) -> list[tuple[str, str]]:
    cols = {(c["target"], c["recipe"]) for c in cov["cells"] if c["status"] != "n/a"}
    return sorted(cols, key=lambda tr: _order(*tr))


def _cell_text(c: dict | None) -> str:
    if c is None or c["status"] == "n/a":
        return "–"
    if c["status"] in ("ok", "drift"):
        return f"{MARK[c['status']]} {_short(c.get('task', ''), c.get('parity') or {})}".strip()
    if c["status"] == "pending":
        return "… browser"
    if c["status"] == "not run":
        return "? not run"
    return f"✗ {c.get('group', '')}"


_TOL_WORDS = {"min_agreement": "top-1 agreement >= {}", "max_abs": "max|d| <= {}", "min_cosine": "cosine >= {}",
              "min_snr_db": "SNR >= {} dB"}


def tolerance_text() -> str:
    """The grid's ✓ rule in numbers, from the task registry: each task's parity tolerance per recipe family (the
    evaluate budget in the header is another threshold, for the picks of smallest and fastest)."""
    from edgeport.tasks import TASKS

    parts = []
    for t in TASKS.values():
        fam = "; ".join(f"{f}: " + ", ".join(_TOL_WORDS.get(k, k + " {}").format(v) for k, v in tol.items())
                        for f, tol in t.tolerance.items())
        parts.append(f"{t.name} ({fam})")
    return "parity tolerance per recipe family: " + "; ".join(parts)


def markdown(cov: dict) -> str:
    cols = _columns(cov)
    by = {(c["model"], c["target"], c["recipe"]): c for c in cov["cells"]}
    fw = {c["model"]: c["framework"] for c in cov["cells"]}
    out = [f"# Coverage: {Path(cov['matrix']).name}", "",
           "✓ converted and within the recipe's parity tolerance against float (number: top-1 agreement, cosine or SNR"
           " on the probe rows, measured with the real runtime); ≈ converted, outside tolerance; ✗ failed (group);"
           " – not applicable to the framework; … parity measured in the browser only; ? not run yet.", "",
           f"The {tolerance_text()}.", "",
           "| model | fw | " + " | ".join(f"{t} {r}" for t, r in cols) + " |",
           "|---|---|" + "---|" * len(cols)]
    for mname in cov["models"]:
        out.append(f"| {mname} | {fw.get(mname, '')} | " + " | ".join(_cell_text(by.get((mname, t, r))) for t, r in cols) + " |")
    out += ["", "## Per target and recipe", "", "| target recipe | ok | drift | failed | not run | of |",
            "|---|---|---|---|---|---|"]
    for k, v in cov["summary"].items():
        out.append(f"| {k} | {v.get('ok', 0)} | {v.get('drift', 0)} | {v.get('failed', 0)} | {v.get('not run', 0)} | {v['total']} |")
    if cov["failures"]:
        out += ["", "## Failures by group"]
        for g, items in cov["failures"].items():
            out += ["", f"### {GROUPS[g]} ({len(items)})", ""]
            out += [f"- {i['model']} {i['target']} {i['recipe']}: {i.get('reason', '')[:300]}" for i in items]
    if cov["limitations"]:
        out += ["", "## Known limitations met (converter, op or layer, workaround)", ""]
        for lim in cov["limitations"]:
            out.append(f"- **{lim['converter']}**: {lim['what']}; workaround: {lim['workaround']}"
                       + (f" ({lim['upstream']})" if lim.get("upstream") else "") + f". Cells: {', '.join(lim['cells'])}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------- html
_RUNTIME_COLORS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "dynamic-int8": "#ff7f0e", "int8": "#d62728",
                   "uint8": "#9467bd", "uint16": "#8c564b"}
_MARKERS = {"tflite": "o", "onnx": "s", "pte": "^", "tfjs": "D"}


def _threshold(b: Budget, task: str) -> float:
    if hasattr(b, "threshold"):  # the task registry's Budget fills a threshold not given with the task's default
        return b.threshold(task)
    return {"classification": b.max_drop_pp, "embedding": b.min_cosine, "regression": b.min_snr_db}[task]


def _budget_metric(r: Row, b: Budget):
    """(value, budget, label) of the number a row's task is budgeted on, for the per-runtime plots."""
    if r.task == "classification":
        if r.accuracy_drop_pp is not None:
            return r.accuracy_drop_pp, _threshold(b, r.task), "accuracy drop vs float (pp)"
        if r.agreement is not None:
            return 100 * (1 - r.agreement), _threshold(b, r.task), "disagreement with float (%)"
        return None
    if r.task == "embedding":
        return None if r.cosine_mean is None else (r.cosine_mean, _threshold(b, r.task), "cosine vs float (mean)")
    return None if r.snr_db is None else (r.snr_db, _threshold(b, r.task), "SNR vs float (dB)")


def plots(report: Report) -> list[str]:
    """One figure per runtime; one panel per budget metric; x latency, y the budgeted number, the budget a line.
    No point labels (they overlap at zoo scale): colour is the recipe, the marker the target; the table names them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    b = report.budget
    timed = [r for r in report.rows if r.error is None and not r.skipped and r.latency_ms and r.latency_ms.get("p50")]
    out = []
    for rt in sorted({f"{r.runtime} ({r.device})" for r in timed}):
        rs = [r for r in timed if f"{r.runtime} ({r.device})" == rt]
        panels: dict[str, list] = {}
        for r in rs:
            m = _budget_metric(r, b)
            if m:
                panels.setdefault(m[2], []).append((r, m[0], m[1]))
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
        for ax, (label, pts) in zip(axes[0], panels.items()):
            for r, v, _ in pts:
                ax.scatter(r.latency_ms["p50"], v, s=22, alpha=0.8, c=_RUNTIME_COLORS.get(r.recipe, "gray"),
                           marker=_MARKERS.get(r.target, "x"))
            ax.axhline(pts[0][2], color="black", lw=1, ls="--")
            ax.annotate("budget", (1, pts[0][2]), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7)
            ax.set_xscale("log")
            xs = [r.latency_ms["p50"] for r, _, _ in pts]
            if max(xs) / min(xs) < 10:  # a narrow range: widen it so that some 1-2-5 ticks fall inside
                ax.set_xlim(min(xs) / 2, max(xs) * 2)
            # plain numbers on the major ticks only: matplotlib labels minor log ticks of a narrow range with
            # overlapping 1.875x10^-2-style text
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("p50 latency (ms, log)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        for rec, col in _RUNTIME_COLORS.items():
            if any(r.recipe == rec for r in rs):
                axes[0][-1].scatter([], [], c=col, label=rec)
        for tg, mk in _MARKERS.items():
            if any(r.target == tg for r in rs):
                axes[0][-1].scatter([], [], c="gray", marker=mk, label=tg)
        axes[0][-1].legend(fontsize=7, loc="best")
        fig.suptitle(f"{rt}: {len(rs)} rows", fontsize=10)
        fig.tight_layout()
        out.append(_svg(fig))
        plt.close(fig)
    return out


_CSS = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222} table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 5px;text-align:right;white-space:nowrap} td.l,th.l{text-align:left}
th{background:#f4f4f4;position:sticky;top:0;cursor:pointer} .ok{background:#e3f5e3} .drift{background:#fff3d6}
.failed{background:#fde3e3} .notrun{background:#f4f4f4;color:#888} .pending{background:#eef} .na{color:#bbb} td.why{white-space:normal;max-width:42em;text-align:left}
.plots svg{max-width:100%;height:auto} details{margin:.3em 0} summary{cursor:pointer} small{color:#666}
#filter{width:30em;padding:3px} .grid td{text-align:center} .grid td:first-child{text-align:left}"""

_JS = """
function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),b=t.tBodies[0];
 const dir=th.dataset.dir=th.dataset.dir==='asc'?'desc':'asc';const v=r=>{const c=r.children[i];
 const x=c.dataset.v!==undefined?c.dataset.v:c.textContent;const n=parseFloat(x);return isNaN(n)?x:n};
 [...b.rows].sort((a,c)=>{const x=v(a),y=v(c);const s=typeof x==='number'&&typeof y==='number'?x-y:String(x).localeCompare(String(y));
 return dir==='asc'?s:-s}).forEach(r=>b.appendChild(r))}
document.querySelectorAll('table.sortable th').forEach(th=>th.onclick=()=>sortBy(th));
const f=document.getElementById('filter');if(f)f.oninput=()=>{const terms=f.value.toLowerCase().split(/\\s+/).filter(Boolean);
 let n=0;document.querySelectorAll('#rows tbody tr').forEach(r=>{const s=r.textContent.toLowerCase();
 const ok=terms.every(t=>s.includes(t));r.style.display=ok?'':'none';n+=ok});document.getElementById('shown').textContent=n}
function openHash(){const d=document.getElementById(decodeURIComponent(location.hash.slice(1)));if(d&&d.tagName==='DETAILS')d.open=true}
window.addEventListener('hashchange',openHash);openHash();
"""


_TEXT_COLS = {"model", "artifact", "target", "recipe", "runtime", "backend", "note"}


def _e(x) -> str:
    return html.escape(str(x))


def _td(v, fmt: str = "", cls: str = "") -> str:
    if v is None or v == "":
        return f"<td class='{cls}' data-v=''></td>"
    txt = format(v, fmt) if fmt else str(v)
    return f"<td class='{cls}' data-v='{_e(v)}'>{_e(txt)}</td>"


def render(report: Report, cov: dict) -> str:
    try:
        figs = plots(report)
    except Exception as ex:  # plotting must never cost the report
        figs = [f"<p>plots unavailable: {_e(ex)}</p>"]
    cols = _columns(cov)
    by = {(c["model"], c["target"], c["recipe"]): c for c in cov["cells"]}
    fw = {c["model"]: c["framework"] for c in cov["cells"]}
    grid = ["<table class='grid'><thead><tr><th class='l'>model</th><th>fw</th>"
            + "".join(f"<th>{_e(t)}<br>{_e(r)}</th>" for t, r in cols) + "</tr></thead><tbody>"]
    for mname in cov["models"]:
        tds = []
        for t, r in cols:
            c = by.get((mname, t, r))
            st = c["status"] if c else "n/a"
            tip = (c or {}).get("reason") or ""
            tds.append(f"<td class='{st.replace('/', '').replace(' ', '')}' title='{_e(tip)}'>"
                       f"<a href='#m-{_e(mname)}'>{_e(_cell_text(c))}</a></td>")
        grid.append(f"<tr><td><a href='#m-{_e(mname)}'>{_e(mname)}</a></td><td>{_e(fw.get(mname, ''))}</td>{''.join(tds)}</tr>")
    grid.append("</tbody></table>")
    summ = "".join(f"<tr><td class='l'>{_e(k)}</td><td>{v.get('ok', 0)}</td><td>{v.get('drift', 0)}</td>"
                   f"<td>{v.get('failed', 0)}</td><td>{v.get('not run', 0)}</td><td>{v['total']}</td></tr>"
                   for k, v in cov["summary"].items())
    fails = "".join(
        f"<details><summary>{_e(GROUPS[g])} ({len(items)})</summary><ul>"
        + "".join(f"<li><a href='#m-{_e(i['model'])}'>{_e(i['model'])}</a> {_e(i['target'])} {_e(i['recipe'])}:"
                  f" {_e(i.get('reason', ''))}</li>" for i in items) + "</ul></details>"
        for g, items in cov["failures"].items())
    lims = "".join(f"<li><b>{_e(l['converter'])}</b>: {_e(l['what'])}; workaround: {_e(l['workaround'])}"
                   + (f" (<a href='{_e(l['upstream'])}'>upstream</a>)" if l.get("upstream") else "")
                   + f" <small>{len(l['cells'])} cell(s)</small></li>" for l in cov["limitations"])
    # one table, every row: sort by clicking a header, filter by words
    head = ["model", "artifact", "target", "recipe", "runtime", "backend", "threads", "bytes", "quality", "budgeted",
            "p50 ms", "p90 ms", "load ms", "note"]
    body = []
    for r in sorted(report.rows, key=lambda r: (cov["models"].index(r.source) if r.source in cov["models"] else 999,
                                                _order(r.target, r.recipe), r.runtime, r.threads or 0)):
        lat = r.latency_ms or {}
        q = r.quality()
        m = _budget_metric(r, report.budget)
        st = "failed" if r.error else ("pending" if r.skipped else ("ok" if r.within(report.budget) else "drift"))
        body.append(f"<tr class='{st}'><td class='l'>{_e(r.source)}</td><td class='l'>{_e(r.artifact)}</td>"
                    f"<td class='l'>{_e(r.target)}</td><td class='l'>{_e(r.recipe)}</td><td class='l'>{_e(r.runtime)}</td>"
                    f"<td class='l'>{_e(r.backend)}</td>{_td(r.threads)}{_td(r.bytes, ',')}{_td(q, '.4g')}"
                    f"{_td(None if not m else round(m[0], 4))}{_td(lat.get('p50'), '.3f')}{_td(lat.get('p90'), '.3f')}"
                    f"{_td(r.load_ms, '.1f')}<td class='why'>{_e(r.error or (f'skipped: {r.skipped}' if r.skipped else ''))}</td></tr>")
    rows_table = (f"<p><input id='filter' placeholder='filter: words all rows must contain, e.g. int8 onnx'> "
                  f"<span id='shown'>{len(body)}</span> of {len(body)} rows; click a header to sort. <small>quality: accuracy (%),"
                  " cosine or SNR (dB); budgeted: the number the task's budget holds (accuracy drop or disagreement"
                  " with float in pp, cosine, SNR)</small></p>"
                  "<table id='rows' class='sortable'><thead><tr>" + "".join(
                      f"<th class='{'l' if h in _TEXT_COLS else ''}'>{_e(h)}</th>" for h in head)
                  + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")
    sections = []
    for mname in cov["models"]:
        mc = [c for c in cov["cells"] if c["model"] == mname and c["status"] != "n/a"]
        ok = sum(c["status"] == "ok" for c in mc)
        trs = "".join(
            f"<tr class='{c['status'].replace(' ', '')}'><td class='l'>{_e(c['target'])}</td><td class='l'>{_e(c['recipe'])}</td>"
            f"<td class='l'>{_e(c['status'])}</td>{_td(c.get('bytes'), ',')}<td class='l'>{_e(_short(c.get('task', ''), c.get('parity') or {}))}</td>"
            f"<td class='l'>{_e('; '.join(f'{k}: ' + ', '.join(f'{a} {b:.4g}' if isinstance(b, float) else f'{a} {b}' for a, b in v.items()) for k, v in (c.get('measured') or {}).items()))}</td>"
            f"{_td(c.get('seconds'), '.1f')}<td class='why'>{_e(c.get('reason', ''))}</td></tr>" for c in mc)
        note = (cov.get("notes") or {}).get(mname)
        sections.append(f"<details id='m-{_e(mname)}'><summary><b>{_e(mname)}</b> ({_e(fw.get(mname, ''))}): {ok}/{len(mc)} ok"
                        + (f" <small>{_e(note)}</small>" if note else "") + "</summary>"
                        "<table class='sortable'><thead><tr><th>target</th><th>recipe</th><th>status</th><th>bytes</th>"
                        "<th>parity at conversion</th><th>measured</th><th>convert s</th><th>reason</th></tr></thead>"
                        f"<tbody>{trs}</tbody></table></details>")
    sw = report.extra.get("sweep", {})
    h = report.host
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgeport sweep: {_e(Path(cov['matrix']).name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head><body>
<h1>edgeport sweep <small>{_e(Path(cov['matrix']).name)}</small></h1>
<p>{len(cov['models'])} models, {len(report.rows)} rows; created {_e(report.created)} on {_e(h.get('cpu', '?'))},
{_e(h.get('cores', '?'))} cores. Jobs: {sw.get('jobs', '?')} ({sw.get('ran', '?')} ran, {sw.get('cached', '?')} cached,
{sw.get('failed', '?')} failed) in {sw.get('wall_s', '?')} s on {_e(sw.get('scheduler', '?'))}.
Evaluate budget (for the picks, not the grid): {_e(report.budget.describe())}.</p>
<h2>Coverage</h2><p><small>✓ within the recipe's parity tolerance against float (top-1 agreement, cosine or SNR on the
probe rows, real runtime); ≈ outside it; ✗ failed (hover for the reason); – not applicable; … browser only; ? not
run yet. Click a cell for the model. The {_e(tolerance_text())}.</small></p>{''.join(grid)}
<h2>Per target and recipe</h2><table class='sortable'><thead><tr><th class='l'>target recipe</th><th>ok</th><th>drift</th>
<th>failed</th><th>not run</th><th>of</th></tr></thead><tbody>{summ}</tbody></table>
<h2>Failures by group</h2>{fails or '<p>none</p>'}
{('<h2>Known limitations met</h2><ul>' + lims + '</ul>') if lims else ''}
<h2>Latency and quality per runtime</h2><div class="plots">{''.join(figs) or '<p>no timed rows</p>'}</div>
<h2>Every row</h2>{rows_table}
<h2>Per model</h2>{''.join(sections)}
<script>{_JS}</script>
</body></html>
"""


def write_outputs(report: Report, cov: dict, out: Path) -> None:
    write_text_atomic(out / "report.json", json.dumps({**report.to_dict(), "coverage": cov}, indent=1, default=str) + "\n")
    write_text_atomic(out / "coverage.json", json.dumps(cov, indent=1, default=str) + "\n")
    write_text_atomic(out / "coverage.md", markdown(cov))
    write_text_atomic(out / "report.html", render(report, cov))
