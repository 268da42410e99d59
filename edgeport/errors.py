"""Typed errors. Each message names the problem and the fix, on one line."""


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


def one_line(exc: BaseException, limit: int = 400) -> str:
    """First meaningful line of an exception, clipped, for use inside our own messages."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else text
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return first
