"""One thin entry script per spark-submit / CLI job. No logic lives here."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(name: str, main: Callable[[], int]) -> int:
    """Run a job's ``main``; a write that lost to a concurrent writer ends in one line and
    exit status 2 instead of a stack trace (nothing of it is in the lake; re-run the job)."""
    from pipeline.lake import ConcurrentWriteError

    try:
        return main()
    except ConcurrentWriteError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
