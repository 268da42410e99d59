"""One worker pool for every crash-isolated job: conversions, measurements, emulated and device runtimes.

A :class:`Pool` runs a list of jobs in order in one worker process, so that an import paid once (TensorFlow, ExecuTorch,
an emulator's start) serves all of them. The worker reports each job's start, its notes and its result as JSON
lines on a pipe of its own; a crash or a hang past the per-job time limit costs the job it was on, and a fresh worker
takes the rest. A worker may be started ahead (:meth:`Pool.start`): it runs its handler's setup (imports, loading a
model) and says ``ready`` while the parent does other work; jobs go to it when :meth:`Pool.run` is called.

The worker side is a *handler*, ``"package.module:function"``: ``function(payload, note) -> run_one``, where
``run_one(job) -> JSON-able result`` does one job, ``note(text)`` sends a progress line, and ``payload`` is what the
parent gave every worker. An exception in setup is fatal to the batch (every pending job fails with it); an
exception in ``run_one`` fails that job only. :class:`~edgeport.errors.EdgeportError` subclasses keep their type.

Example::

    pool = Pool("edgeport.worker:handler", {"runtime": "onnxruntime"}, timeout_s=600)
    for i, res in enumerate(pool.run(jobs)):
        print(i, res.value if res.ok else res.error)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .procs import die_with_parent, kill_group, signal_name

# What a lost job says, by how it was lost; callers pass their own words ({timeout}, {signal}, {rc}, {tail}, {where}).
MESSAGES = {
    "hung": "timed out after {timeout:g}s (the worker hung){where}",
    "crashed": "the worker crashed ({signal}) on this job; the other jobs went on{where}",
    "exit": "the worker exited with status {rc} without a result: {tail}{where}",
    "setup_hung": "timed out after {timeout:g}s before the first job (the worker's setup hung){where}",
}


@dataclass
class Result:
    ok: bool
    value: Any = None  # the handler's result (ok)
    error: str | None = None  # one line (failed)
    kind: str | None = None  # the EdgeportError subclass name, when the handler raised one

    def exception(self):
        """The failure as the typed EdgeportError the handler raised (or a plain EdgeportError)."""
        from . import errors

        cls = getattr(errors, self.kind or "", None)
        if not (isinstance(cls, type) and issubclass(cls, errors.EdgeportError)):
            cls = errors.EdgeportError
        e = cls.__new__(cls)
        ValueError.__init__(e, self.error)
        return e


class Pool:
    """Jobs in order in one worker process at a time; see the module docstring."""

    def __init__(self, handler: str, payload: dict, *, timeout_s: float, log: Path | None = None, where: str = "",
                 messages: dict | None = None, on_note: Callable[[str], None] | None = None, env: dict | None = None,
                 workdir: Path | None = None):
        """``log``: the file the workers' stdout and stderr are appended to, ``"inherit"`` for this process's stderr
        (-v), or None for a temporary file (the tail of a failure); ``where``: what lost-job messages append
        ("; see <log>"); ``workdir``: where the pool keeps its files (a run's staging folder, so that they go with
        it)."""
        self.handler, self.payload, self.timeout_s, self.log, self.where = handler, payload, timeout_s, log, where
        self.messages = {**MESSAGES, **(messages or {})}
        self.on_note, self.env = on_note, env
        self.dir = Path(tempfile.mkdtemp(prefix="edgeport-pool-", dir=workdir))
        (self.dir / "payload.json").write_text(json.dumps(payload, default=str))
        self._proc: subprocess.Popen | None = None
        self._events = None  # the read end of the worker's event pipe
        self._buf = b""
        self._err = None
        self._ready = False
        self._pending_events: list[dict] = []  # events read while waiting for `ready`, replayed by run()
        self._timed_out = False

    # ------------------------------------------------------------------------------------------ worker lifetime
    def start(self) -> "Pool":
        """Start a worker now (its setup runs while the caller goes on); run() uses it."""
        if self._proc is not None:
            return self
        rfd, wfd = os.pipe()
        inherit = self.log == "inherit"
        self._err = None if inherit else open(self.log, "ab") if self.log else tempfile.TemporaryFile(dir=self.dir)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "edgeport.pool", self.handler, str(self.dir / "payload.json"), str(wfd)],
                pass_fds=(wfd,), stdin=subprocess.PIPE, stdout=2 if inherit else self._err,
                stderr=None if inherit else subprocess.STDOUT, start_new_session=True, env=self.env)
        finally:
            os.close(wfd)
        self._events, self._buf, self._ready, self._pending_events = rfd, b"", False, []
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until the worker's setup is done (or it is gone, or ``timeout`` s): nothing it imports runs beside another
        worker's measurement."""
        if self._proc is None:
            return
        deadline = time.monotonic() + (self.timeout_s if timeout is None else timeout)
        while not self._ready:
            ev = self._next_event(deadline)
            if ev is None:
                return
            self._pending_events.append(ev)

    def close(self) -> None:
        """End the worker (and everything it started) and remove the pool's files."""
        import shutil

        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None
        if self._events is not None:
            with contextlib.suppress(OSError):
                os.close(self._events)
            self._events = None
        if self._err is not None:
            self._err.close()
            self._err = None

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tail(self) -> str:
        if self._err is None:
            return "see its output above" if self.log == "inherit" else "no output"
        try:
            self._err.flush()
            self._err.seek(0)
            text = self._err.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return "no output"
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return lines[-1][:200] if lines else "no output"

    def _next_event(self, deadline: float) -> dict | None:
        """The worker's next event; None when it is gone (EOF) or the deadline passed (then ``self._timed_out``)."""
        self._timed_out = False
        while b"\n" not in self._buf:
            wait = deadline - time.monotonic()
            if wait <= 0:
                self._timed_out = True
                return None
            ready, _, _ = select.select([self._events], [], [], wait)
            if not ready:
                self._timed_out = True
                return None
            chunk = os.read(self._events, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        ev = json.loads(line)
        if ev["event"] == "ready":
            self._ready = True
        return ev

    # ------------------------------------------------------------------------------------------ running jobs
    def run(self, jobs: list, *, on_start: Callable[[int], None] | None = None,
            on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
        """Every job's :class:`Result`, in job order; ``on_start(i)`` and ``on_result(i, result)`` as they happen."""
        results: dict[int, Result] = {}
        pending = list(range(len(jobs)))
        where = self.where

        def land(i: int, res: Result) -> None:
            results[i] = res
            pending.remove(i)
            if on_result:
                on_result(i, res)

        while pending:
            self.start()
            events, self._pending_events = self._pending_events, []
            try:
                self._proc.stdin.write((json.dumps({"jobs": [[i, jobs[i]] for i in pending]}, default=str) + "\n").encode())
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # the worker is already gone: the loop below finds out how
            current, progressed, fatal = None, False, None
            deadline = time.monotonic() + self.timeout_s
            while True:
                ev = events.pop(0) if events else self._next_event(deadline)
                if ev is None:
                    break
                kind = ev["event"]
                if kind == "start":
                    current, deadline = ev["i"], time.monotonic() + self.timeout_s
                    if on_start:
                        on_start(current)
                elif kind == "done":
                    land(ev["i"], Result(True, ev.get("value")))
                    current, progressed = None, True
                elif kind == "failed":
                    land(ev["i"], Result(False, error=ev["error"], kind=ev.get("kind")))
                    current, progressed = None, True
                elif kind == "note" and self.on_note:
                    self.on_note(ev["text"])
                elif kind == "fatal":
                    fatal = ev
            timed_out = self._timed_out
            if timed_out:
                kill_group(self._proc)
            else:
                self._proc.wait()
            rc, tail = self._proc.returncode, self._tail()
            self._stop()
            fmt = {"timeout": self.timeout_s, "rc": rc, "tail": tail, "where": where,
                   "signal": signal_name(rc) if rc is not None and rc < 0 else ""}
            if fatal is not None:  # setup failed (the model would not load): every pending job fails the same way
                for i in list(pending):
                    land(i, Result(False, error=fatal["error"], kind=fatal.get("kind")))
                break
            if current is not None:
                i = current
                why = "hung" if timed_out else ("crashed" if rc is not None and rc < 0 else "exit")
                land(i, Result(False, error=self.messages[why].format(**fmt)))
            elif pending and timed_out:  # stuck before any job: a fresh worker would be stuck the same way
                for i in list(pending):
                    land(i, Result(False, error=self.messages["setup_hung"].format(**fmt)))
            elif pending and not progressed:  # died between jobs without doing any: do not loop forever
                why = "crashed" if rc is not None and rc < 0 else "exit"
                for i in list(pending):
                    land(i, Result(False, error=self.messages[why].format(**fmt)))
        return [results[i] for i in range(len(jobs))]


# ---------------------------------------------------------------------------------------------- the worker side
def _worker_main(argv: list[str]) -> int:
    handler, payload_path, fd = argv
    events = os.fdopen(int(fd), "w", buffering=1)

    def emit(**kw) -> None:
        events.write(json.dumps(kw, default=str) + "\n")
        events.flush()

    die_with_parent()  # never write into a folder nobody watches
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .errors import EdgeportError, one_line

    def kind(e: BaseException) -> str | None:
        return type(e).__name__ if isinstance(e, EdgeportError) else None

    def text(e: BaseException) -> str:
        return " ".join(str(e).split()) if isinstance(e, EdgeportError) else f"{type(e).__name__}: {one_line(e, 300)}"

    try:
        import importlib

        payload = json.loads(Path(payload_path).read_text())
        for p in reversed(payload.get("sys_path") or []):
            if p not in sys.path:
                sys.path.insert(0, p)
        mod, fn = handler.split(":")
        run_one = getattr(importlib.import_module(mod), fn)(payload, lambda msg: emit(event="note", text=msg))
    except Exception as e:
        emit(event="fatal", error=text(e), kind=kind(e))
        return 0
    emit(event="ready")
    line = sys.stdin.readline()
    if not line:
        return 0
    try:
        for i, job in json.loads(line)["jobs"]:
            emit(event="start", i=i)
            try:
                emit(event="done", i=i, value=run_one(job))
            except Exception as e:  # a job that raises is that job's failure, not the batch's
                emit(event="failed", i=i, error=text(e), kind=kind(e))
    finally:
        close = getattr(run_one, "close", None)
        if close:
            close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
