"""Run ids: the one way every job and the trainer name a run.

A run id is a short digest of everything that decides a run's output (its options, the versions
of the tables it read, its input files). Jobs pass it to Delta as the idempotent writer's
``txnAppId`` and record it in commit metadata and result rows, so re-running with the same
inputs commits nothing twice, and a changed input or option gives a new run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def run_digest(payload: Any, length: int = 12) -> str:
    """A stable hex digest of a JSON-able ``payload`` (dict keys sorted; sets sorted; any other
    value that JSON cannot hold by its ``str``)."""
    text = json.dumps(payload, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def files_fingerprint(files: list[Path]) -> list[list[str | int]]:
    """What identifies input files without reading them: resolved path, size, modification time
    (a payload for :func:`run_digest`)."""
    out = []
    for file in sorted(Path(f) for f in files):
        st = file.stat()
        out.append([str(file.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)
