"""Assertions on a report, for your own tests: the quantized rows against a budget in their task's terms.

    from edgeport.testing import assert_quantized_close

    def test_int8_stays_close(edgeport_convert, edgeport_evaluate):
        manifests = edgeport_convert("builtin:simplecnn-torch", to=["tflite", "pte"], quant=["int8"])
        report = edgeport_evaluate(manifests)
        assert_quantized_close(report, max_drop=0.5)

The fixtures ``edgeport_convert`` / ``edgeport_evaluate`` and ``--edgeport-report`` come from the pytest plugin
(``edgeport.app.pytest_plugin``, loaded through the ``pytest11`` entry point; ``-p no:edgeport`` turns it off).
:func:`assert_quantized_close` checks the rows against a budget in the rows' task and, when it fails, says which
artifacts, by how much, against which float baseline. This module imports no framework and no pytest.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["assert_quantized_close", "assert_fits_mcu", "QuantizedAccuracyError"]


class QuantizedAccuracyError(AssertionError):
    """An artifact is over its budget against the float model (or was not measured); the message is the table."""


# ------------------------------------------------------------------------------------------------- assertion
def _matches(want, value: str) -> bool:
    if want is None:
        return True
    return value in ([want] if isinstance(want, str) else list(want))


def assert_quantized_close(report, max_drop: float | None = None, min_cosine: float | None = None,
                           min_snr: float | None = None, *, target: str | Iterable[str] | None = None,
                           recipe: str | Iterable[str] | None = None, artifact: str | Iterable[str] | None = None,
                           min_snr_db: float | None = None, runtime: str | Iterable[str] | None = None):
    """Every matching row of ``report`` is within budget against the float model, in the rows' task:

    - classification: ``max_drop`` -- top-1 accuracy drop in percentage points (with labels; without labels, the
      top-1 disagreement with the float model);
    - embedding: ``min_cosine`` -- mean cosine similarity to the float model's embeddings;
    - regression: ``min_snr`` -- signal-to-noise ratio of the outputs against the float model's, in dB
      (``min_snr_db``, its former name, is still taken).

    The keywords are the tasks' flags (``--max-drop``, ``--min-cosine``, ``--min-snr`` of ``edgeport convert`` and
    ``evaluate``), see :mod:`edgeport.tasks`.

    ``target``, ``recipe``, ``artifact`` and ``runtime`` (a name or a list; ``runtime="tflite-micro"`` checks the
    microcontroller rows) narrow the rows checked. Raises
    :class:`QuantizedAccuracyError` (an AssertionError) whose message is a table of the offending rows; also when
    no row matched (a check of nothing must not pass), when a row has an error, when an artifact was not measured
    (a browser-only format evaluated without ``browser=``), or when a row's task has no budget given. Returns the
    rows checked.
    """
    __tracebackhide__ = True
    from edgeport.tasks import TASKS, Budget, get_task

    if min_snr_db is not None:
        if min_snr is not None:
            raise TypeError("assert_quantized_close(): give min_snr= (or its former name min_snr_db=), not both")
        min_snr = min_snr_db
    by_keyword = {"max_drop": max_drop, "min_cosine": min_cosine, "min_snr": min_snr}
    given = {t.name: by_keyword[t.keyword] for t in TASKS.values()}
    if all(v is None for v in given.values()):
        ts = list(TASKS.values())
        raise TypeError("assert_quantized_close() needs a budget: " + ", ".join(
            f"{t.keyword}={t.metavar} ({t.name})" for t in ts[:-1]) + f" or {ts[-1].keyword}={ts[-1].metavar} ({ts[-1].name})")
    budget = Budget(**{t.budget_field: v for t in TASKS.values() if (v := given[t.name]) is not None})
    filt = ", ".join(f"{k}={v!r}" for k, v in (("target", target), ("recipe", recipe), ("artifact", artifact),
                                                ("runtime", runtime)) if v is not None)
    rows = [r for r in report.rows if _matches(target, r.target) and _matches(recipe, r.recipe)
            and _matches(artifact, r.artifact) and _matches(runtime, r.runtime)]
    if not rows:
        have = sorted({f"{r.artifact} ({r.target} {r.recipe})" for r in report.rows}) or ["no rows at all"]
        raise QuantizedAccuracyError(f"edgeport: no row matched {filt or 'the report'}; nothing was checked.\n"
                                     f"The report has: {', '.join(have)}")
    measured = [r for r in rows if r.error is None and not r.skipped]
    unmeasured = [r for r in rows if r.skipped and r.error is None
                  and not any(m.artifact == r.artifact for m in measured)]
    errors = [r for r in rows if r.error is not None]
    no_budget = sorted({r.task for r in measured if given.get(r.task) is None})
    if no_budget:
        arts = sorted({r.artifact for r in measured if r.task in no_budget})
        extra = [t for t, v in given.items() if v is not None and t not in {r.task for r in measured}]
        raise QuantizedAccuracyError(
            f"edgeport: {', '.join(arts)} {'is' if len(arts) == 1 else 'are'} {' and '.join(no_budget)}; pass "
            + " and ".join(f"{get_task(t).keyword}=" for t in no_budget) + " to check "
            + ("it" if len(arts) == 1 else "them")
            + (f" ({', '.join(get_task(t).keyword + '=' for t in extra)} applies to {', '.join(extra)} rows only)"
               if extra else ""))
    over = [r for r in measured if not r.within(budget)]
    if not (over or errors or unmeasured):
        return rows
    lines = [f"edgeport: {_headline(over, errors, unmeasured, measured, budget)}" + (f" [{filt}]" if filt else ""), ""]
    lines += _table([_cells(r, report, budget) for r in over + errors + unmeasured])
    ok = sorted({r.artifact for r in measured if r.within(budget)} - {r.artifact for r in over})
    if ok:
        lines += ["", f"within budget: {', '.join(ok)}"]
    for src in sorted({r.source for r in over}):
        data = (report.extra.get("data_by_source") or {}).get(src, report.data)
        ref = (report.extra.get("reference_by_source") or {}).get(src)
        lines.append(f"{src}: data {data}" + (f"; reference: {ref}" if ref else ""))
    if any("browser" in (r.skipped or "") for r in unmeasured):
        lines.append('browser-only formats: pass browser="chromium" to edgeport_evaluate, or leave them out with'
                     " target=")
    raise QuantizedAccuracyError("\n".join(lines))


def assert_fits_mcu(report, ram: int | str | None = None, flash: int | str | None = None, *,
                    artifact: str | Iterable[str] | None = None) -> list:
    """Every microcontroller row (``edgeport evaluate --runtime tflite-micro``) of ``report`` fits a board with
    ``ram`` bytes for the tensor arena and ``flash`` bytes for the model (ints, or "256KB" / "1MB" as on the command
    line). Raises :class:`QuantizedAccuracyError` naming each row that misses and by how much, or when no row was
    measured on a microcontroller runtime. Returns the rows checked.

    Example::

        report = edgeport_evaluate(manifests, runtime="tflite-micro")
        assert_fits_mcu(report, ram="256KB", flash="1MB")
    """
    __tracebackhide__ = True
    from edgeport.micro import parse_bytes

    if ram is None and flash is None:
        raise TypeError("assert_fits_mcu() needs ram= and/or flash= (bytes, or '256KB' / '1MB')")
    have = {k: (parse_bytes(v) if isinstance(v, str) else int(v)) for k, v in (("ram", ram), ("flash", flash))
            if v is not None}
    rows = [r for r in report.rows if r.where == "mcu" and _matches(artifact, r.artifact)]
    measured = [r for r in rows if r.error is None and not r.skipped and r.arena_bytes is not None]
    if not measured:
        why = "; ".join(f"{r.artifact}: {r.error or r.skipped}" for r in rows) or "no microcontroller rows at all"
        raise QuantizedAccuracyError(f"edgeport: nothing measured on a microcontroller runtime ({why}); evaluate with"
                                     " runtime='tflite-micro' and full-integer artifacts (convert --for mcu)")
    misses = []
    for r in measured:
        need = {"ram": r.arena_bytes, "flash": r.flash_bytes}
        short = [f"{k} short by {need[k] - v:,} B (needs {need[k]:,}, has {v:,})" for k, v in have.items() if need[k] > v]
        if short:
            misses.append(f"{r.artifact}: " + "; ".join(short))
    unmeasured = [f"{r.artifact}: {r.error or r.skipped}" for r in rows if r not in measured]
    if misses or unmeasured:
        raise QuantizedAccuracyError("edgeport: " + (f"{len(misses)} artifact(s) do not fit the board" if misses else
                                                      "some artifacts were not measured") + "\n" +
                                     "\n".join(misses + unmeasured))
    return measured


def _headline(over, errors, unmeasured, measured, b) -> str:
    """The first line (pytest's short summary shows it): the worst offender, and how many others."""
    if over:
        r = sorted(over, key=lambda r: _badness(r, b), reverse=True)[0]
        first = f"{r.artifact} over budget: {_shortfall(r, b)}"
        n = len({x.artifact for x in over})
        more = [f"{n} of {len({x.artifact for x in measured})} artifacts over budget"] if n > 1 else []
    elif errors:
        r = errors[0]
        first = f"{r.artifact} failed on {r.runtime}: {' '.join(r.error.split())[:120]}"
        more = []
    else:
        r = unmeasured[0]
        first = f"{r.artifact} was not measured ({r.skipped.split(';')[0]})"
        more = []
    if over and errors:
        more.append(f"{len(errors)} row(s) with errors")
    if (over or errors) and unmeasured:
        more.append(f"{len({x.artifact for x in unmeasured})} artifact(s) not measured")
    return first + (f" ({'; '.join(more)})" if more else "")


def _badness(r, b) -> float:
    if r.failing_flags():
        return float("inf")  # outputs that are zero, NaN or off-scale come first, whatever their metric says
    from edgeport.tasks import get_task

    return get_task(r.task).excess(r, b.threshold(r.task))


def _shortfall(r, b) -> str:
    if r.failing_flags():
        from edgeport.metrics import describe_flags

        return describe_flags(r.flags, r.norm_ratio) + f" (flagged {', '.join(r.failing_flags())})"
    from edgeport.tasks import get_task

    return get_task(r.task).shortfall(r, b.threshold(r.task))


def _cells(r, report, b) -> tuple:
    where = f"{r.runtime}/{r.backend}" + (f" {r.threads}t" if r.threads is not None else "") + \
        (f" ({r.device})" if r.device not in ("local", "", None) else "") + \
        (f" on emulated {r.cpu}" if getattr(r, "where", "host") == "emulated" and r.cpu else "")
    if r.error is not None:
        return (r.artifact, where, "ERROR", "", " ".join(r.error.split())[:160], "")
    if r.skipped:
        return (r.artifact, where, "not measured", "", r.skipped[:160], "")
    if r.failing_flags():
        from edgeport.metrics import describe_flags

        return (r.artifact, where, "FLAGGED " + ",".join(r.failing_flags()), "", describe_flags(r.flags, r.norm_ratio),
                "finite, non-zero, float's scale")
    from edgeport.tasks import get_task

    base = r.float_accuracy if r.float_accuracy is not None else report.float_baseline.get(r.source)
    return (r.artifact, where, *get_task(r.task).explain(r, base, b.threshold(r.task)))


def _table(rows: list[tuple]) -> list[str]:
    head = ("artifact", "runtime", "metric", "float", "value", "budget")
    allr = [head, *rows]
    w = [max(len(str(r[i])) for r in allr) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in allr]
    out.insert(1, "  ".join("-" * x for x in w))
    return out


# ------------------------------------------------------------------------------------------------- pytest hooks
