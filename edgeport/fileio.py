"""Atomic writes: a failed step leaves no half-written file that looks valid, and loses nothing already there."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | Path, suffix: str = ""):
    """Yield a temporary path beside ``dest``; on success rename it over ``dest``, on failure remove it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part" + (suffix or dest.suffix), dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as open() would create it (mkstemp makes 0600)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(dest: str | Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inside(folder: str | Path, rel: str, what: str = "file") -> Path:
    """``folder / rel`` after checking that it stays inside ``folder``: a relative path, no ``..``, no absolute path,
    no symlink that leads out. Raises ArtifactError naming the problem otherwise."""
    from .errors import ArtifactError

    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise ArtifactError(f"{what} {rel!r} is not a relative file name; re-run `edgeport convert`")
    pure = Path(rel)
    if pure.is_absolute() or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel) or "\\" in rel:
        raise ArtifactError(f"{what} {rel!r} is an absolute path; a manifest names files relative to its folder"
                            " (re-run `edgeport convert`)")
    if ".." in pure.parts:
        raise ArtifactError(f"{what} {rel!r} leads out of the artifact folder ('..'); a manifest names files inside"
                            " its own folder (re-run `edgeport convert`)")
    root = Path(folder).resolve()
    p = root / pure
    real = p.resolve()
    if real != root and root not in real.parents:
        raise ArtifactError(f"{what} {rel!r} is a symlink that leads out of the artifact folder (to {real});"
                            " copy the file into the folder instead")
    return p


def ensure_writable_dir(path: str | Path, flag: str = "--out") -> tuple[Path, bool]:
    """Create ``path`` when missing and prove that a file can be written there, before any long work starts.
    Returns (path, created). Raises InputError with the reason and the fix."""
    from .errors import InputError, describe_os_error

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} {p} is a file, not a folder; pass a folder (it is created when missing)")
    created = not p.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgeport-write-test-", suffix=".part", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{flag} {p} is not writable: {describe_os_error(e)}") from None
    return p, created


STALE_PART_S = 3600  # a .part entry without a live run's lock is stale after this long


class RunFolder:
    """A hidden staging folder for one run inside an output folder (``.edgeport-run-*.part/``), holding the run's
    work files and its tool log. The run holds an exclusive lock on it, so the next run can tell a crashed run's
    leftovers (lock free) from a live run's (lock held) and removes them. On exit the folder is removed; with
    ``keep_log`` set the tool log is kept as ``<out>/edgeport-YYYYmmdd-HHMMSS-PID[-N].log`` (``kept_log``), a name
    of this run's own, so that the log a failure message names is never replaced by the next run's.

    On entry: ``out`` must be a writable folder (created when missing); stale staging folders are removed and
    reported (``removed``).
    """

    LOG_NAME = "edgeport.log"
    _runs = 0  # runs started by this process: a second run in the same second gets its own log name

    def __init__(self, out: str | Path, flag: str = "--out"):
        import time

        self.out = Path(out)
        n, RunFolder._runs = RunFolder._runs, RunFolder._runs + 1
        self._log_name = (f"edgeport-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}"
                          + (f"-{n}" if n else "") + ".log")
        self.flag = flag
        self.dir: Path | None = None
        self.keep_log = False
        self.created = False
        self.removed: list[str] = []
        self._lock = None

    @property
    def log(self) -> Path:
        assert self.dir is not None
        return self.dir / self.LOG_NAME

    @property
    def kept_log(self) -> Path:
        return self.out / self._log_name

    def __enter__(self) -> "RunFolder":
        import fcntl

        _, self.created = ensure_writable_dir(self.out, self.flag)
        self.removed = sweep_stale(self.out)
        self.dir = Path(tempfile.mkdtemp(prefix=".edgeport-run-", suffix=".part", dir=self.out))
        # the lock appears under its name only once held, so that a concurrent run's sweep never takes it for a
        # crashed run's (a folder with no lock yet is left alone for a minute)
        self._lock = open(self.dir / "lock.new", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(self.dir / "lock.new", self.dir / "lock")
        self.log.touch()
        return self

    def __exit__(self, *exc) -> None:
        import shutil

        try:
            if self.keep_log and self.log.is_file() and self.log.stat().st_size:
                os.replace(self.log, self.kept_log)
        except OSError:
            pass
        finally:
            if self._lock is not None:
                self._lock.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.created:
                try:
                    self.out.rmdir()  # only when the run left it empty
                except OSError:
                    pass


def sweep_stale(out: Path) -> list[str]:
    """Remove what interrupted runs left in ``out``: ``.edgeport-run-*.part`` folders whose lock is free, and other
    hidden ``.part`` entries (older layouts, atomic writes) older than :data:`STALE_PART_S`. Returns their names."""
    import fcntl
    import shutil
    import time

    removed = []
    now = time.time()
    for p in sorted(out.iterdir()):
        if not (p.name.startswith(".") and ".part" in p.name):
            continue
        try:
            if p.is_dir() and p.name.startswith(".edgeport-run-"):
                lock = p / "lock"
                if lock.is_file():
                    with open(lock, "a") as f:
                        try:
                            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except OSError:
                            continue  # a live run owns it
                elif now - p.stat().st_mtime < 60:
                    continue  # being created right now
            elif now - p.lstat().st_mtime < STALE_PART_S:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p.name)
        except OSError:
            continue
    return removed
