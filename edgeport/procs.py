"""Worker processes: how a parent names their deaths and ends them, and how a worker goes with its parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def signal_name(rc: int) -> str:
    """The signal behind a negative return code (-11 -> 'SIGSEGV')."""
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a worker started with ``start_new_session=True`` and everything it started, then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                proc.kill()
    proc.wait()


def die_with_parent() -> None:
    """In a worker: be killed when the parent dies (Linux PR_SET_PDEATHSIG), so that nothing goes on writing into
    a folder nobody watches. Elsewhere a no-op."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
