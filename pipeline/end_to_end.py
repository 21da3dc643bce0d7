"""Run several jobs one after another in one Spark application and account for each.

``jobs.pipeline`` builds the list (generate, observe, a shard build per system); this module
runs it: each step is a job's ``main(argv)``, the same call its own command makes, and after
each one it records what the step cost and what it left in the lake:

* wall seconds;
* the tables it committed to and the rows of those commits (from each Delta table's history:
  ``numOutputRows`` of a write, the inserted and updated rows of a merge), so a re-run whose
  writes were all skipped as already committed shows 0 rows;
* the driver's peak resident memory so far: this Python process and, when it started the JVM
  (``python -m``), the JVM too. In local mode the JVM runs the executors' tasks as well.

A failing step ends the run; the steps before it stay committed (each job is idempotent, so
the same command run again skips what is already in the lake).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.lake import Lake

log = logging.getLogger(__name__)

JobMain = Callable[[list[str]], int]


@dataclass(frozen=True)
class Step:
    """One job call: ``main(argv)``, shown as ``command``."""

    name: str
    main: JobMain
    argv: list[str]
    command: str


@dataclass
class StepResult:
    name: str
    command: str
    exit_code: int
    seconds: float
    tables: dict[str, int] = field(default_factory=dict)  # layer/table -> rows committed
    peak_driver_gib: float | None = None
    summary: object = None  # the job's own JSON summary, when it printed one
    error: str | None = None  # the exception that ended the step, if one did

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_dict(self) -> dict:
        return {
            "step": self.name, "command": self.command, "exit_code": self.exit_code,
            "seconds": round(self.seconds, 1), "rows": self.rows, "tables": self.tables,
            "peak_driver_gib": self.peak_driver_gib, "summary": self.summary,
            "error": self.error,
        }


def versions(lake: Lake) -> dict[str, int]:
    """Every table's latest version, by ``layer/table``."""
    out = {}
    for name in lake.tables():
        layer, table = name.split("/", 1)
        out[name] = lake.version(layer, table)
    return out


def commit_rows(metrics: dict | None) -> int:
    """Rows a commit wrote, from its ``operationMetrics`` (values are strings in the log)."""
    metrics = metrics or {}
    if "numOutputRows" in metrics:
        return int(metrics["numOutputRows"])
    return sum(int(metrics.get(k, 0)) for k in ("numTargetRowsInserted", "numTargetRowsUpdated"))


def committed_since(lake: Lake, before: dict[str, int]) -> dict[str, int]:
    """Rows committed to each table since the versions in ``before`` (new tables from -1)."""
    out = {}
    for name, version in versions(lake).items():
        old = before.get(name, -1)
        if version <= old:
            continue
        layer, table = name.split("/", 1)
        history = lake.history(layer, table, limit=version - old)
        out[name] = sum(commit_rows(row["operationMetrics"])
                        for row in history if int(row["version"]) > old)
    return out


def _resident_peak_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def driver_peak_gib(jvm_pid: int | None) -> float:
    """Peak resident memory of this process plus the JVM it started (GiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if jvm_pid is not None:
        kib += _resident_peak_kib(jvm_pid)
    return round(kib / 2**20, 2)


def _json_summary(text: str) -> object:
    """The JSON document a job printed last on stdout, or its text when it printed none."""
    start = text.find("{")
    if start < 0:
        return text.strip() or None
    try:
        return json.loads(text[start:])
    except ValueError:
        return text.strip()


def run_steps(
    lake: Lake,
    steps: Sequence[Step],
    jvm_pid: int | None = None,
    on_start: Callable[[Step], None] | None = None,
    on_end: Callable[[list[StepResult]], None] | None = None,
) -> list[StepResult]:
    """Run ``steps`` in order until one fails (a non-zero exit code, or an exception, which
    counts as exit code 1 and is logged with its traceback); one result per step run.
    ``on_start(step)`` is called before each step, ``on_end(results so far)`` after each."""
    results = []
    for step in steps:
        if on_start is not None:
            on_start(step)
        before = versions(lake)
        began = time.perf_counter()
        out = io.StringIO()
        error = None
        try:
            with contextlib.redirect_stdout(out):
                code = step.main(list(step.argv))
        except Exception as err:  # noqa: BLE001 - the run stops here and says why
            log.exception("%s failed", step.name)
            code, error = 1, f"{type(err).__name__}: {err}".splitlines()[0]
        seconds = time.perf_counter() - began
        result = StepResult(
            step.name, step.command, int(code or 0), seconds,
            tables=committed_since(lake, before),
            peak_driver_gib=driver_peak_gib(jvm_pid),
            summary=_json_summary(out.getvalue()),
            error=error,
        )
        log.info("%s: exit %d, %.1f s, %s rows in %d tables", step.name, result.exit_code,
                 seconds, f"{result.rows:,}", len(result.tables))
        results.append(result)
        if on_end is not None:
            on_end(results)
        if result.exit_code:
            break
    return results


def summary_table(results: Sequence[StepResult]) -> str:
    """The per-step summary printed at the end of a run."""
    head = f"{'step':<22}{'exit':>5}{'seconds':>10}{'tables':>8}{'rows written':>15}" \
           f"{'driver peak GiB':>17}"
    lines = [head, "-" * len(head)]
    for r in results:
        peak = "" if r.peak_driver_gib is None else f"{r.peak_driver_gib:.2f}"
        lines.append(f"{r.name:<22}{r.exit_code:>5}{r.seconds:>10.1f}{len(r.tables):>8}"
                     f"{r.rows:>15,}{peak:>17}")
    total = sum(r.seconds for r in results)
    peaks = [r.peak_driver_gib for r in results if r.peak_driver_gib is not None]
    lines.append("-" * len(head))
    lines.append(f"{'total':<22}{'':>5}{total:>10.1f}{sum(len(r.tables) for r in results):>8}"
                 f"{sum(r.rows for r in results):>15,}"
                 f"{(f'{max(peaks):.2f}' if peaks else ''):>17}")
    return "\n".join(lines)
