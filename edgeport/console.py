"""Progress lines for long work, on stderr so that tables on stdout stay clean."""

import sys


def log(msg: str) -> None:
    print(f"[edgeport] {msg}", file=sys.stderr, flush=True)
