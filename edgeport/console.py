"""What the terminal shows: edgeport's own progress lines (stderr) and its tables (stdout); nothing else.

The frameworks edgeport drives print a great deal, from Python and from C++ (TF/absl start-up, MLIR passes,
litert-torch and torchao progress). :func:`quiet` sends all of it, at the file-descriptor level, to a log file,
while edgeport's progress (:func:`log`) and Python-level prints of its tables still reach the terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

_term: io.TextIOBase | None = None  # the terminal's stderr while quiet() redirects fd 2
_active: Path | None = None  # the log file while quiet() is active
_shown: Path | None = None  # where the user will find it (the run's log is moved there at the end)


_relay = None  # in a conversion worker: sends progress lines to the parent, which shows them


def log(msg: str) -> None:
    """One progress line, ``[edgeport] ...``, on the terminal's stderr (never into stdout tables); in a conversion
    worker, relayed to the parent process (whose terminal the user watches)."""
    if _relay is not None:
        _relay(msg)
        return
    print(f"[edgeport] {msg}", file=_term or sys.stderr, flush=True)


def relay_to(fn) -> None:
    """Send :func:`log` lines to ``fn(msg)`` instead of the terminal (None: back to the terminal)."""
    global _relay
    _relay = fn


def active_log() -> tuple[Path, Path] | None:
    """(the log file third-party output goes to, where the user will find it), while :func:`quiet` is active."""
    return None if _active is None else (_active, _shown or _active)


class _Sink(io.TextIOBase):
    """A text stream into the log that never raises (a full disk must not turn a library's warning into a crash)."""

    def __init__(self, f):
        self._f = f

    def write(self, s: str) -> int:
        try:
            return self._f.write(s)
        except (OSError, ValueError):
            return len(s)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._f.flush()

    def fileno(self) -> int:
        return self._f.fileno()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._f.close()


def _backed_by(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False


@contextlib.contextmanager
def quiet(log_path: str | Path, enabled: bool = True, shown: str | Path | None = None):
    """Send fds 1 and 2 (C++ and Python output of every library, and of child processes) to ``log_path``.

    Python's ``sys.stdout`` keeps pointing at the terminal's stdout, so edgeport's tables print as before; Python's
    ``sys.stderr`` (warnings, absl and tqdm progress) goes to the log; :func:`log` lines go to the terminal's stderr.
    Re-entrant: inside an active quiet() it does nothing. ``enabled=False`` (``-v``) changes nothing. ``shown``: the
    path to name in messages, when the log is moved there at the end.
    """
    global _term, _active, _shown
    if not enabled or _active is not None:
        yield
        return
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            s.flush()
    swap_out, swap_err = _backed_by(sys.stdout, 1), _backed_by(sys.stderr, 2)
    saved = {1: os.dup(1), 2: os.dup(2)}
    fd = os.open(str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    old_out, old_err = sys.stdout, sys.stderr
    term_out = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace")
    term_err = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    log_err = _Sink(os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace"))
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    if swap_out:
        sys.stdout = term_out
    if swap_err:
        sys.stderr = log_err
    _term = term_err if swap_err else None
    _active, _shown = Path(log_path), Path(shown) if shown else None
    try:
        yield
    finally:
        for s in (sys.stdout, sys.stderr, term_out, term_err, log_err, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                s.flush()
        os.dup2(saved[1], 1)
        os.dup2(saved[2], 2)
        os.close(saved[1])
        os.close(saved[2])
        sys.stdout, sys.stderr = old_out, old_err
        _term, _active, _shown = None, None, None
        for s in (term_out, term_err, log_err):
            with contextlib.suppress(Exception):
                s.close()
