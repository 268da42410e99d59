"""Typed errors. Each message names the problem and the fix, on one line."""

import re


class EdgeportError(ValueError):
    """Base of every error edgeport raises on purpose; the CLI prints it as one line and exits 2."""

    exit_code = 2


class InputError(EdgeportError):
    """A file, model spec or data set given by the user is missing or malformed."""


class UnsupportedError(EdgeportError):
    """An unknown target/framework/recipe, or a layer or op a target cannot take."""


class CalibrationError(EdgeportError):
    """Calibration data is missing, has the wrong shape, or holds NaN/Inf."""


class ConversionError(EdgeportError):
    """The official converter failed; the message carries its reason."""


class ParityError(EdgeportError):
    """One or more outputs of an artifact differ from the float original beyond tolerance.

    Collects every failing output into one message.
    """

    def __init__(self, name: str, failures: list[str]):
        self.failures = failures
        super().__init__(f"{name}: parity failed for {len(failures)} output(s): " + "; ".join(failures))


class ArtifactError(EdgeportError):
    """An artifact or manifest is corrupt, incomplete or from a newer schema."""


class QuantizationBudgetError(EdgeportError): """No int8 recipe (equalization, then layers kept float) met the accuracy budget; names the best reached."""


_PASS_LIST = re.compile(r" after the following passes: \[.*?\]")  # torch/ExecuTorch pass managers list every pass run


def _first_line(exc: BaseException) -> str:
    """The line of one exception that says what went wrong: its first line, continued while it ends with ':' or the
    next line goes on in lower case (onnx.checker breaks "input 'z' of node:" / "name: relu1 OpType: Relu" / "is not
    output of any previous nodes." over three lines), whitespace collapsed."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [text]
    out = lines[0]
    for ln in lines[1:4]:
        if not (out.endswith(":") or ln[:1].islower()):
            break
        out += " " + ln
    return _PASS_LIST.sub("", " ".join(out.split()))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def one_line(exc: BaseException, limit: int = 300) -> str:
    """What went wrong, as one clipped line for use inside our own messages: the exception's first meaningful line
    and, when it was raised from (or while handling) another, the innermost cause, which is where a wrapped
    library error says what actually failed ("An error occurred when running the 'X' pass" -> "required rank 4
    tensor to use channels_last format"). The full traceback stays in the log."""
    inner, seen = exc, {id(exc)}
    while True:
        nxt = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        inner = nxt
    head = _first_line(exc)
    if inner is exc:
        return _clip(head, limit)
    cause = _first_line(inner)
    if cause[:60] in head:  # our own message already quotes it
        return _clip(head, limit)
    cause = f"{type(inner).__name__}: {cause}" if type(inner).__name__ not in cause else cause
    # the cause is what the reader needs: it gets the room the head does not use, and at least two thirds
    cause = _clip(cause, limit - 10 - min(len(head), limit // 3))
    return _clip(head, limit - 10 - len(cause)) + " (cause: " + cause + ")"


class ConversionFailed(EdgeportError):
    """Some (target, recipe) conversions failed (a converter error, a crash or a hang) while the run went on.

    ``manifests``: the artifacts that were written (complete, with manifests); ``failures``: ``[(artifact name,
    one-line reason)]``. The CLI prints the table of what was written and one line per failure, and exits 1.
    """

    exit_code = 1

    def __init__(self, manifests: list, failures: list[tuple[str, str]], log: str | None = None):
        self.manifests = manifests
        self.failures = failures
        self.log = log
        names = ", ".join(n for n, _ in failures)
        super().__init__(f"{len(failures)} of {len(failures) + len(manifests)} conversion(s) failed ({names});"
                         f" the others were written" + (f"; tool output is in {log}" if log else ""))


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that staging folders and workers are cleaned up."""


def describe_os_error(e: OSError, what: str = "") -> str:
    """An OSError as one line that names the file, the problem and the fix."""
    import errno

    where = e.filename or what or "a file"
    reason = e.strerror or type(e).__name__
    fix = {errno.ENOSPC: "free disk space (or pass another --out) and run again",
           errno.EDQUOT: "free disk space (or pass another --out) and run again",
           errno.EACCES: "pass a folder you can write to", errno.EPERM: "pass a folder you can write to (check chattr -i)",
           errno.EROFS: "pass a folder on a writable file system", errno.ENAMETOOLONG: "use a shorter path",
           errno.ENOTDIR: "a path component is a file, not a folder; pass a folder",
           errno.EEXIST: "it is a file, not a folder; pass a folder"}.get(e.errno, "check the path and permissions")
    return f"{where}: {reason}; {fix}"
